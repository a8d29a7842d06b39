"""Bench rows for the charging session and the whole pipeline.

session_heap_peak_bytes_32  the smallest `-X heapsize` (bytes) of the 32-bit build with the
                         firmware frozen in (the virtual ESP32, devtools/mp32.py) with which a
                         whole simulated session completes: plug in, card, charge against the
                         pymodbus meter, unplug, receipt signed and logged. Found by bisection.
session_heap_peak_bytes  the same on the 64-bit port: the smallest free heap beside the
                         firmware's .mpy bytecode.
session_code_bytes       heap the firmware's bytecode takes on the 64-bit port when loaded from
                         .mpy (in flash, not heap, when frozen into the ESP32 image).
e2e_ack_ms               median time from a session's end (the EV unplugged) on a MicroPython
                         charger to the validator's ack of its receipt arriving at a subscriber
                         on the broker, on loopback with amqtt: meter read, three signatures,
                         log commit, outbox, publish, validation, SQLite commit, ack.
"""
import json
import statistics
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

from host_tools.devtools import build_mpy
from host_tools.devtools import mp32, mprun
from host_tools.firmware_rules import default_origin
from host_tools.sim.broker import AmqttBroker
from host_tools.demo import CARDS, card_provisioning, default_tariff
from host_tools.provision import secrets
from host_tools.sim.fleet import DEFAULT_BOARD, Device, start_meter, stop
from host_tools.validator.service import Validator

CARD_KEY = secrets.new_pseudonym_key()     # the operator's card pseudonym key


def _session_ok(meter, heap, interp):
    """True if a whole session passes with heap bytes, False if it runs out of memory; any
    other failure is an error (it must not pass for 'too small')."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"meter": meter, "data": tmp + "/flash", "board": str(DEFAULT_BOARD)}
        proc = mprun.run_firmware_test("test_session", "test_whole_session_energy_is_register_difference",
                                       {"charger_env": env}, heap=heap, interp=interp)
    # Out of memory shows as MemoryError, or as the fault the charger records when it catches
    # one (it keeps the session and stays safe, so the test sees a fault).
    if not mprun.passed(proc) and "MemoryError" not in proc.stdout \
            and "memory allocation failed" not in proc.stdout:
        raise RuntimeError("session failed at %d bytes, not for memory:\n%s" % (heap, proc.stdout[-2000:]))
    return mprun.passed(proc), mprun.code_bytes(proc)


def _bisect(meter, interp, top):
    ok, code = _session_ok(meter, top, interp)
    if not ok:
        raise RuntimeError("a whole session fails at the %d-byte budget" % top)
    lo, hi = 8 * 1024, top          # lo fails (checked), hi works
    if _session_ok(meter, lo, interp)[0]:
        raise RuntimeError("a whole session fits in %d bytes: lower the bisection floor" % lo)
    while hi - lo > 1024:
        mid = (lo + hi) // 2
        if _session_ok(meter, mid, interp)[0]:
            hi = mid
        else:
            lo = mid
    return hi, code


def heap_rows():
    proc, meter = start_meter()
    try:
        peak64, code64 = _bisect(meter, "64", mprun.DATA_HEAP)
        peak32, _ = _bisect(meter, "32", mprun.HEAP_32)
    finally:
        stop(proc)
    return {"session_heap_peak_bytes": peak64, "session_code_bytes": code64,
            "session_heap_peak_bytes_32": peak32}


def ack_rows(sessions=8):
    broker = AmqttBroker()
    broker.start()
    acks = {}
    got = threading.Event()

    def on_message(client, userdata, msg):
        seq = json.loads(msg.payload)["seq"]
        acks.setdefault(seq, time.time_ns())
        got.set()

    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watcher.on_message = on_message
    watcher.connect(broker.host, broker.port)
    watcher.subscribe("cp/+/ack/+", qos=1)
    watcher.loop_start()
    validator = Validator(tempfile.mktemp(suffix=".sqlite"), "val-bench",
                          tariffs=[default_tariff()]).start(broker.host, broker.port)
    plan = [{"card": CARDS[0], "power_w": 11000, "minutes": 10, "idle_minutes": 0}] * sessions
    dev = Device("CP-BENCH", tempfile.mkdtemp(), broker.host, broker.port, plan,
                 start_time=int(time.time()) - 86400,
                 config={"allow_list": card_provisioning(CARD_KEY), "meter_serial": "SIM-BENCH"})
    try:
        dev.start()
        validator.enroll("CP-BENCH", bytes.fromhex(dev.pubkey_hex),
                         origin=default_origin("CP-BENCH"))
        dev.provision(secrets.from_validators([validator], "CP-BENCH", CARD_KEY))
        validator.subscribed.wait(10)
        time.sleep(0.3)
        dev.go()
        dev.wait()
    finally:
        dev.close()
        validator.stop()
        watcher.loop_stop()
        watcher.disconnect()
        broker.stop()
    ends = [int(ln.split()[2]) for ln in dev.lines if ln.startswith("UNPLUG ")]
    # Session k's receipt is outbox record 2k-1 (each session: a receipt, then a checkpoint).
    lat = [(acks[2 * k + 1] - t) / 1e6 for k, t in enumerate(ends) if 2 * k + 1 in acks]
    return {"e2e_ack_ms": round(statistics.median(lat), 2)}


def run():
    build_mpy.build()
    mp32.build()
    rows = heap_rows()
    rows.update(ack_rows())
    return rows


if __name__ == "__main__":
    print(run())
