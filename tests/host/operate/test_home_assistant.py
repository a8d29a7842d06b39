"""Home Assistant discovery through a real Mosquitto: a charger that appears on the broker gets
its entities announced (retained, by HA's conventions), a button press becomes a command that the
firmware's own verifier accepts, and a retained or foreign press commands nothing."""
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from host_tools.operate.home_assistant import Discovery, HomeAssistantBridge
from host_tools.paths import firmware_on_path
from host_tools.provision import operator_cmd as op
from host_tools.sim.broker import MosquittoBroker

CHARGER = "CP-HA-1"


class Watcher:
    """A paho client that records every message on its filters."""

    def __init__(self, port, filters, name):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.c.on_message = lambda c, u, m: self._add(m)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        for f in filters:
            self.c.subscribe(f, 1)[0]

    def _add(self, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), m.retain))

    def wait(self, pred, timeout=10.0, count=1):
        """The messages matching pred once there are count of them (or at the timeout)."""
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                hits = [m for m in self.msgs if pred(m)]
            if len(hits) >= count or time.monotonic() > end:
                return hits
            time.sleep(0.02)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def broker(tmp_path):
    b = MosquittoBroker(workdir=str(tmp_path)).start()
    yield b
    b.stop()


def _bridge(port, key):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="chargeproof-ha")
    bridge = HomeAssistantBridge(client, key, Discovery(currency="EUR"))
    client.on_message = bridge.on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    bridge.subscribe()
    return client, bridge


def test_charger_is_announced_and_buttons_become_signed_commands(broker, tmp_path):
    key = op.generate_key()
    charger = Watcher(broker.port, [], "charger")
    charger.c.publish("cp/%s/status" % CHARGER, b"online", qos=1, retain=True).wait_for_publish(5)
    # A press left retained on the broker before the bridge runs must not start anything.
    charger.c.publish("chargeproof-ha/%s/button" % CHARGER, b"stop", qos=1,
                      retain=True).wait_for_publish(5)
    client, bridge = _bridge(broker.port, key)
    ha = Watcher(broker.port, ["homeassistant/#", "cp/+/cmd"], "home-assistant")
    try:
        configs = ha.wait(lambda m: m[0].startswith("homeassistant/") and m[1], count=7)
        docs = {t: json.loads(p) for t, p, _ in configs}
        assert len(docs) == 7
        late = Watcher(broker.port, ["homeassistant/#"], "late-home-assistant")
        kept = late.wait(lambda m: m[2], count=7)                      # retained for later
        late.close()
        assert {t for t, _, _ in kept} == set(docs)
        node = "chargeproof_cp_ha_1"
        energy = docs["homeassistant/sensor/%s/session_energy/config" % node]
        assert (energy["state_class"], energy["unit_of_measurement"]) == ("total_increasing", "Wh")
        cost = docs["homeassistant/sensor/%s/running_cost/config" % node]
        assert (cost["device_class"], cost["state_class"], cost["unit_of_measurement"]) == (
            "monetary", "total", "EUR")
        power = docs["homeassistant/sensor/%s/power/config" % node]
        assert (power["state_class"], power["unit_of_measurement"]) == ("measurement", "W")
        assert len({d["unique_id"] for d in docs.values()}) == 7
        assert all(d["device"]["identifiers"] == [node] for d in docs.values())
        assert all(d["availability_topic"] == "cp/%s/status" % CHARGER for d in docs.values())
        start = docs["homeassistant/button/%s/start/config" % node]
        # The retained "stop" commanded nothing.
        assert not ha.wait(lambda m: m[0].endswith("/cmd"), timeout=0.5)
        assert bridge.presses_refused == 1

        ha.c.publish(start["command_topic"], start["payload_press"], qos=1).wait_for_publish(5)
        cmds = ha.wait(lambda m: m[0] == "cp/%s/cmd" % CHARGER)
        assert len(cmds) == 1
        firmware_on_path()
        from uplink.commands import Verifier
        verifier = Verifier(str(tmp_path / "counter"), op.public_spki_hex(key), CHARGER, time.time,
                            cmd_key=op.command_key(key, CHARGER).hex())
        cmd = verifier.verify(cmds[0][1])
        assert cmd.name == "start" and cmd.args == {"id_tag": "HOME-ASSISTANT"}
        # A press for a charger nobody has seen, and junk, command nothing.
        ha.c.publish("chargeproof-ha/CP-OTHER/button", b"start", qos=1).wait_for_publish(5)
        ha.c.publish(start["command_topic"], b"reboot", qos=1).wait_for_publish(5)
        assert not ha.wait(lambda m: m[0] == "cp/CP-OTHER/cmd", timeout=0.5)
        assert len(ha.wait(lambda m: m[0].endswith("/cmd"))) == 1
        # Removal: empty retained documents.
        bridge.forget(CHARGER)
        assert len(ha.wait(lambda m: m[0].startswith("homeassistant/") and m[1] == b"",
                           count=7)) == 7
    finally:
        ha.close()
        charger.close()
        client.loop_stop()
        client.disconnect()


def test_ids_the_firmware_refuses_are_not_announced():
    firmware_on_path()
    from uplink.topics import TopicError, check_id
    from host_tools.operate.home_assistant import valid_charger_id
    for name in ("CP-7", "x" * 64, "x" * 65, "", "has space", "a/b", "a+b", "a#", "\u00e9", "~!"):
        try:
            check_id(name)
            firmware_ok = True
        except TopicError:
            firmware_ok = False
        assert valid_charger_id(name) == firmware_ok, name
    sent = []

    class Client:
        def publish(self, topic, payload, qos=0, retain=False):
            sent.append(topic)
    bridge = HomeAssistantBridge(Client(), op.generate_key())
    assert not bridge.announce("x" * 65)
    assert not bridge.announce("has space")
    assert bridge.announce("CP-7") and len(sent) == 7
    assert not bridge.announce("CP-7")                  # once
