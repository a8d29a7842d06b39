"""The light client on a real receipt from the firmware ledger (real KeyStore, real tariff
price, real ChargerLog; host_tools/lightclient_demo.World): accepted, and each kind of
tampering rejected with its own reason, through the function and through the command."""
import base64
import json

import pytest

from host_tools.verify import checkpoint as host_cp
from host_tools.lightclient import check as lightclient
from host_tools.lightclient import demo as lightclient_demo
from host_tools.verify import merkle
from host_tools.lightclient.demo import ORIGIN, T_BEGIN, World
from ledger import checkpoint, receipt


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("lightclient"))


def verdict(world, bundle, pub=None, **kw):
    try:
        return "VALID " + lightclient.check(bundle, pub or world.pub, **kw)
    except lightclient.Invalid as exc:
        return exc.reason


def test_real_receipt_from_simulated_session_is_valid(world):
    assert verdict(world, world.bundle()).startswith("VALID receipt 1 (session T2) of CP-0001")
    # the device's own latest checkpoint works as well as one rebuilt by a validator
    assert verdict(world, world.bundle(note=world.cp)).startswith("VALID")
    r = json.loads(receipt.split(world.records[1])[0])
    assert len(r["segments"]) == 2 and r["price"] == r["net"] + r["tax"] and r["net"] > 0


def test_each_tampering_has_its_own_reason(world):
    cases = world.tamperings()
    got = {}
    for reason, (what, bundle, extra) in cases.items():
        pub = bytes.fromhex(extra["--pubkey"]) if "--pubkey" in extra else world.pub
        proof = json.loads(extra["--proof"]) if "--proof" in extra else None
        got[reason] = verdict(world, bundle, pub, proof=proof, checkpoint_note=extra.get("--checkpoint"))
    assert got == {k: k for k in cases}
    assert len(set(got.values())) == len(cases) >= 10


def test_more_inconsistencies_are_named(world):
    assert verdict(world, world.forged(edit_body=lambda b: b.replace(
        '"begin":%d' % (T_BEGIN + 86400), '"begin":%d' % (T_BEGIN + 86400 - 60)))) == "time-mismatch"
    assert verdict(world, world.forged(edit_body=lambda b: b.replace('"seq":2', '"seq":7'))) == "pagination-mismatch"
    assert verdict(world, "{}") == "malformed-bundle"
    assert verdict(world, world.bundle(), pub=b"\x30\x03junk") == "bad-public-key"


def test_receipt_not_in_an_older_checkpoint(world):
    tree = merkle.Tree(world.records[:1])
    old = checkpoint.build(ORIGIN, 1, tree.root(), T_BEGIN, world.key)
    assert verdict(world, world.bundle(), checkpoint_note=old) == "not-included"


def test_newer_checkpoint_with_its_proof_is_accepted(world):
    tree = merkle.Tree(world.records + [b"a later receipt"])
    note = checkpoint.build(ORIGIN, 4, tree.root(), T_BEGIN + 99999, world.key)
    proof = {"index": 1, "tree_size": 4, "inclusion_proof": tree.inclusion_proof(1)}
    assert verdict(world, world.bundle(), checkpoint_note=note, proof=proof).startswith("VALID")
    # and the new checkpoint provably extends the one in the driver's bundle
    old = host_cp.parse(json.loads(world.bundle())["checkpoint"])
    host_cp.check_extends(old, host_cp.parse(note), tree.consistency_proof(3, 4), world.pub)
    cons = {"old_size": 3, "new_size": 4,
            "proof": [base64.b64encode(h).decode() for h in tree.consistency_proof(3, 4)]}
    assert verdict(world, world.bundle(), checkpoint_note=note, proof=proof,
                   consistency=cons).startswith("VALID")
    # a size-4 tree whose first three leaves differ does not extend the bundle's checkpoint
    forked = merkle.Tree([b"x"] + world.records[1:] + [b"a later receipt"])
    fnote = checkpoint.build(ORIGIN, 4, forked.root(), T_BEGIN + 99999, world.key)
    fcons = {"old_size": 3, "new_size": 4,
             "proof": [base64.b64encode(h).decode() for h in forked.consistency_proof(3, 4)]}
    fproof = {"index": 1, "tree_size": 4, "inclusion_proof": forked.inclusion_proof(1)}
    assert verdict(world, world.bundle(), checkpoint_note=fnote, proof=fproof,
                   consistency=fcons) == "inconsistent-checkpoints"


def test_the_command_accepts_then_rejects_each_tampering(tmp_path, capsys):
    # python -m host_tools.lightclient run as a subprocess on files, once per case
    assert lightclient_demo.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("genuine receipt:  exit 0  VALID: receipt 1")
    assert sum(" exit 1  INVALID: " in line for line in out) == 10


def test_malleated_receipt_signature_is_refused(world):
    # (r, n - s) is a valid ECDSA signature too; the charger emits low S only, so the
    # high-S twin of a genuine receipt is refused instead of posing as another leaf.
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
    from host_tools.verify import sigcheck
    from host_tools.verify.receipt import P256_N, Receipt
    genuine = Receipt(world.records[1])
    r, s = decode_dss_signature(genuine.sig_der)
    assert s <= P256_N // 2
    twin_sig = encode_dss_signature(r, P256_N - s)
    assert sigcheck.verify(world.pub, genuine.body, twin_sig)           # mathematically valid
    twin = Receipt(genuine.body + b"|" + twin_sig.hex().encode())
    assert genuine.verify(world.pub) and not twin.verify(world.pub)
    recs = list(world.records)
    recs[1] = twin.record
    assert verdict(world, world.bundle(records=recs)) == "bad-receipt-signature"
