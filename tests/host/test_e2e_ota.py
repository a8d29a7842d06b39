"""End to end: a fleet update over a real Mosquitto to a MicroPython charger (app/sim_main.py on
the unix port, booted through the boot selector as /main.py boots a board), served by the
host's update server (host_tools/operate/ota_server.py) from the firmware's own build.

Boot 1 runs the image (GV "0"): a session starts, the operator publishes the update (the whole
`app` package as .mpy, version 2.0.0), and the power is cut mid-session, mid-download. Boot 2
(still the image) resumes the download at the first chunk not on flash (no finished chunk is
asked for again), refuses a chunk damaged on the way and asks again, holds the finished update
while a session charges and switches only after the unplug, then resets. Boot 3 runs 2.0.0 on
trial, confirms it, reports it on the status topic, and its receipt carries GV 2.0.0.
"""
import json
import threading
import time

import paho.mqtt.client as mqtt

from host_tools.demo import CARDS, card_provisioning
from host_tools.mqtt_conn import BrokerSpec
from host_tools.operate.ota_server import OtaServer, Update, package_files
from host_tools.paths import MPY_BUILD
from host_tools.provision import operator_cmd as op
from host_tools.provision import ota_manifest, secrets
from host_tools.sim.fleet import Device

CP = "CP-OTA-E2E"
T0 = 1800000000
CARD_KEY = secrets.new_pseudonym_key()     # the operator's card pseudonym key


class Watch:
    """Everything the charger publishes (receipts, update status), via paho."""

    def __init__(self, port):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-watch")
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("cp/%s/#" % CP, 1)
        self.c.loop_start()

    def _on(self, client, userdata, msg):
        with self.lock:
            self.msgs.append((msg.topic, bytes(msg.payload)))

    def statuses(self):
        with self.lock:
            return [json.loads(p) for t, p in self.msgs if t.endswith("/ota/status") and p]

    def receipts(self):
        with self.lock:
            return [p for t, p in self.msgs if "/receipt/" in t]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _wait(cond, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %d s" % (what, timeout))
        time.sleep(0.05)


def _device(tmp_path, b, spki, plan, meter=None, **scenario):
    """The charger booted from its flash (meter given: a reboot, the meter kept its count)."""
    config = {"operator_key": spki, "ota_confirm_s": 1800, "ota_retry_ms": 500, "meter_serial": "SIM-OTA",
              "allow_list": card_provisioning(CARD_KEY),
              "telemetry_interval_s": 600}
    dev = Device(CP, tmp_path / "flash", b["host"], b["port"], plan, start_time=T0,
                 config=config, drain_s=1, meter=meter,
                 start_wh=1000000 if meter is None else None)
    dev.scenario_extra = scenario
    return dev


def test_fleet_update_resumes_after_a_power_cut_waits_for_the_unplug_and_runs(tmp_path,
                                                                              mosquitto_broker):
    b = mosquitto_broker
    key = op.generate_key()
    files = package_files(MPY_BUILD, ["app"])
    update = Update.load(ota_manifest.signed(key, "2.0.0", 2, 0, files), files)
    total = sum(len(t.levels[0]) for t in update.trees)
    server = OtaServer(BrokerSpec(b["host"], b["broker_port"]), [update]).start()
    watch = Watch(b["broker_port"])
    hold = threading.Event()
    boot = [1]
    damaged = []

    def network(charger, msg):
        if hold.is_set() or (boot[0] == 1 and len(server.requests) > total // 3):
            return None                              # answers lost (boot 1: the download stalls)
        at = (int.from_bytes(msg[8:10], "little"), int.from_bytes(msg[10:14], "little"))
        if boot[0] == 2 and (not damaged or (at == damaged[0] and not _corrupt_reported())):
            # One chunk damaged on the way, every copy of it until the charger has said so:
            # a second answer to the same chunk (asked again while the first was on its way)
            # would otherwise take the one slot the charger keeps per topic, newest first.
            if not damaged:
                damaged.append(at)
            return msg[:-1] + bytes([msg[-1] ^ 1])
        return msg

    def _corrupt_reported():
        return any(s.get("error") == "corrupt" for s in watch.statuses())
    server.tamper = network
    spki = op.public_spki_hex(key)
    charge = {"card": CARDS[0], "power_w": 11000, "minutes": 600, "idle_minutes": 0}
    devs = []
    try:
        # Boot 1: the image; the update arrives mid-session; the power goes mid-download.
        dev = _device(tmp_path, b, spki, [charge])
        devs.append(dev)
        dev.start()
        dev.provision(secrets.from_validators([], CP, CARD_KEY))     # kept on its flash
        dev.go()
        dev.wait_for("CHARGING 1", timeout=60)
        server.publish_manifest(update)
        _wait(lambda: len(server.requests) > total // 3 + 2, what="a third of the chunks asked for")
        dev.kill()
        before = list(server.requests)
        last = max((f, o) for _, _, f, o in before)
        assert len(set((f, o) for _, _, f, o in before)) < total
        # Boot 2: the image again; answers held until a session charges.
        hold.set()
        boot[0] = 2
        dev2 = _device(tmp_path, b, spki, [dict(charge, until_ota="waiting-idle")],
                       meter=dev.meter)
        devs.append(dev2)
        dev2.start()
        dev2.go()
        dev2.wait_for("CHARGING 1", timeout=60)
        hold.clear()
        line = dev2.wait_for("OTA ", timeout=120)
        assert line.split()[1:] == ["waiting-idle", "charging", "0", "confirmed"], dev2.lines  # staged, charging
        dev2.wait_for("REBOOT", timeout=60)          # after the unplug
        after = server.requests[len(before):]
        asked = [(f, o) for _, _, f, o in after]
        assert asked and min(asked) >= last, (last, asked[:3])   # nothing finished asked again
        assert damaged and asked.count(damaged[0]) >= 2          # refused and asked again
        assert any(s.get("error") == "corrupt" for s in watch.statuses())
        states = [s["state"] for s in watch.statuses()]
        assert states.index("waiting-idle") < states.index("rebooting")
        # Boot 3: the new version on trial; a session; confirmed.
        dev3 = _device(tmp_path, b, spki, [{"card": CARDS[0], "power_w": 7400, "minutes": 20,
                                            "idle_minutes": 0}], meter=dev.meter,
                       serve_until="confirmed")
        devs.append(dev3)
        boot[0] = 3
        dev3.start()
        dev3.go()
        line = dev3.wait_for("OTA ", timeout=120)
        assert line.split()[1] == "current" and line.split()[3:] == ["2.0.0", "confirmed"], line
        dev3.wait(timeout=120)
        _wait(lambda: watch.statuses() and watch.statuses()[-1]["running"] == "2.0.0"
              and not watch.statuses()[-1]["trial"], what="status: 2.0.0 confirmed")
        gv = [r.replace(b"\\", b"").split(b'"GV":"', 1)[1].split(b'"', 1)[0] for r in watch.receipts()]
        assert gv[0] == b"0" and gv[-1] == b"2.0.0", gv
    finally:
        server.withdraw()
        server.stop()
        watch.close()
        for d in reversed(devs):
            d.close()
