"""The uplink as a real charger process, watched by paho-mqtt (a client nobody here wrote).

The firmware runs in its own process, under the MicroPython unix port and under CPython, against
amqtt and Mosquitto. The test pulls the plug (SIGKILL: no DISCONNECT, the kernel closes the
socket) and boots it again from the same flash directory.
"""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from host_tools.paths import FIRMWARE, FW_TESTS, MICROPYTHON, MPLIB
from host_tools.devtools.mprun import DATA_HEAP as MP_HEAPSIZE

CP = "CP-H"


class Observer:
    """A paho client recording (topic, payload, retain) of everything under cp/CP-H/."""

    def __init__(self, broker, name):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.c.on_message = self._on
        self.c.connect(broker["host"], broker["broker_port"])
        self.c.loop_start()
        self.c.subscribe("cp/%s/#" % CP, 1)[0]

    def _on(self, client, userdata, msg):
        with self.lock:
            self.msgs.append((msg.topic, msg.payload, bool(msg.retain)))

    def wait(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = [m for m in self.msgs if pred(m)]
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError("not observed within %.0f s; saw %r" % (timeout, self.msgs[-10:]))

    def receipts(self):
        with self.lock:
            return [(int(t.rsplit("/", 1)[1]), p) for t, p, _ in self.msgs if "/receipt/" in t]

    def ack(self, seq, payload, validator="v-paho"):
        body = json.dumps({"seq": seq, "sha256": hashlib.sha256(payload).hexdigest()})
        self.c.publish("cp/%s/ack/%s" % (CP, validator), body, qos=1).wait_for_publish(10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class ChargerProcess:
    def __init__(self, interp, cfg):
        env = dict(os.environ)
        if interp == "micropython":
            env["MICROPYPATH"] = os.pathsep.join([".frozen", str(FIRMWARE), str(MPLIB)])
            cmd = [MICROPYTHON, "-X", "heapsize=%d" % MP_HEAPSIZE]
        else:
            env["PYTHONPATH"] = os.pathsep.join([str(FIRMWARE), str(MPLIB)])
            cmd = [sys.executable, "-u"]
        self.p = subprocess.Popen(cmd + [str(FW_TESTS / "support" / "uplink_proc.py")], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write(json.dumps(cfg) + "\n")
        self.p.stdin.flush()
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.strip())

    def wait_line(self, line, timeout=20.0):
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise AssertionError("charger never said %r; said %r; stderr %s" % (
                    line, self.lines, self.p.stderr.read() if self.p.poll() is not None else ""))
            time.sleep(0.02)

    def power_cut(self):
        self.p.kill()
        self.p.wait(10)


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
def test_power_cut_fires_the_will_and_reboot_resends_in_order(tmp_path, mqtt_broker, interp):
    b = mqtt_broker
    payloads = [b"OCMF|{\"n\":%d}|{}" % i for i in range(1, 4)]
    obs = Observer(b, "obs-1")
    cfg = {"host": b["host"], "port": b["port"], "dir": str(tmp_path / "ob"), "charger": CP,
           "put": [p.decode() for p in payloads]}
    proc = ChargerProcess(interp, cfg)
    try:
        proc.wait_line("connected")
        obs.wait(lambda m: m[0].endswith("/receipt/3"))
        assert obs.receipts() == list(enumerate(payloads, 1))
        assert obs.wait(lambda m: m[0] == "cp/CP-H/status")[-1][1] == b"online"
        obs.ack(1, payloads[0])
        proc.wait_line("acked 1")
        obs.ack(3, b"not what was sent")          # names other bytes: ignored
    finally:
        proc.power_cut()
    assert obs.wait(lambda m: m[1] == b"offline")[0][0] == "cp/CP-H/status"   # last will
    late = Observer(b, "obs-late")
    # (amqtt sometimes delivers a retained message twice on subscribe: compare as a set)
    assert set(late.wait(lambda m: m[0] == "cp/CP-H/status")) == {
        ("cp/CP-H/status", b"offline", True)}
    late.close()

    with obs.lock:
        obs.msgs.clear()
    cfg["put"] = []
    proc = ChargerProcess(interp, cfg)                  # reboot from the same flash
    try:
        proc.wait_line("pending 2")
        obs.wait(lambda m: m[0].endswith("/receipt/3"))
        assert obs.receipts() == [(2, payloads[1]), (3, payloads[2])]
        obs.ack(2, payloads[1])
        obs.ack(3, payloads[2])
        proc.wait_line("acked 3")
    finally:
        proc.power_cut()
    obs.close()
