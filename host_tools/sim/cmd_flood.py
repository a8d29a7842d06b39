"""The command-flood attack (issue 8): a charger charging on the MicroPython unix port (the
frozen 32-bit build, 112 KiB heap, host_tools/devtools/mp/cmd_flood.py), its meter served by
pymodbus, a real broker; a flooder publishes well-formed junk on its command topic with real
operator commands spread through it, and the EV leaves state C during the flood. Used by
tests/host/attacks/test_command_flood.py and host_tools/bench/cmd_flood.py."""
from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from host_tools import paths
from host_tools.devtools import mp32, mprun
from host_tools.provision import operator_cmd as op
from host_tools.sim.attacks import junk_command
from host_tools.sim.broker import make_broker
from host_tools.sim.fleet import DEFAULT_BOARD, start_meter, stop

CHARGER = "CP-FLOOD"
T0 = 1800000000
REAL = 5
JUNK = 1000


def _flood(broker: Any, key: Any, junk: int, real: int, rng: random.Random) -> dict:
    """Publish junk with real commands spread through it; returns what was sent."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder")
    c.max_queued_messages_set(0)
    c.connect(broker.host, broker.port)
    c.loop_start()
    topic = "cp/%s/cmd" % CHARGER
    sent = {"junk": 0, "real": []}
    at = {junk * (i + 1) // (real + 1): i for i in range(real)}
    try:
        for i in range(junk):
            if i in at:
                k = at[i]
                msg = op.sign(key, CHARGER, "current_limit", {"ma": 16000 - 1000 * k},
                              n=100 + k, exp=T0 + 3600)
                c.publish(topic, msg, qos=1).wait_for_publish(10)
                sent["real"].append(100 + k)
            # A junk counter above the real ones: a counter check alone would not stop it.
            c.publish(topic, junk_command(rng, CHARGER, 10 ** 9 + i, i % 2 == 0), qos=0)
            sent["junk"] += 1
            if i % 50 == 49:
                time.sleep(0.01)            # paho's queue, not the attack, is the limit
        time.sleep(0.5)
    finally:
        c.loop_stop()
        c.disconnect()
    return sent


def run_flood(broker_kind: str = "mosquitto", with_cmd_key: bool = True, junk: int = JUNK,
              real: int = REAL, workdir: str | None = None, wall_s: int = 90) -> dict:
    """The attack: a charger charging, junk flooding its command topic, the EV leaving C
    during the flood, real commands among the junk. Returns the charger's account (JSON from
    host_tools/devtools/mp/cmd_flood.py) plus what the flooder sent."""
    _, frozen = mp32.build(log=lambda *a: None)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        broker = make_broker(broker_kind, **({"workdir": tmp} if broker_kind == "mosquitto" else {}))
        broker.start()
        meter_proc, meter = start_meter()
        key = op.generate_key()
        proc = None
        try:
            secrets = tmp + "/secrets.json"
            with open(secrets, "w") as f:
                sec = {"ack_keys": {}}
                if with_cmd_key:
                    sec["cmd_key"] = op.command_key(key, CHARGER).hex()
                json.dump(sec, f)
            cfg = {"board": str(DEFAULT_BOARD), "meter_port": meter["port"], "baud": meter["baud"],
                   "meter_control": meter["control"], "data": tmp + "/flash",
                   "host": broker.host, "port": broker.port, "t0": T0, "charger": CHARGER,
                   "operator_spki": op.public_spki_hex(key), "secrets": secrets,
                   "real": real, "junk": junk, "leave_at": junk * 2 // 5, "wall_s": wall_s}
            env = dict(os.environ, MICROPYPATH=".frozen")
            proc = subprocess.Popen([str(frozen), "-X", "heapsize=%d" % mprun.HEAP_32,
                                     str(paths.MP_SIDE / "cmd_flood.py")], env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(cfg) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if line.strip() != "CHARGING":
                proc.kill()
                raise RuntimeError("charger did not start charging: %r %s" % (line, proc.stderr.read()))
            sent: dict = {}
            flooder = threading.Thread(target=lambda: sent.update(
                _flood(broker, key, junk, real, random.Random(8))))
            flooder.start()
            out, err = proc.communicate(timeout=wall_s + 60)
            flooder.join(60)
            if proc.returncode != 0:
                raise RuntimeError("flood charger failed:\n%s\n%s" % (out, err))
            got = json.loads(out.strip().splitlines()[-1])
            got["sent"] = sent
            return got
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            stop(meter_proc)
            broker.stop()
