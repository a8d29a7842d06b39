"""End to end with the broker locked down: a MicroPython charger (the real firmware,
app/sim_main.py) logs in as its charger id over TLS, checking the broker's certificate against
the test CA; two validators log in over TLS as themselves. Every receipt is verified and
acknowledged by both, so the charger's outbox drains; the broker's log shows each party under
its own login as client id.
"""
import time

from host_tools.demo import CARDS, card_provisioning, default_tariff
from host_tools.mqtt_conn import charger_config
from host_tools.provision import secrets
from host_tools.sim.fleet import Device
from host_tools.validator.store import LedgerDB
from host_tools.validator.service import Validator

CARD_KEY = secrets.new_pseudonym_key()     # the operator's card pseudonym key


def test_tls_charger_delivers_receipts_to_tls_validators(tmp_path, secure_mosquitto):
    b = secure_mosquitto
    tariff = default_tariff()
    validators = [Validator(str(tmp_path / ("ledger-%s.sqlite" % v)), v, tariffs=[tariff],
                            broker=b.spec(v)).start() for v in ("val-a", "val-b")]
    config = {"allow_list": card_provisioning(CARD_KEY), "meter_serial": "SIM-CP-1", "validators": ["val-a", "val-b"]}
    config.update(charger_config(b.spec("CP-1")))
    assert config["mqtt_tls"] and config["mqtt_user"] == "CP-1"
    plan = [{"card": CARDS[0], "power_w": 11000, "minutes": 30, "idle_minutes": 5},
            {"card": CARDS[1], "power_w": 7400, "minutes": 20, "idle_minutes": 0}]
    dev = Device("CP-1", tmp_path / "flash", b["host"], b["port"], plan,
                 start_time=int(time.time()) - 86400, config=config, drain_s=60)
    try:
        dev.start()
        for v in validators:
            v.enroll("CP-1", bytes.fromhex(dev.pubkey_hex), origin="chargeproof.local/CP-1")
            assert v.subscribed.wait(10)
        dev.provision(secrets.from_validators(validators, "CP-1", CARD_KEY))   # ack, card keys
        dev.go()
        assert dev.wait(timeout=300) == 0            # every receipt acked by both validators
    finally:
        dev.close()
        for v in validators:
            v.stop()
    for v in ("val-a", "val-b"):
        rows = LedgerDB(str(tmp_path / ("ledger-%s.sqlite" % v))).sessions()
        assert [r["status"] for r in rows] == ["accepted", "accepted"]
    log = open(b.broker.log).read()
    assert "as CP-1 (" in log and "u'CP-1'" in log       # the charger's client id is its login
    assert "as val-a (" in log and "as val-b (" in log
