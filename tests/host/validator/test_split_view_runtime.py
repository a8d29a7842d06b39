"""A split view caught at runtime: two validators (one on PostgreSQL, one on SQLite) run as MQTT
services on real Mosquitto, each cosigning what it accepts and reading the other's cosigned
checkpoints (cp/<charger>/cosig/<validator>). A charger whose flash was copied shows each of them
a different second session; both turn the two charger-signed roots for size 2 into split-view
evidence, stored and published on cp/<charger>/evidence/<validator>, while running."""
import json
import time

import paho.mqtt.client as mqtt

from host_tools.sim.charger import SimCharger
from host_tools.sim.valnet import FleetBroker
from host_tools.validator.workers import Worker
from host_tools.verify import cosignature as cs


def _wait(cond, timeout_s=30.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def test_two_roots_for_one_size_become_evidence_while_running(tmp_path, pg_dsn):
    (tmp_path / "broker").mkdir()
    broker = FleetBroker(workdir=str(tmp_path / "broker")).start()
    charger = SimCharger(tmp_path / "cp", "CP-0001", seed=5)
    signers = {"val-a": cs.Cosigner("val-a"), "val-b": cs.Cosigner("val-b")}
    stores = {"val-a": pg_dsn, "val-b": str(tmp_path / "val-b.sqlite")}
    vals = {}
    seen = []
    observer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="observer")
    observer.on_message = lambda c, u, m: seen.append((m.topic, json.loads(m.payload)))
    observer.connect(broker.host, broker.port)
    observer.subscribe("cp/+/evidence/+", qos=1)
    observer.loop_start()
    try:
        for name in ("val-a", "val-b"):
            w = Worker(stores[name], name, "w0", cosigner=signers[name],
                       peers=[s.witness for n, s in signers.items() if n != name],
                       tariffs=[charger.tariff_json()])
            w.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
            w.start(broker.host, broker.port)
            vals[name] = w
        for w in vals.values():
            assert w.subscribed.wait(20)
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="charger")
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        for topic, payload in charger.charge():             # the shared first session, over MQTT
            publisher.publish(topic, payload, qos=1).wait_for_publish(10)
        for w in vals.values():
            _wait(lambda w=w: w.db.latest_checkpoint("CP-0001") is not None, what="first checkpoint")
        # both cosigned size 1 and read each other's: same root, no evidence
        for name, w in vals.items():
            _wait(lambda w=w: len(w.db.cosignatures("CP-0001", 1)) == 2, what="peer cosignature")
        assert all(w.db.evidence() == [] for w in vals.values())

        twin = charger.clone(tmp_path / "twin")              # same key, same log: it can equivocate
        for topic, payload in charger.charge(energy_wh=4000):
            vals["val-a"].submit(topic, payload)
        for topic, payload in twin.charge(energy_wh=9000):
            vals["val-b"].submit(topic, payload)
        _wait(lambda: {t.rsplit("/", 1)[1] for t, d in seen if d["kind"] == "split-view"} == {"val-a", "val-b"},
              what="split-view evidence from both validators")
        for w in vals.values():
            (ev,) = [e for e in w.db.evidence("CP-0001") if e["kind"] == "split-view"]
            assert b"\n2\n" in ev["first"] and b"\n2\n" in ev["second"] and ev["first"] != ev["second"]
        publisher.loop_stop()
        publisher.disconnect()
    finally:
        observer.loop_stop()
        observer.disconnect()
        for w in vals.values():
            w.close()
        broker.stop()
