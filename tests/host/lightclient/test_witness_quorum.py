"""A light client that requires k-of-n witness cosignatures (C2SP tlog-cosignature/v1) on the
checkpoint its receipt is proven against: refused with fewer than k valid ones, accepted with k,
and a known witness's bad line fails the bundle. Through check() and through the real command
(`python -m host_tools.lightclient --witness VKEY --quorum K`)."""
import json
import subprocess
import sys

import pytest

from host_tools.lightclient import check as lightclient
from host_tools.lightclient.demo import World
from host_tools.paths import ROOT
from host_tools.verify import cosignature as cs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("quorum"))


@pytest.fixture(scope="module")
def witnesses():
    return [cs.Cosigner("val-%d" % i) for i in range(3)]


def _bundle(world, cosigners, t=1768455100):
    bundle = json.loads(world.bundle())
    bundle["cosignatures"] = [c.cosign(bundle["checkpoint"], t) for c in cosigners]
    return json.dumps(bundle)


def verdict(world, bundle, witnesses, quorum):
    try:
        return "VALID " + lightclient.check(bundle, world.pub, witnesses=[w.witness for w in witnesses],
                                            quorum=quorum)
    except lightclient.Invalid as exc:
        return exc.reason


def test_fewer_than_k_cosignatures_is_refused_and_k_is_accepted(world, witnesses):
    two = _bundle(world, witnesses[:2])
    assert verdict(world, two, witnesses, 3) == "missing-cosignatures"
    ok = verdict(world, two, witnesses, 2)
    assert ok.startswith("VALID") and "cosigned by val-0, val-1" in ok
    assert verdict(world, _bundle(world, []), witnesses, 1) == "missing-cosignatures"
    assert verdict(world, _bundle(world, []), witnesses, 0).startswith("VALID")
    # a stranger's cosignature does not count, even under a trusted name
    stranger = cs.Cosigner("val-2")
    assert verdict(world, _bundle(world, witnesses[:2] + [stranger]), witnesses, 3) == "missing-cosignatures"
    # the same witness twice is one cosigner
    assert verdict(world, _bundle(world, [witnesses[0], witnesses[0]]), witnesses, 2) == "missing-cosignatures"


def test_a_trusted_witness_line_over_another_checkpoint_fails(world, witnesses):
    bundle = json.loads(_bundle(world, witnesses[:2]))
    other = bundle["checkpoint"].replace("\n3\n", "\n4\n", 1)
    bundle["cosignatures"][1] = witnesses[1].cosign(other, 1768455100)
    assert verdict(world, json.dumps(bundle), witnesses, 1) == "bad-cosignature"


def _cli(tmp_path, bundle, pub_hex, args):
    path = tmp_path / "b.json"
    path.write_text(bundle)
    proc = subprocess.run([sys.executable, "-m", "host_tools.lightclient", "--receipt", str(path),
                           "--pubkey", pub_hex] + args, cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, proc.stdout.strip()


def test_the_command_takes_witness_keys_and_a_quorum(tmp_path, world, witnesses):
    bundle = _bundle(world, witnesses[:2])
    keyfile = tmp_path / "w2.vkey"
    keyfile.write_text(witnesses[2].vkey() + "\n")
    wargs = ["--witness", witnesses[0].vkey(), "--witness", witnesses[1].vkey(), "--witness", str(keyfile)]
    code, out = _cli(tmp_path, bundle, world.pub.hex(), wargs + ["--quorum", "2"])
    assert code == 0 and out.startswith("VALID"), out
    code, out = _cli(tmp_path, bundle, world.pub.hex(), wargs + ["--quorum", "3"])
    assert code == 1 and out.startswith("INVALID: missing-cosignatures"), out
    code, out = _cli(tmp_path, bundle, world.pub.hex(), wargs)          # default quorum: all given
    assert code == 1 and "missing-cosignatures" in out
    code, out = _cli(tmp_path, bundle, world.pub.hex(), ["--witness", "not+a+vkey", "--quorum", "1"])
    assert code == 1 and out.startswith("INVALID: bad-witness-key"), out
