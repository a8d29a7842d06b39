"""Tariffs published by the operator on tariff/<id> (signed, retained) reach validators by
themselves: a validator checks the operator's signature, stores the document and prices receipts
by it, so none records `unknown-tariff` for a published tariff; unsigned, forged, oversized,
mislabelled or version-1 messages are refused as malformed and change nothing. Through a real
Mosquitto: a validator started after the tariff was published still gets it (retained)."""
import json
import time

import pytest

from host_tools.provision import operator_cmd as op
from host_tools.provision import tariff_doc
from host_tools.sim.charger import T0, SimCharger
from host_tools.validator.service import Validator

DOC = {"v": 2, "id": "std-2026", "currency": "EUR", "valid_from": T0 - 86400,
       "tz": "CET-1CEST,M3.5.0,M10.5.0/3", "session_fee_minor": 50,
       "bands": [{"start_min": 0, "kwh_price_milli": 25000}, {"start_min": 420, "kwh_price_milli": 39000}],
       "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900,
       "slot_s": 3600, "slots": [[T0 + 3600 * i, 10000 + 1000 * i] for i in range(24)]}


@pytest.fixture(scope="module")
def keys():
    return op.generate_key(), op.generate_key()


def spki(key):
    return bytes.fromhex(op.public_spki_hex(key))


def message(key, doc=None):
    return tariff_doc.sign(key, json.dumps(doc or DOC).encode())


def make_validator(path, charger, key, **kw):
    v = Validator(str(path), "val-1", clock=lambda: charger.now + 5, operator_key=spki(key), **kw)
    v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
    return v


def test_a_published_tariff_prices_receipts(tmp_path, keys):
    charger = SimCharger(tmp_path / "cp", "CP-0001", tariff_doc=DOC, seed=3)
    v = make_validator(tmp_path / "l.sqlite", charger, keys[0])
    try:
        before = [v.process(t, p) for t, p in charger.charge(duration_s=5 * 3600)]
        assert before[0].status == "rejected" and before[0].reason == "unknown-tariff"   # not yet published
        r = v.process("tariff/std-2026", message(keys[0]))
        assert r.status == "accepted" and r.detail == charger.tariff.hash
        assert v.process("tariff/std-2026", message(keys[0])).status == "accepted"   # retained again: idempotent
        for _ in range(3):
            results = [v.process(t, p) for t, p in charger.charge(duration_s=5 * 3600)]
            assert all(x.status == "accepted" for x in results), results
        assert len(v.db.tariffs()) == 1
    finally:
        v.close()


def test_refused_tariff_messages_change_nothing(tmp_path, keys):
    charger = SimCharger(tmp_path / "cp", "CP-0001", tariff_doc=DOC, seed=3)
    v = make_validator(tmp_path / "l.sqlite", charger, keys[0])
    good = message(keys[0])
    v1 = dict(charger.tariff_doc)
    attacks = {
        "unsigned": json.dumps(DOC).encode(),
        "forged": message(keys[1]),
        "altered": good.replace(b'"tax_bp": 1900', b'"tax_bp": 1000'),
        "bad-signature-hex": good.rsplit(b"|", 1)[0] + b"|zz",
        "oversized": op.sign_payload(keys[0], json.dumps(DOC).encode() + b" " * 8200),
        "version-1": op.sign_payload(keys[0], json.dumps({k: v1[k] for k in v1 if k in (
            "currency", "session_fee_minor", "bands", "idle_min_price_milli", "idle_grace_min", "tax_bp")}
            | {"v": 1, "utc_offset_min": 60}).encode()),
        "not-json": op.sign_payload(keys[0], b"{nope"),
        "empty": b"",
    }
    try:
        for name, payload in attacks.items():
            r = v.process("tariff/std-2026", payload)
            assert (r.status, r.reason) == ("rejected", "malformed"), (name, r)
        r = v.process("tariff/other-id", good)               # id and topic disagree
        assert (r.status, r.reason) == ("rejected", "malformed"), r
        assert v.db.tariffs() == []
        kinds = [x["kind"] for x in v.db.rejections()]
        assert kinds.count("tariff") == len(attacks) + 1
        # nothing stored: a receipt naming it still finds no tariff
        r = [v.process(t, p) for t, p in charger.charge()][0]
        assert r.reason == "unknown-tariff"
    finally:
        v.close()
    # without an operator key even a good one is refused
    v = Validator(str(tmp_path / "l2.sqlite"), "val-2")
    try:
        assert v.process("tariff/std-2026", good).reason == "malformed" and v.db.tariffs() == []
    finally:
        v.close()


def test_a_session_before_valid_from_is_not_billed_by_it(tmp_path, keys):
    late = dict(DOC, id="late", valid_from=T0 + 10 ** 6)
    charger = SimCharger(tmp_path / "cp", "CP-0001", tariff_doc=late, seed=3)
    v = make_validator(tmp_path / "l.sqlite", charger, keys[0])
    try:
        assert v.process("tariff/late", message(keys[0], late)).status == "accepted"
        r = [v.process(t, p) for t, p in charger.charge()][0]
        assert (r.status, r.reason) == ("rejected", "tariff-not-in-force"), r
    finally:
        v.close()


def test_a_validator_started_after_publication_gets_the_retained_tariff(tmp_path, keys, mosquitto_broker):
    from host_tools.mqtt_conn import BrokerSpec
    spec = BrokerSpec("127.0.0.1", mosquitto_broker["broker_port"])
    path = tmp_path / "T.json"
    path.write_text(json.dumps(DOC))
    keyfile = tmp_path / "operator.pem"
    op.save_key(keys[0], str(keyfile))
    facts = tariff_doc.main_publish(str(path), str(keyfile), spec)      # published once, then gone
    assert facts["topic"] == "tariff/std-2026" and facts["published"]
    shown = tariff_doc.main_show(spec, operator_spki_hex=op.public_spki_hex(keys[0]))
    assert [s["hash"] for s in shown] == [facts["hash"]] and shown[0]["signature"] == "valid"

    charger = SimCharger(tmp_path / "cp", "CP-0001", tariff_doc=DOC, seed=3)
    v = make_validator(tmp_path / "l.sqlite", charger, keys[0])
    results = []
    v.on_result = results.append
    v.start("127.0.0.1", mosquitto_broker["broker_port"])
    try:
        assert v.subscribed.wait(10)
        deadline = time.time() + 10
        while not v.db.tariffs() and time.time() < deadline:
            time.sleep(0.05)
        assert [t["tariff_hash"] for t in v.db.tariffs()] == [facts["hash"]]
        import paho.mqtt.client as mqtt
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", mosquitto_broker["broker_port"])
        pub.loop_start()
        msgs = charger.charge(duration_s=3 * 3600)
        for t, p in msgs:
            pub.publish(t, p, qos=1).wait_for_publish(5)
        while len([r for r in results if r.kind != "tariff"]) < len(msgs) and time.time() < deadline + 10:
            time.sleep(0.05)
        pub.loop_stop()
        got = [(r.kind, r.status, r.reason) for r in results]
        assert ("receipt", "accepted", "") in got and all(s == "accepted" for _, s, _ in got), got
        assert "unknown-tariff" not in [r["reason"] for r in v.db.rejections()]
    finally:
        v.close()


def test_a_worker_of_a_validator_network_takes_published_tariffs(tmp_path, keys, pg_dsn):
    """Workers share one PostgreSQL store: a tariff published after a receipt named it counts
    from then on (the worker's read cache keeps no 'not published')."""
    from host_tools.validator.workers import Worker
    charger = SimCharger(tmp_path / "cp", "CP-0001", tariff_doc=DOC, seed=3)
    w = Worker(pg_dsn, "val-1", "w0", clock=lambda: charger.now + 5,
               operator_key=bytes.fromhex(op.public_spki_hex(keys[0])))
    try:
        w.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
        first = [w.process(t, p) for t, p in charger.charge()]
        assert first[0].reason == "unknown-tariff"
        assert w.process("tariff/std-2026", message(keys[1])).reason == "malformed"      # forged
        assert w.process("tariff/std-2026", message(keys[0])).status == "accepted"
        later = [w.process(t, p) for t, p in charger.charge()]
        assert all(r.status == "accepted" for r in later), later
    finally:
        w.close()


def test_cli_publish_checks_and_signs(tmp_path, keys, capsys):
    from host_tools import cli
    keyfile = tmp_path / "operator.pem"
    op.save_key(keys[0], str(keyfile))
    good, bad = tmp_path / "T.json", tmp_path / "bad.json"
    good.write_text(json.dumps(DOC))
    bad.write_text(json.dumps(dict(DOC, tz="CET-1CEST")))           # a DST zone without its rule
    assert cli.main(["tariff", "publish", "--file", str(good), "--key", str(keyfile), "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["topic"] == "tariff/std-2026" and not out["published"]
    assert out["hash"] == SimCharger(tmp_path / "cp", "CP-0001", tariff_doc=DOC).tariff.hash
    assert cli.main(["tariff", "publish", "--file", str(bad), "--key", str(keyfile), "--dry-run"]) == 2
    assert "tz" in capsys.readouterr().err
    # the validator's --operator-key: hex, a file of hex, or a PEM key
    spki_hex = op.public_spki_hex(keys[0])
    (tmp_path / "op.hex").write_text(spki_hex + "\n")
    for given in (spki_hex, str(tmp_path / "op.hex"), str(keyfile)):
        assert cli._operator_key(given) == bytes.fromhex(spki_hex)
