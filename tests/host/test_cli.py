"""The `chargeproof` console script: enroll, list, sessions, proof, verify, and the two exports
parsed back (JSON; the Transparenzsoftware XML with xml.etree) and checked against the ledger."""
import base64
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from host_tools import cli
from host_tools.verify import merkle
from host_tools.verify import sigcheck
from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, ".venv", "bin", "chargeproof")


def run(*argv):
    """The installed console script, as an operator runs it."""
    exe = [SCRIPT] if os.path.exists(SCRIPT) else [sys.executable, "-m", "host_tools.cli"]
    return subprocess.run(exe + [str(a) for a in argv], capture_output=True, text=True, timeout=60)


@pytest.fixture
def ledger(tmp_path):
    """A ledger filled by a validator from two chargers' real receipts; one session disputed."""
    db = str(tmp_path / "ledger.sqlite")
    a = SimCharger(tmp_path / "a", "CP-A", seed=1)
    b = SimCharger(tmp_path / "b", "CP-B", seed=2)
    keyfile = tmp_path / "a.hex"
    keyfile.write_text(a.pubkey_der().hex() + "\n")
    assert run("enroll", "--db", db, "--charger", "CP-A", "--pubkey", keyfile, "--origin", a.origin).returncode == 0
    assert run("enroll", "--db", db, "--charger", "CP-B", "--pubkey", b.pubkey_der().hex(),
               "--origin", b.origin).returncode == 0
    tariff = tmp_path / "tariff.json"
    tariff.write_text(a.tariff_json())
    assert run("tariff", "--db", db, "--file", tariff).returncode == 0
    v = Validator(db, "val-1", clock=lambda: max(a.now, b.now))
    for i in range(3):
        for t, p in a.charge(energy_wh=1000 * (i + 1)) + b.charge(energy_wh=500):
            assert v.process(t, p).status == "accepted"
    s = b.session_dict()
    s["tax_minor"] += 1
    s["price_minor"] += 1
    rec, cp, _ = b.append(s)
    assert v.process(*b.message("receipt", rec)).reason == "price-mismatch"
    assert v.process(*b.message("checkpoint", cp)).status == "accepted"
    v.close()
    return {"db": db, "a": a, "b": b, "tmp": tmp_path}


def test_enroll_refuses_bad_keys_and_second_keys(tmp_path, ledger):
    r = run("enroll", "--db", ledger["db"], "--charger", "CP-A", "--pubkey", ledger["b"].pubkey_der().hex())
    assert r.returncode == 2 and "another key" in r.stderr
    r = run("enroll", "--db", ledger["db"], "--charger", "CP-X", "--pubkey", "3059" + "00" * 40)
    assert r.returncode == 2 and "P-256" in r.stderr


def test_chargers_and_sessions_tables(ledger):
    r = run("chargers", "--db", ledger["db"])
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["charger", "key", "id", "origin", "receipts", "checkpoint"]
    row_a = lines[1].split()
    assert row_a[0] == "CP-A" and row_a[-2:] == ["3", "3"]
    assert lines[2].split()[-2:] == ["4", "4"]
    r = run("sessions", "--db", ledger["db"])
    assert r.returncode == 0
    rows = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.startswith("CP-")]
    assert [x[0] for x in rows] == ["CP-A"] * 3 + ["CP-B"] * 4
    assert [x[3] for x in rows[:3]] == ["1.000", "2.000", "3.000"]
    assert rows[-1][6] == "disputed"
    assert "total CP-B: 3 sessions, 1.500 kWh" in r.stdout
    r = run("evidence", "--db", ledger["db"])
    assert "price-mismatch" in r.stdout


def test_export_json_round_trip(ledger):
    out = ledger["tmp"] / "ledger.json"
    assert run("export", "--db", ledger["db"], "--format", "json", "--out", out).returncode == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "chargeproof-ledger" and doc["version"] == 1
    assert [c["charger_id"] for c in doc["chargers"]] == ["CP-A", "CP-B"]
    b = doc["chargers"][1]
    assert [r["status"] for r in b["receipts"]] == ["accepted"] * 3 + ["disputed"]
    # every exported receipt proves its inclusion in the exported latest checkpoint
    latest = b["checkpoints"][-1]
    assert latest["size"] == 4
    for r in b["receipts"]:
        merkle.verify_inclusion(merkle.leaf_hash(r["receipt"].encode()), r["index"], r["inclusion"]["tree_size"],
                                [base64.b64decode(h) for h in r["inclusion"]["inclusion_proof"]],
                                bytes.fromhex(latest["root_hex"]))
        body, sig = r["receipt"].encode().rsplit(b"|", 1)
        assert sigcheck.verify_reference(bytes.fromhex(b["pubkey_hex"]), body, bytes.fromhex(sig.decode()))
    assert doc["evidence"] == []                      # a price mismatch is a dispute, not misbehaviour
    assert doc["tariffs"][0]["tariff_hash"] == json.loads(b["receipts"][0]["receipt"].rsplit("|", 1)[0])["tariff"]


def test_export_transparency_xml_parses_back(ledger):
    r = run("export", "--db", ledger["db"], "--format", "transparency-xml")
    assert r.returncode == 0
    assert r.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(r.stdout.encode())
    assert root.tag == "values"
    values = root.findall("value")
    assert len(values) == 6                         # 6 billed sessions (the disputed one is left out)
    keys = {"CP-A": ledger["a"].pubkey_der(), "CP-B": ledger["b"].pubkey_der()}
    for number, v in enumerate(values, 1):
        assert (v.get("transactionId"), v.get("context")) == (str(number), "Transaction.End")
        data, key = v.find("signedData"), v.find("publicKey")
        assert (data.get("format"), data.get("encoding"), data.get("transactionId")) == ("OCMF", "plain", str(number))
        assert key.get("encoding") == "plain"
        record = data.text
        assert record == record.strip() and record.startswith("OCMF|")
        _, payload, sigsec = record.split("|")
        p = json.loads(payload)
        assert [rd["TX"] for rd in p["RD"]] == ["B", "E"]
        pub = bytes.fromhex(key.text)
        assert pub == keys[p["GS"]]
        # each record verifies with the key it is shipped with, over the payload bytes as written
        assert sigcheck.verify_fast(pub, payload.encode(), bytes.fromhex(json.loads(sigsec)["SD"]))


def test_transparency_xml_is_read_by_an_independent_ocmf_library(ledger):
    """pyocmf reads the Transparenzsoftware's XML container the way that software does: strict
    OCMF parsing, signature with the shipped key, Eichrecht checks per transaction."""
    from pyocmf.utils.xml import OcmfContainer
    out = ledger["tmp"] / "tps.xml"
    assert run("export", "--db", ledger["db"], "--format", "transparency-xml", "--out", out).returncode == 0
    container = OcmfContainer.from_xml(out, strict=True)
    assert len(container) == 6
    assert [e.transaction_id for e in container] == list(range(1, 7))
    assert all(e.verify_signature() for e in container)
    results = container.check_eichrecht(errors_only=True)
    assert len(results) == 6
    assert all(res.is_compliant for res in results), [res.issues for res in results]


def test_proof_command_writes_a_bundle_the_light_client_accepts(ledger):
    out = ledger["tmp"] / "bundle.json"
    r = run("proof", "--db", ledger["db"], "--charger", "CP-A", "--seq", 2, "--old-size", 1, "--out", out)
    assert r.returncode == 0, r.stderr
    b = json.loads(out.read_text())
    assert b["format"] == "chargeproof-receipt-bundle/1" and b["index"] == 1 and b["tree_size"] == 3
    key = ledger["a"].pubkey_der().hex()
    r = run("verify", "--receipt", out, "--pubkey", key)
    assert r.returncode == 0 and r.stdout.startswith("VALID"), r.stdout + r.stderr
    # consistency from the checkpoint of size 1 to the one the bundle carries
    old_root = base64.b64decode(b["consistency"]["old_checkpoint"].split("\n")[2])
    new_root = base64.b64decode(b["checkpoint"].split("\n")[2])
    merkle.verify_consistency(1, 3, old_root, new_root, [base64.b64decode(h) for h in b["consistency"]["proof"]])
    # the light client rejects the bundle with another charger's key, and a disputed price
    r = run("verify", "--receipt", out, "--pubkey", ledger["b"].pubkey_der().hex())
    assert r.returncode == 1 and r.stdout.startswith("INVALID: wrong-key")
    out_b = ledger["tmp"] / "disputed.json"
    assert run("proof", "--db", ledger["db"], "--charger", "CP-B", "--index", 3, "--out", out_b).returncode == 0
    r = run("verify", "--receipt", out_b, "--pubkey", ledger["b"].pubkey_der().hex())
    assert r.returncode == 1 and "price-mismatch" in r.stdout
    r = run("proof", "--db", ledger["db"], "--charger", "CP-A", "--seq", 99)
    assert r.returncode == 2 and "no receipt" in r.stderr


def test_usage_errors_exit_2(tmp_path):
    assert cli.main(["chargers", "--db", str(tmp_path / "new.sqlite")]) == 0
    with pytest.raises(SystemExit) as e:
        cli.main(["export", "--db", str(tmp_path / "x.sqlite"), "--format", "csv"])
    assert e.value.code == 2


def test_replay_rebuilds_an_identical_ledger_and_audits_the_export(ledger):
    out = ledger["tmp"] / "ledger.json"
    assert run("export", "--db", ledger["db"], "--format", "json", "--out", out).returncode == 0
    fresh = str(ledger["tmp"] / "late.sqlite")
    r = run("replay", "--db", fresh, "--export", out)
    assert r.returncode == 2 and "not enrolled" in r.stderr          # keys come from provisioning
    r = run("replay", "--db", fresh, "--export", out, "--enroll-from-export")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FROM THE EXPORT" in r.stdout and "agrees with the export on every record" in r.stdout
    from host_tools.validator.store import LedgerDB
    view = lambda path: ([(s["charger_id"], s["log_index"], s["receipt"], s["status"]) for s in LedgerDB(path).sessions()],
                         [(c["charger_id"], c["size"], c["note"]) for c in LedgerDB(path).checkpoints()])
    assert view(fresh) == view(ledger["db"])
    # replaying again changes nothing (duplicates)
    assert run("replay", "--db", fresh, "--export", out).returncode == 0
    assert view(fresh) == view(ledger["db"])
    # an export whose exporter marked a disputed session accepted is caught
    doc = json.loads(out.read_text())
    doc["chargers"][1]["receipts"][3]["status"] = "accepted"
    out.write_text(json.dumps(doc))
    r = run("replay", "--db", str(ledger["tmp"] / "audit.sqlite"), "--export", out, "--enroll-from-export")
    assert r.returncode == 1 and "DISAGREE CP-B receipt 3: export says accepted" in r.stdout
    assert "price-mismatch" in r.stdout


def test_witness_key_is_made_once_and_printed_as_a_vkey(tmp_path):
    from host_tools.verify import cosignature
    key = tmp_path / "val-1.key"
    first = run("witness-key", "--key", str(key), "--id", "val-1")
    again = run("witness-key", "--key", str(key), "--id", "val-1")
    assert first.returncode == 0 and first.stdout == again.stdout
    w = cosignature.parse_vkey(first.stdout.strip())
    assert w.name == "val-1" and oct(key.stat().st_mode & 0o777) == "0o600"


def test_ledger_commands_work_on_postgresql(pg_dsn, ledger):
    r = run("enroll", "--db", pg_dsn, "--charger", "CP-A", "--pubkey", ledger["a"].pubkey_der().hex())
    assert r.returncode == 0, r.stderr
    r = run("chargers", "--db", pg_dsn)
    assert r.returncode == 0 and "CP-A" in r.stdout
