"""End to end: the CSMS decides about cards (OCPP 1.6 Authorize, StopTransactionOnInvalidId).

The firmware on MicroPython (app.sim_main: the driver's card at the charger, present_card, a
pymodbus meter) -> real Mosquitto -> the OCPP bridge -> a central system built with the `ocpp`
library (schemas checked both ways). Both cards are on the charger's allow-list; the CSMS
accepts the first and answers Blocked for the second. The first charges its whole session;
the second is stopped by the bridge's signed stop command, which the charger verifies: its
contacts open and its StopTransaction says DeAuthorized. Every OCPP message names a card by
the first 20 digits of its pseudonym, never by its UID.
"""
import json
import threading
import time

import paho.mqtt.client as mqtt

from host_tools.demo import CARDS
from host_tools.operate.ocpp_bridge import OcppBridge
from host_tools.provision import operator_cmd as op
from host_tools.provision import secrets
from host_tools.provision.pseudonym import pseudonym
from host_tools.sim.broker import make_broker
from host_tools.sim.csms import CentralSystem
from host_tools.sim.broker import free_port
from host_tools.sim.fleet import Device

CID = "CP-AUTH-1"


class Results:
    """The charger's answers to commands (cp/<id>/cmd/result)."""

    def __init__(self, broker):
        self.results = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="results")
        self.c.on_message = self._on
        self.c.on_connect = lambda c, *_: c.subscribe("cp/%s/cmd/result" % CID, 1)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _on(self, client, userdata, msg):
        with self.lock:
            self.results.append(json.loads(msg.payload))

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_the_csms_accepts_one_card_and_stops_a_blocked_one(tmp_path):
    card_key = secrets.new_pseudonym_key()
    accepted, blocked = (pseudonym(card_key, uid) for uid in CARDS[:2])
    key = op.generate_key()
    broker = make_broker("mosquitto", workdir=str(tmp_path))
    broker.start()
    csms = CentralSystem(free_port())
    csms.id_tag_status[blocked[:20]] = "Blocked"
    results = Results(broker)
    plan = [{"card": CARDS[0], "power_w": 11000, "minutes": 3, "until_stopped": True},
            {"card": CARDS[1], "power_w": 11000, "minutes": 60, "until_stopped": True}]
    dev = Device(CID, tmp_path / "flash", broker.host, broker.port, plan,
                 start_time=int(time.time()) - 86400, drain_s=5,
                 config={"allow_list": [accepted, blocked], "meter_serial": "SIM-AUTH",
                         "operator_key": op.public_spki_hex(key)})
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ocpp-bridge")
    bridge = None
    try:
        dev.start()
        dev.provision(secrets.from_validators([], CID, card_key, operator_key=key))
        bridge = OcppBridge("ws://127.0.0.1:%d/ocpp/" % csms.port, {CID: {"pubkey": dev.pubkey_hex}},
                            key, client, str(tmp_path / "bridge"))
        client.on_message = bridge.on_message
        client.on_connect = lambda c, *_: bridge.subscribe()
        client.connect(broker.host, broker.port)
        client.loop_start()
        bridge.start()
        assert csms.wait("BootNotification")          # the CSMS is there when sessions start
        dev.go()
        dev.wait(timeout=300)
        stops = csms.wait("StopTransaction", count=2, timeout=30)
    finally:
        if bridge is not None:
            bridge.stop()
        client.loop_stop()
        client.disconnect()
        dev.close()
        results.close()
        csms.stop()
        broker.stop()

    # The accepted card charged its whole session; the blocked one was stopped under way.
    assert "CONTACTS 1 closed charging" in dev.lines, dev.lines
    assert "CONTACTS 2 open stopped" in dev.lines, dev.lines
    assert [c[2]["id_tag"] for c in csms.calls if c[1] == "Authorize"] == [accepted[:20],
                                                                          blocked[:20]]
    assert [c[2]["id_tag"] for c in csms.calls if c[1] == "StartTransaction"] == [
        accepted[:20], blocked[:20]]
    assert [(s[2]["id_tag"], s[2]["reason"]) for s in stops] == [
        (accepted[:20], "EVDisconnected"), (blocked[:20], "DeAuthorized")]
    # One command reached the charger, verified (signature and MAC) and carried out: the stop.
    assert [(r["cmd"], r["result"]) for r in results.results] == [("stop", "ok")]
    seen = repr(csms.calls).upper()
    for uid in CARDS[:2]:
        assert uid.upper() not in seen
