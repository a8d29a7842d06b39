"""Bench rows for the firmware on the 32-bit "virtual ESP32" (host_tools/devtools/mp32.py).

app_heap_peak_bytes_32        the smallest `-X heapsize` with which the whole app completes a
                              session: MQTT uplink connected to a real broker (Mosquitto),
                              telemetry, two signed operator commands verified and applied,
                              the receipt signed, logged, published and acknowledged by a real
                              validator. Bisected to 1 KiB. Goal <= 73728 (72 KiB).
heap_min_free_after_1000_sessions_32
                              1,000 such sessions in one process with a 112 KiB heap: the
                              lowest free heap right after a collection, sampled at each
                              session's start of charging, end of charging and end.
heap_largest_free_block_after_1000_sessions_32
                              the largest free block (micropython.mem_info's "max free sz",
                              16-byte blocks) at the end of those 1,000 sessions.
meter_read_alloc_bytes_32     bytes allocated by one meter read (SDM630 against pymodbus, the
                              mean of 200 reads with the collector off).
pilot_poll_alloc_bytes_32     bytes allocated by one pilot poll (plus the clock's advance).
clock_alloc_bytes_32          bytes allocated by one clock.time() + ticks_ms() pass.
firmware_bytecode_bytes_32    heap the board's firmware takes when imported from .mpy files
                              on the stock 32-bit image (what the .mpy deployment costs; frozen,
                              it is in flash).
"""
import json
import re
import subprocess
import tempfile
import time

import paho.mqtt.client as mqtt

from host_tools import paths
from host_tools.devtools import build_mpy, mp32, mprun
from host_tools.provision import operator_cmd as op
from host_tools.provision import secrets
from host_tools.sim.broker import MosquittoBroker
from host_tools.sim.fleet import DEFAULT_BOARD, start_meter, stop
from host_tools.validator.service import Validator

CHARGER = "CP-ESP32-1"
_NEW_TARIFF = ('{"v":1,"currency":"EUR","utc_offset_min":60,"session_fee_minor":50,'
               '"bands":[{"start_min":0,"kwh_price_milli":31000}],'
               '"idle_min_price_milli":0,"idle_grace_min":0,"tax_bp":1900}')


def _default_tariff():
    from host_tools.demo import default_tariff
    return default_tariff()


class _Rig:
    """Broker, meter and validator for the app runs (kept across runs)."""

    def __enter__(self):
        self.broker = MosquittoBroker()
        self.broker.start()
        self.meter_proc, self.meter = start_meter()
        self.tmp = tempfile.mkdtemp(prefix="cp-esp32-bench-")
        self.validator = Validator(self.tmp + "/ledger.sqlite", "val-esp32",
                                   tariffs=[_default_tariff(), _NEW_TARIFF])
        self.validator.start(self.broker.host, self.broker.port)
        self.validator.subscribed.wait(10)
        self.key = op.generate_key()
        self.operator = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="operator-bench")
        self.operator.connect(self.broker.host, self.broker.port)
        self.operator.loop_start()
        self.runs = 0
        return self

    def __exit__(self, *exc):
        self.operator.loop_stop()
        self.operator.disconnect()
        self.validator.stop()
        stop(self.meter_proc)
        self.broker.stop()

    def _secrets(self, charger_id):
        """The charger's ack keys, made before its signing key exists (enroll follows PUBKEY)."""
        self.validator.ack_keys.ensure(charger_id)
        return secrets.from_validators([self.validator], charger_id)

    def run_app(self, heap, sessions, charge_s=60, timeout=900, module="app_scenario"):
        """One app process; returns (passed, RESULT dict or None, stdout)."""
        self.runs += 1
        cid = "%s-%d" % (CHARGER, self.runs)            # a fresh charger: its own log and key
        t0 = int(time.time()) - 86400 * 30
        sc = {"board": str(DEFAULT_BOARD), "meter": self.meter, "charger_id": cid,
              "data": tempfile.mkdtemp(prefix="cp-app-", dir=self.tmp), "meter_serial": "SIM-32",
              "mqtt_host": self.broker.host, "mqtt_port": self.broker.port,
              "operator_spki": op.public_spki_hex(self.key), "t0": t0, "sessions": sessions,
              "charge_s": charge_s, "expect_cmds": 2, "drain_s": 30,
              "secrets": self._secrets(cid)}
        cmds = [op.sign(self.key, cid, "current_limit", {"ma": 16000}, n=1, exp=t0 + 3600),
                op.sign(self.key, cid, "tariff", {"tariff": _NEW_TARIFF}, n=2, exp=t0 + 3600)]
        env = {"MICROPYPATH": ".frozen:" + str(paths.MPY_TESTS)}
        proc = subprocess.Popen([paths.MICROPYTHON_32_FROZEN, "-X", "heapsize=%d" % heap,
                                 "-m", module], env=env, cwd=str(paths.ROOT),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        out = []
        try:
            proc.stdin.write(json.dumps(sc) + "\n")
            proc.stdin.flush()
            for line in proc.stdout:
                out.append(line)
                if line.startswith("PUBKEY "):
                    self.validator.enroll(cid, bytes.fromhex(line.split()[1]),
                                          origin="chargeproof.local/" + cid)
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    for raw in cmds:
                        self.operator.publish("cp/%s/cmd" % cid, raw, qos=1)
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = "".join(out)
        m = re.search(r"^RESULT (\{.*\})$", text, re.M)
        result = json.loads(m.group(1)) if m else None
        return bool(result and result["ok"] and proc.returncode == 0), result, text


def _out_of_memory(text):
    return "MemoryError" in text or "memory allocation failed" in text or "memory" in text


def app_heap_peak(rig, tries=3):
    """Bisect the heap; a size counts as enough only if `tries` runs in a row complete (the
    network's timing moves the heap's layout, and a fragmented heap fails a large block)."""
    def enough(heap):
        for _ in range(tries):
            if not rig.run_app(heap, 1)[0]:
                return False
        return True
    top = mprun.HEAP_32
    ok, _, text = rig.run_app(top, 1)
    if not ok:
        raise RuntimeError("the whole app fails with a %d-byte heap:\n%s" % (top, text[-3000:]))
    lo, hi = 16 * 1024, top
    while hi - lo > 1024:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi


def thousand_sessions(rig, n=1000):
    ok, result, text = rig.run_app(mprun.HEAP_32, n, charge_s=30, timeout=3600)
    if not ok:
        raise RuntimeError("%d sessions in one process failed:\n%s" % (n, text[-3000:]))
    m = re.search(r"max free sz: (\d+)", text)
    return result["min_free"], int(m.group(1)) * 16


def alloc_rows(meter, n=500):
    sc = {"board": str(DEFAULT_BOARD), "meter": meter, "n": n,
          "data": tempfile.mkdtemp(prefix="cp-alloc-")}
    proc = subprocess.run([paths.MICROPYTHON_32_FROZEN, "-X", "heapsize=%d" % mprun.HEAP_32,
                           "-m", "alloc_probe"], input=json.dumps(sc) + "\n", text=True,
                          capture_output=True, env={"MICROPYPATH": ".frozen:" + str(paths.MPY_TESTS)},
                          cwd=str(paths.ROOT), timeout=300)
    m = re.search(r"^ALLOC (\{.*\})$", proc.stdout, re.M)
    if not m:
        raise RuntimeError("alloc probe failed:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    a = json.loads(m.group(1))
    return {"meter_read_alloc_bytes_32": a["meter_read"], "pilot_poll_alloc_bytes_32": a["pilot_poll"],
            "clock_alloc_bytes_32": a["clock"], "idle_step_alloc_bytes_32": a["idle_step"],
            "charging_step_alloc_bytes_32": a["charging_step"]}


_BYTECODE = """
import gc, sys
sys.path[:] = [%r]
gc.collect()
a = gc.mem_alloc()
for name in %r:
    __import__(name)
gc.collect()
print("CODE", gc.mem_alloc() - a)
"""


def bytecode_row():
    """The board's firmware modules imported from .mpy on the stock image (asyncio and
    umqtt.simple are frozen there, as in the ESP32's image)."""
    mods = sorted({str(rel.with_suffix("")).replace("/", ".").replace(".__init__", "")
                   for rel in mp32.board_modules()} - {"main", "app.main"})
    script = _BYTECODE % (str(paths.MPY_BUILD), mods)
    proc = subprocess.run([paths.MICROPYTHON_32, "-X", "heapsize=%d" % (1024 * 1024), "-c", script],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r"CODE (\d+)", proc.stdout)
    if not m:
        raise RuntimeError("bytecode import failed:\n%s%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return {"firmware_bytecode_bytes_32": int(m.group(1))}


def run():
    build_mpy.build()
    mp32.build()
    rows = bytecode_row()
    with _Rig() as rig:
        rows.update(alloc_rows(rig.meter))
        rows["app_heap_peak_bytes_32"] = app_heap_peak(rig)
        low, block = thousand_sessions(rig)
        rows["heap_min_free_after_1000_sessions_32"] = low
        rows["heap_largest_free_block_after_1000_sessions_32"] = block
    return rows


if __name__ == "__main__":
    print(run())
