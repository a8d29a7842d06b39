"""OCPP bridge bench: `ocpp_session_roundtrip_ms`, the median over whole sessions of the time
from the CSMS's RemoteStartTransaction to its StopTransaction arriving, with the charger's side
played on MQTT (signed start command received, telemetry, a real signed receipt), through a
real Mosquitto and the bridge, against a CSMS built with the `ocpp` library (schemas on).
`ocpp_deauthorize_stop_ms`: the median, over card sessions the CSMS answers Blocked, of the
time from the session's first telemetry (naming the card's pseudonym) to the signed stop
command reaching the charger (Authorize round trip, signing, two MQTT hops)."""
import json
import os
import statistics
import tempfile
import time

import paho.mqtt.client as mqtt
from ocpp.v16 import call

from host_tools.operate.ocpp_bridge import OcppBridge
from host_tools.provision import operator_cmd as op
from host_tools.sim.broker import MosquittoBroker, free_port
from host_tools.sim.charger import SimCharger
from host_tools.sim.csms import CentralSystem

SESSIONS = 20
BLOCKED = 10
CID = "CP-BENCH-OCPP"


def _client(port, name, on_message=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError("ocpp bench: timed out")
        time.sleep(0.002)


def run():
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(workdir=tmp).start()
        csms = CentralSystem(free_port())
        sim = SimCharger(tmp + "/charger", CID)
        cmds = []
        charger = _client(broker.port, CID, lambda c, u, m: cmds.append(m.payload))
        charger.subscribe("cp/%s/cmd" % CID, 1)
        bridge_client = _client(broker.port, "ocpp-bridge")
        bridge = OcppBridge("ws://127.0.0.1:%d/ocpp/" % csms.port,
                            {CID: {"pubkey": sim.pubkey_der().hex()}}, op.generate_key(),
                            bridge_client, tmp + "/state")
        bridge_client.on_message = bridge.on_message
        bridge.subscribe()
        bridge.start()
        pub = lambda kind, p: charger.publish("cp/%s/%s" % (CID, kind), p, qos=1)  # noqa: E731
        try:
            pub("status", b"online")
            _wait(lambda: csms.wait("BootNotification", timeout=0))
            time.sleep(0.3)                 # the charger's and the bridge's subscriptions settle
            times = []
            for i in range(SESSIONS):
                t0 = time.perf_counter()
                res = csms.remote(CID, call.RemoteStartTransaction(id_tag="BENCH-%d" % i))
                if res.status != "Accepted":
                    raise RuntimeError("ocpp bench: remote start %d %s" % (i, res.status))
                _wait(lambda i=i: len(cmds) > i)
                begin = sim.meter_wh
                pub("telemetry", json.dumps({"w": 7000, "wh": 0, "price": 0, "reg": begin}))
                topic, record = sim.charge(energy_wh=5000)[0]
                pub(topic.split("/", 2)[2], record)
                _wait(lambda i=i: len(csms.wait("StopTransaction", timeout=0)) > i)
                times.append((time.perf_counter() - t0) * 1000)
            stops = []
            for i in range(BLOCKED):
                card = os.urandom(16).hex().upper()       # a card's pseudonym
                csms.id_tag_status[card[:20]] = "Blocked"
                had = len(cmds)
                t0 = time.perf_counter()
                pub("telemetry", json.dumps({"w": 7000, "wh": 0, "price": 0, "reg": sim.meter_wh,
                                             "id": card, "it": "LOCAL"}))
                _wait(lambda had=had: len(cmds) > had)
                stops.append((time.perf_counter() - t0) * 1000)
                topic, record = sim.charge(energy_wh=100, stop_reason="remote")[0]
                pub(topic.split("/", 2)[2], record)
                _wait(lambda i=i: len(csms.wait("StopTransaction", timeout=0)) > SESSIONS + i)
        finally:
            bridge.stop()
            for c in (charger, bridge_client):
                c.loop_stop()
                c.disconnect()
            csms.stop()
            broker.stop()
    return {"ocpp_session_roundtrip_ms": round(statistics.median(times), 3),
            "ocpp_sessions": SESSIONS,
            "ocpp_deauthorize_stop_ms": round(statistics.median(stops), 3)}
