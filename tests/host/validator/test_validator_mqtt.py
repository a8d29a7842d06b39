"""Validators as services on a real broker (amqtt in-process and Mosquitto): the firmware's own
uplink (ChargerLog -> Outbox on flash -> Link on umqtt.simple, run under CPython) publishes
real receipts; two validators, each with its own SQLite ledger and its own ack topic, agree on
every session, and the charger's outbox empties only when both have acknowledged."""
import time

import paho.mqtt.client as mqtt
import pytest

from host_tools.provision import secrets
from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator
from uplink.acks import AckChecker
from uplink.mqtt import Link
from uplink.outbox import Outbox

VALIDATORS = ("val-1", "val-2")


def wait_for(cond, timeout_s=20.0, step=None):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        if step:
            step()
        time.sleep(0.01)
    return True


def ledger_view(v, charger_id):
    """What a validator holds for a charger, in a comparable form."""
    return ([(r["log_index"], r["seq"], r["leaf_hash"], r["status"], r["energy_wh"], r["price_minor"])
             for r in v.db.sessions(charger_id)],
            [(c["size"], c["root"]) for c in v.db.checkpoints(charger_id)])


@pytest.fixture
def fleet(tmp_path, mqtt_broker):
    chargers = [SimCharger(tmp_path / ("cp%d" % i), "CP-%04d" % i, seed=i) for i in (1, 2)]
    now = lambda: max(c.now for c in chargers) + 5
    validators = []
    for vid in VALIDATORS:
        v = Validator(str(tmp_path / (vid + ".sqlite")), vid, tariffs=[chargers[0].tariff_json()], clock=now)
        for c in chargers:
            v.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
        v.start("127.0.0.1", mqtt_broker["broker_port"])
        validators.append(v)
    assert all(v.subscribed.wait(10) for v in validators)
    links = []
    for c in chargers:
        box = Outbox(str(tmp_path / ("outbox-" + c.charger_id)), validators=VALIDATORS)
        keys = secrets.from_validators(validators, c.charger_id)["ack_keys"]
        links.append(Link(c.charger_id, "127.0.0.1", mqtt_broker["port"], box, timeout_ms=2000,
                          ack_checker=AckChecker(c.charger_id, keys),
                          backoff_min_ms=50, backoff_max_ms=500, window=16, burst=8,
                          resend_ms=1000))   # amqtt drops offline sessions: the resend covers it
    yield {"chargers": chargers, "validators": validators, "links": links, "broker": mqtt_broker}
    for link in links:
        link.close()
    for v in validators:
        v.close()


def record_sessions(charger, link, n, **kw):
    for i in range(n):
        rec, cp, _ = charger.append(charger.session_dict(energy_wh=1000 + 37 * i, **kw))
        link.outbox.put("receipt", rec)
        link.outbox.put("checkpoint", cp)


def poll_all(links):
    for link in links:
        link.poll()


def test_two_validators_agree_and_the_outbox_empties_only_with_both_acks(fleet):
    chargers, validators, links = fleet["chargers"], fleet["validators"], fleet["links"]
    for c, link in zip(chargers, links):
        record_sessions(c, link, 6)
    assert wait_for(lambda: all(lk.outbox.acked == lk.outbox.last_seq == 12 for lk in links),
                    step=lambda: poll_all(links)), [(lk.outbox.acked, lk.last_error) for lk in links]
    for c in chargers:
        views = [ledger_view(v, c.charger_id) for v in validators]
        assert views[0] == views[1]
        assert len(views[0][0]) == 6 and [s[3] for s in views[0][0]] == ["accepted"] * 6
        assert [size for size, _ in views[0][1]] == list(range(1, 7))
    for v in validators:
        assert v.counts.get("receipt_accepted") == 12 and v.counts.get("checkpoint_accepted") == 12
        assert v.db.rejections() == []


def test_a_validator_that_was_down_catches_up_and_both_still_agree(fleet):
    chargers, validators, links = fleet["chargers"], fleet["validators"], fleet["links"]
    c, link = chargers[0], links[0]
    record_sessions(c, link, 2)
    assert wait_for(lambda: link.outbox.acked == 4, step=lambda: link.poll())
    validators[1].stop()                                 # val-2 goes away; its session stays on the broker
    record_sessions(c, link, 3)
    assert wait_for(lambda: validators[0].db.log_size(c.charger_id) == 5, step=lambda: link.poll())
    for _ in range(20):
        link.poll()
    assert link.outbox.acked == 4                        # val-2's ack is required: nothing leaves flash
    validators[1].start("127.0.0.1", fleet["broker"]["broker_port"])
    assert wait_for(lambda: link.outbox.acked == 10, timeout_s=60, step=lambda: link.poll()), \
        (link.outbox.acked, validators[1].counts)
    assert ledger_view(validators[0], c.charger_id) == ledger_view(validators[1], c.charger_id)
    assert validators[1].db.log_size(c.charger_id) == 5


def test_forged_messages_on_the_broker_are_not_acked(fleet):
    chargers, validators, links = fleet["chargers"], fleet["validators"], fleet["links"]
    c, link = chargers[0], links[0]
    record_sessions(c, link, 1)
    assert wait_for(lambda: link.outbox.acked == 2, step=lambda: link.poll())
    acks = []
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    spy.on_message = lambda cl, ud, m: acks.append(m.topic)
    spy.connect("127.0.0.1", fleet["broker"]["broker_port"])
    spy.subscribe([("cp/+/ack/+", 1), ("cp/+/evidence/+", 1)])
    spy.loop_start()
    try:
        rec = bytes(c.log.last_receipt)
        body, sig = rec.rsplit(b"|", 1)
        forged = body.replace(b'"energy_wh":', b'"energy_wh":9', 1) + b"|" + sig
        spy.publish("cp/%s/receipt/3" % c.charger_id, forged, qos=1).wait_for_publish(5)
        assert wait_for(lambda: all(v.counts.get("receipt_rejected") == 1 for v in validators))
        time.sleep(0.5)
        # no ack, and no evidence report: an unauthenticated copy accuses nobody (issue 8)
        assert acks == []
        for v in validators:
            assert [r["reason"] for r in v.db.rejections()] == ["bad-signature"]
            assert v.db.evidence() == []
    finally:
        spy.loop_stop()
        spy.disconnect()


def test_chargeproof_validate_serves_on_the_broker(tmp_path, amqtt_broker):
    """The console script's service mode: enroll, run `chargeproof validate`, see the ack."""
    import json
    import os
    import signal
    import subprocess
    import sys
    c = SimCharger(tmp_path / "cp", "CP-0042", seed=42)
    db = str(tmp_path / "svc.sqlite")
    exe = os.path.join(os.path.dirname(sys.executable), "chargeproof")
    tariff = tmp_path / "t.json"
    tariff.write_text(c.tariff_json())
    assert subprocess.run([exe, "enroll", "--db", db, "--charger", c.charger_id, "--pubkey",
                           c.pubkey_der().hex(), "--origin", c.origin]).returncode == 0
    proc = subprocess.Popen([exe, "validate", "--db", db, "--broker", "127.0.0.1", "--port",
                             str(amqtt_broker["broker_port"]), "--id", "svc", "--tariff", str(tariff)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    acks = []
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    spy.on_message = lambda cl, ud, m: acks.append((m.topic, json.loads(m.payload)))
    spy.connect("127.0.0.1", amqtt_broker["broker_port"])
    spy.subscribe("cp/+/ack/+", qos=1)
    spy.loop_start()
    try:
        msgs = c.charge()
        # the service subscribes when it is up; resend (as the outbox does) until it acks
        for _ in range(60):
            for t, p in msgs:
                spy.publish(t, p, qos=1)
            if wait_for(lambda: len(acks) >= 2, timeout_s=0.5):
                break
        assert acks[0][0] == "cp/CP-0042/ack/svc" and acks[0][1]["seq"] == 1
    finally:
        spy.loop_stop()
        spy.disconnect()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    r = subprocess.run([exe, "sessions", "--db", db], capture_output=True, text=True)
    assert "CP-0042" in r.stdout and "accepted" in r.stdout


def test_every_ack_names_something_already_committed_to_the_ledger_file(fleet, tmp_path):
    """Read the validator's SQLite file from another connection the moment each ack arrives:
    what the ack names is already there (the ack is published only after the commit)."""
    import hashlib
    import sqlite3
    chargers, validators, links = fleet["chargers"], fleet["validators"], fleet["links"]
    c, link = chargers[0], links[0]
    reader = sqlite3.connect(validators[0].db.path, check_same_thread=False)
    seen, snapshots = {}, []

    def on_message(cl, ud, m):
        if "/ack/" in m.topic:
            if m.topic.endswith("/val-1"):
                held = {bytes(r[0]) for r in reader.execute("SELECT receipt FROM receipts")}
                held |= {bytes(r[0]) for r in reader.execute("SELECT note FROM checkpoints")}
                snapshots.append((__import__("json").loads(m.payload)["sha256"], held))
        else:
            seen[hashlib.sha256(m.payload).hexdigest()] = bytes(m.payload)

    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    spy.on_message = on_message
    spy.connect("127.0.0.1", fleet["broker"]["broker_port"])
    spy.subscribe([("cp/+/ack/+", 1), ("cp/+/receipt/+", 1), ("cp/+/checkpoint/+", 1)])
    spy.loop_start()
    try:
        time.sleep(0.2)
        record_sessions(c, link, 5)
        assert wait_for(lambda: link.outbox.acked == 10, step=lambda: link.poll())
        assert wait_for(lambda: len(snapshots) >= 10)
    finally:
        spy.loop_stop()
        spy.disconnect()
        reader.close()
    for digest, held in snapshots:
        assert seen[digest] in held
