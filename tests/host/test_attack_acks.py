"""Issue 8's forged-ack attack, replayed against the real firmware on the MicroPython unix port
(app.sim_main: the whole charger, pymodbus meter), a real Mosquitto and two real validators.

Before the fix, any broker client that saw a receipt could publish {"seq": N, "sha256": ...} on
cp/<charger>/ack/<validator> (live, or retained while the charger was offline) and the charger
deleted the receipt, its only copy: a validator that came online later never got it and saw a
gap forever. Now the charger requires both validators' authenticated acks; the attacker's acks
(the old form with the right digest, MACs under guessed keys, retained ones) delete nothing,
and the late validator still receives and acks every receipt."""
import hashlib
import json
import threading
import time

import paho.mqtt.client as mqtt
from host_tools.demo import CARDS, card_provisioning, default_tariff
from host_tools.provision import secrets
from host_tools.sim.broker import make_broker
from host_tools.sim.fleet import Device, start_meter, stop
from host_tools.validator import acks
from host_tools.validator.service import Validator

CARD_KEY = secrets.new_pseudonym_key()     # the operator's card pseudonym key

CID = "CP-ATK-1"
VALIDATORS = ("val-a", "val-b")


def _forgeries(seq, payload):
    """What an attacker who saw a receipt can send for it."""
    digest = hashlib.sha256(payload).hexdigest()
    out = [json.dumps({"seq": seq, "sha256": digest}).encode()]           # the old, unsigned ack
    for v in VALIDATORS:
        out.append(acks.make_ack(v, CID, "receipt", seq, payload, "k1", b"\0" * 32))   # guessed key
    return out


class Attacker:
    """Subscribes to every receipt and answers each with forged acks for both validators."""

    def __init__(self, broker):
        self.seen = []
        self.sent = 0
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker")
        self.c.on_message = self._on
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def plant_retained(self):
        """Left on the broker while the charger is offline: it gets them when it subscribes."""
        for v in VALIDATORS:
            for seq in range(1, 7):
                fake = acks.make_ack(v, CID, "receipt", seq, b"whatever", "k1", b"\1" * 32)
                self.c.publish("cp/%s/ack/%s" % (CID, v), fake, qos=1, retain=True).wait_for_publish(5)
        # The broker keeps the last retained message per topic: one forged ack per validator.

    def watch(self):
        self.c.subscribe("cp/+/receipt/+", 1)

    def _on(self, client, userdata, msg):
        seq = int(msg.topic.rsplit("/", 1)[1])
        with self.lock:
            self.seen.append(seq)
        for v in VALIDATORS:
            for raw in _forgeries(seq, msg.payload):
                client.publish("cp/%s/ack/%s" % (CID, v), raw, qos=1)
                self.sent += 1

    def close(self):
        for v in VALIDATORS:
            self.c.publish("cp/%s/ack/%s" % (CID, v), b"", qos=1, retain=True).wait_for_publish(5)
        self.c.loop_stop()
        self.c.disconnect()


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_forged_live_and_retained_acks_delete_nothing_and_a_late_validator_gets_every_receipt(tmp_path):
    broker = make_broker("mosquitto", workdir=str(tmp_path))
    broker.start()
    tariff = default_tariff()
    validators = [Validator(str(tmp_path / ("%s.sqlite" % v)), v, tariffs=[tariff]) for v in VALIDATORS]
    meter_proc, meter = start_meter()
    attacker = Attacker(broker)
    plan = [{"card": CARDS[0], "power_w": 11000, "minutes": m, "idle_minutes": 0} for m in (20, 30, 40)]
    dev = Device(CID, tmp_path / "flash", broker.host, broker.port, plan, meter=meter,
                 start_time=int(time.time()) - 86400, drain_s=120,
                 config={"allow_list": card_provisioning(CARD_KEY), "meter_serial": "SIM-ATK",
                         "validators": list(VALIDATORS), "mqtt_resend_ms": 1500})
    try:
        attacker.plant_retained()                  # the charger is not online yet
        dev.start()
        for v in validators:
            v.enroll(CID, bytes.fromhex(dev.pubkey_hex), origin="chargeproof.local/" + CID)
        dev.provision(secrets.from_validators(validators, CID, CARD_KEY))
        validators[0].start(broker.host, broker.port)           # val-b stays away for now
        assert validators[0].subscribed.wait(10)
        attacker.watch()
        dev.go()
        # val-a stores all three receipts; the attacker forged acks for every copy it saw.
        assert _wait(lambda: validators[0].db.log_size(CID) == 3, 120), \
            (validators[0].counts, dev.proc.poll(), dev.lines[-20:])
        assert _wait(lambda: attacker.sent >= 3 * 2 * 3, 30)
        time.sleep(3)                              # resends, more forged acks, nothing deleted
        validators[1].start(broker.host, broker.port)           # the late validator
        assert dev.wait(timeout=300) == 0          # every receipt acked by both, then drained
    finally:
        dev.close()
        for v in validators:
            v.stop()
        attacker.close()
        broker.stop()
        stop(meter_proc)
    late = validators[1]
    assert late.db.log_size(CID) == 3
    assert [r["reason"] for r in late.db.rejections()] == []            # no gap, nothing lost
    assert [r["leaf_hash"] for r in late.db.sessions(CID)] == \
           [r["leaf_hash"] for r in validators[0].db.sessions(CID)]
    assert late.db.latest_checkpoint(CID)["size"] == 3
    # The attacker saw records resent while val-b was away: they were still on the charger.
    assert max(attacker.seen.count(s) for s in set(attacker.seen)) >= 2
    for v in validators:
        v.close()
