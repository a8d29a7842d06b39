"""The light client on a real receipt from the firmware ledger (real KeyStore, real tariff
price, real ChargerLog): accepted, and each kind of tampering rejected with its own reason.

To isolate one check at a time, most forgeries are re-signed with the charger's own key (what
a buggy or dishonest charger could publish): only the targeted inconsistency remains."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from host_tools import lightclient, merkle
from host_tools import receipt as host_receipt
from ledger import checkpoint, ocmf, receipt
from ledger.keys import KeyStore
from ledger.log import ChargerLog
from ledgerdata import T_BEGIN, FixedClock, session
from session.tariff import EnergySplit, Tariff, price

ORIGIN = "chargeproof.example/CP-0001"
TARIFF = {"v": 1, "currency": "EUR", "utc_offset_min": 60, "session_fee_minor": 50,
          "bands": [{"start_min": 0, "kwh_price_milli": 25000},
                    {"start_min": 420, "kwh_price_milli": 39000},
                    {"start_min": 1320, "kwh_price_milli": 29000}],
          "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900}


def simulated_session(begin_wh):
    """A session crossing the 07:00 local band start, metered the way the session layer does."""
    t = Tariff(TARIFF)
    split = EnergySplit(t, T_BEGIN, begin_wh)
    wh = begin_wh
    for step in range(1, 13):                 # a sample every 7 minutes, 11 kW
        wh += 1283
        split.sample(T_BEGIN + 420 * step, wh)
    end = T_BEGIN + 420 * 12 + 3000           # unplugged 50 min later: 20 idle minutes billed
    split.sample(end, wh)
    net, tax, total = price(t, split.segments, T_BEGIN, split.charge_end, end)
    return session(begin_wh=begin_wh, end_wh=wh, begin_time=T_BEGIN, end_time=end,
                   charge_end_time=split.charge_end, segments=split.segments, tariff=t,
                   net_minor=net, tax_minor=tax, price_minor=total)


class World:
    def __init__(self, tmp):
        self.key = KeyStore(str(tmp / "key"), urandom=os.urandom)
        self.log = ChargerLog(str(tmp / "log"), self.key, "CP-0001", ORIGIN, FixedClock())
        self.records = []
        for i in range(3):
            rec, cp, index = self.log.append_session(simulated_session(1000000 + 20000 * i))
            self.records.append(rec)
        self.cp = cp
        self.pub = self.key.public_key_der()

    def bundle(self, index=1, records=None, note=None, tariff=TARIFF):
        records = records or self.records
        tree = merkle.Tree(records)
        if note is None:
            note = checkpoint.build(ORIGIN, tree.size, tree.root(), T_BEGIN + 9999, self.key)
        return host_receipt.make_bundle(records[index], index, tree.size,
                                        tree.inclusion_proof(index), note, tariff)

    def forged(self, edit_body=None, edit_ocmf_payload=None, index=1):
        """Receipt `index` with its body and/or OCMF payload edited, re-signed by the charger."""
        body = receipt.split(self.records[index])[0].decode()
        fields = json.loads(body)
        if edit_ocmf_payload:
            payload = ocmf.split(fields["ocmf"])[0]
            new_ocmf = ocmf.sign(edit_ocmf_payload(payload), self.key)
            body = body.replace(json.dumps(fields["ocmf"]), json.dumps(new_ocmf))
        if edit_body:
            body = edit_body(body)
        recs = list(self.records)
        recs[index] = receipt.sign(body, self.key)
        return self.bundle(index, recs)

    def verdict(self, bundle, pub=None, **kw):
        try:
            return "VALID " + lightclient.check(bundle, pub or self.pub, **kw)
        except lightclient.Invalid as exc:
            return exc.reason


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("lightclient"))


def test_real_receipt_from_simulated_session_is_valid(world):
    b = world.bundle()
    assert world.verdict(b).startswith("VALID receipt 1 (session T2) of CP-0001")
    # the device's own latest checkpoint works as well as one rebuilt here
    assert world.verdict(world.bundle(note=world.cp)).startswith("VALID")
    r = json.loads(receipt.split(world.records[1])[0])
    assert len(r["segments"]) == 2 and r["price"] == r["net"] + r["tax"]


def test_cli_prints_valid_and_exits_zero(world, tmp_path, capsys):
    (tmp_path / "r.json").write_text(world.bundle())
    (tmp_path / "key.hex").write_text(world.pub.hex())
    (tmp_path / "cp.txt").write_text(world.cp)
    proof = merkle.Tree(world.records).inclusion_proof(1)
    import base64
    (tmp_path / "proof.json").write_text(json.dumps(
        {"index": 1, "tree_size": 3, "inclusion_proof": [base64.b64encode(h).decode() for h in proof]}))
    proc = subprocess.run([sys.executable, "-m", "host_tools.lightclient", "--receipt", str(tmp_path / "r.json"),
                           "--pubkey", str(tmp_path / "key.hex"), "--checkpoint", str(tmp_path / "cp.txt"),
                           "--proof", str(tmp_path / "proof.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("VALID: receipt 1"), proc.stdout + proc.stderr
    (tmp_path / "r.json").write_text(world.bundle().replace("EVDisconnected", "Local"))
    assert lightclient.main(["--receipt", str(tmp_path / "r.json"), "--pubkey", world.pub.hex()]) == 1
    assert capsys.readouterr().out.startswith("INVALID: bad-receipt-signature: ")


def swap_times(payload):
    tms = [part.split('"')[0] for part in payload.split('"TM":"')[1:]]
    return payload.replace(tms[0], "@").replace(tms[1], tms[0]).replace("@", tms[1])


def test_each_tampering_has_its_own_reason(world, tmp_path):
    other = KeyStore(str(tmp_path / "other"), urandom=os.urandom)
    valid_note = json.loads(world.bundle())["checkpoint"]
    cases = {
        # the user's card UID changed inside the signed OCMF payload
        "bad-ocmf-signature": lambda: world.verdict(
            world.forged(edit_body=lambda b: b.replace("04A1B2C3D4E5F6", "04A1B2C3D4E5F7"))),
        "bad-receipt-signature": lambda: world.verdict(world.bundle().replace(
            "EVDisconnected", "EVDisconnectes")),
        "energy-mismatch": lambda: world.verdict(world.forged(edit_ocmf_payload=lambda p: p.replace(
            '"TX":"E","RV":1', '"TX":"E","RV":2'))),
        "begin-after-end": lambda: world.verdict(world.forged(edit_ocmf_payload=swap_times)),
        "price-mismatch": lambda: world.verdict(world.forged(edit_body=lambda b: b.replace(
            ',"price":', ',"price":1').replace(',"tax":', ',"tax":1'))),
        "tariff-hash-mismatch": lambda: world.verdict(world.bundle(tariff=dict(TARIFF, tax_bp=1600))),
        "not-included": lambda: world.verdict(world.bundle(), proof={
            "index": 1, "tree_size": 3, "inclusion_proof": merkle.Tree(world.records).inclusion_proof(2)}),
        "bad-checkpoint-signature": lambda: world.verdict(world.bundle(
            note=valid_note.replace("time %d" % (T_BEGIN + 9999), "time %d" % (T_BEGIN + 9998)))),
        "wrong-key": lambda: world.verdict(world.bundle(), pub=other.public_key_der()),
        "malformed-bundle": lambda: world.verdict("{}"),
        "time-mismatch": lambda: world.verdict(world.forged(edit_body=lambda b: b.replace(
            '"begin":%d' % T_BEGIN, '"begin":%d' % (T_BEGIN - 60)))),
    }
    got = {expected: run() for expected, run in cases.items()}
    assert got == {k: k for k in cases}


def test_receipt_not_in_an_older_checkpoint(world):
    # The log's checkpoint of size 1 (before receipt 1 existed) cannot include it.
    tree = merkle.Tree(world.records[:1])
    old = checkpoint.build(ORIGIN, 1, tree.root(), T_BEGIN, world.key)
    assert world.verdict(world.bundle(), checkpoint_note=old) == "not-included"


def test_newer_checkpoint_with_its_proof_is_accepted(world):
    # A validator's later checkpoint and its proof for the same receipt.
    tree = merkle.Tree(world.records + [b"later receipt"])
    note = checkpoint.build(ORIGIN, 4, tree.root(), T_BEGIN + 99999, world.key)
    proof = {"index": 1, "tree_size": 4, "inclusion_proof": tree.inclusion_proof(1)}
    assert world.verdict(world.bundle(), checkpoint_note=note, proof=proof).startswith("VALID")
