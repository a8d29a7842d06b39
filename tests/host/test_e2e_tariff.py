"""End to end through a real Mosquitto: the operator publishes two tariffs once (retained, signed;
the second with a valid_from between the two sessions) before anyone listens; then a validator
and a MicroPython charger (the real firmware, app/sim_main.py) start, both pick the tariffs up
from the retained messages and check the operator's signature. Session 1 is billed by the first,
session 2 (starting after the second's valid_from) by the second; the validator recomputes both
prices and accepts both receipts: no unknown-tariff anywhere."""
import json
import time

from host_tools.demo import CARDS, card_provisioning
from host_tools.mqtt_conn import BrokerSpec
from host_tools.provision import operator_cmd as op
from host_tools.provision import secrets, tariff_doc
from host_tools.sim.fleet import Device
from host_tools.validator.service import Validator
from host_tools.validator.store import LedgerDB


def tariff(tid, valid_from, price, tz="CET-1CEST,M3.5.0,M10.5.0/3"):
    return {"v": 2, "id": tid, "currency": "EUR", "valid_from": valid_from, "tz": tz,
            "session_fee_minor": 35,
            "bands": [{"start_min": 0, "kwh_price_milli": price}, {"start_min": 1020, "kwh_price_milli": price + 9000}],
            "idle_min_price_milli": 1000, "idle_grace_min": 2, "tax_bp": 1900,
            "slot_s": 900, "slots": [[(valid_from // 900 + i) * 900, price - 5000 + 700 * i] for i in range(40)]}


def test_published_tariffs_reach_charger_and_validator(tmp_path, mosquitto_broker):
    b = mosquitto_broker
    spec = BrokerSpec("127.0.0.1", b["broker_port"])
    key = op.generate_key()
    keyfile = tmp_path / "operator.pem"
    op.save_key(key, str(keyfile))
    start = int(time.time()) - 86400
    docs = [tariff("std-a", start - 3600, 31000), tariff("std-b", start + 20 * 60, 45000)]
    published = []
    for d in docs:
        path = tmp_path / (d["id"] + ".json")
        path.write_text(json.dumps(d))
        published.append(tariff_doc.main_publish(str(path), str(keyfile), spec))   # once, retained

    v = Validator(str(tmp_path / "ledger.sqlite"), "val-a", operator_key=bytes.fromhex(op.public_spki_hex(key)))
    v.start("127.0.0.1", b["broker_port"])
    card_key = secrets.new_pseudonym_key()          # the operator's card pseudonym key
    config = {"allow_list": card_provisioning(card_key), "meter_serial": "SIM-CP-T", "validators": ["val-a"],
              "operator_key": op.public_spki_hex(key)}
    plan = [{"card": CARDS[0], "power_w": 11000, "minutes": 30, "idle_minutes": 5},
            {"card": CARDS[1], "power_w": 7400, "minutes": 20, "idle_minutes": 0}]
    dev = Device("CP-T", tmp_path / "flash", b["host"], b["port"], plan, start_time=start,
                 config=config, drain_s=60)
    try:
        dev.start()
        v.enroll("CP-T", bytes.fromhex(dev.pubkey_hex), origin="chargeproof.local/CP-T")
        assert v.subscribed.wait(10)
        dev.provision(secrets.from_validators([v], "CP-T", card_key))     # ack and card keys
        dev.go()
        assert dev.wait(timeout=300) == 0            # every receipt acknowledged by the validator
    finally:
        dev.close()
        v.stop()
    db = LedgerDB(str(tmp_path / "ledger.sqlite"))
    assert sorted(t["tariff_hash"] for t in db.tariffs()) == sorted(p["hash"] for p in published)
    rows = db.sessions()
    assert [r["status"] for r in rows] == ["accepted", "accepted"], rows
    assert [r["tariff_hash"] for r in rows] == [p["hash"] for p in published]
    assert [r["begin_time"] < docs[1]["valid_from"] for r in rows] == [True, False]
    assert all(r["price_minor"] > 0 for r in rows)
    assert "unknown-tariff" not in [r["reason"] for r in db.rejections()]
