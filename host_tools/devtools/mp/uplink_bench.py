# Runs inside MicroPython (or CPython) for host_tools/bench/uplink.py; prints one JSON line.
# stdin: {"host", "port" (fault proxy), "broker_port", "control", "dir", "n", "cmds": [signed command str...],
#         "operator_spki", "charger", "t0"}
import gc
import json
import socket
import sys
import time

# The ledger (P-256, DER) and store are loaded by the charger anyway: count only the uplink
# (umqtt.simple, hal.net, uplink.*) in the heap rows, as .py bytecode on the 64-bit port.
from ledger import p256, der             # noqa: E402,F401
from store import journal                # noqa: E402,F401
gc.collect()
heap0 = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0

from hal import clock                    # noqa: E402
from uplink.outbox import Outbox         # noqa: E402
from uplink.mqtt import Link             # noqa: E402
from uplink.acks import AckChecker        # noqa: E402
from uplink.commands import Verifier     # noqa: E402

ticks_ms, ticks_diff = clock.ticks_ms, clock.ticks_diff
try:
    from time import ticks_us
except ImportError:
    def ticks_us():
        return int(time.monotonic() * 1000000)


def control(cfg, command):
    s = socket.socket()
    s.settimeout(30)
    s.connect(socket.getaddrinfo(cfg["host"], cfg["control"])[0][-1])
    s.send(command.encode() + b"\n")
    s.recv(16)
    s.close()


def main():
    cfg = json.loads(sys.stdin.readline())
    out = {}
    gc.collect()
    out["heap_after_import_bytes"] = (gc.mem_alloc() - heap0) if heap0 else 0
    box = Outbox(cfg["dir"], reserve_bytes=0, segment_bytes=4096)
    n = cfg["n"]
    payload = b"OCMF|" + b"x" * 600 + b"|sig"          # about one OCMF record
    t = ticks_us()
    for _ in range(n):
        box.put("receipt", payload)
    out["outbox_put_us"] = ticks_diff(ticks_us(), t) // n

    # Throughput straight to the broker (the fault proxy is a Python relay: it would dominate).
    link = Link(cfg["charger"], cfg["host"], cfg["broker_port"], box, keepalive_s=2,
                timeout_ms=300, backoff_min_ms=20, backoff_max_ms=200, window=16, burst=8,
                ack_checker=AckChecker(cfg["charger"], cfg["ack_keys"]))
    while not link.connected:
        link.poll()
    t = ticks_ms()
    while box.acked < n:                              # the host's validator acks each one
        link.poll()
        if ticks_diff(ticks_ms(), t) > 60000:
            break
    dt = ticks_diff(ticks_ms(), t)
    out["acked_receipts_per_s"] = (box.acked * 1000 // dt) if dt else 0
    gc.collect()
    out["heap_connected_bytes"] = (gc.mem_alloc() - heap0) if heap0 else 0

    k = 500
    t = ticks_us()
    for _ in range(k):
        link.poll()
    out["poll_idle_us"] = ticks_diff(ticks_us(), t) // k

    ver = Verifier(cfg["dir"] + "/cmd_n", cfg["operator_spki"], cfg["charger"],
                   lambda: cfg["t0"])
    t = ticks_us()
    for raw in cfg["cmds"]:
        ver.verify(raw.encode())
    out["command_verify_ms"] = ticks_diff(ticks_us(), t) / 1000 / len(cfg["cmds"])

    # Half-dead link (through the proxy): how long until silence is noticed, and the longest
    # poll meanwhile.
    link.close()
    link = Link(cfg["charger"], cfg["host"], cfg["port"], box, keepalive_s=2, timeout_ms=300,
                backoff_min_ms=20, backoff_max_ms=200)
    while not link.connected:
        link.poll()
    control(cfg, "proxy blackhole")
    worst = 0
    t = ticks_ms()
    while link.connected and ticks_diff(ticks_ms(), t) < 20000:
        t1 = ticks_ms()
        link.poll()
        worst = max(worst, ticks_diff(ticks_ms(), t1))
        time.sleep(0.002)
    out["half_dead_detect_ms"] = ticks_diff(ticks_ms(), t)
    box.put("receipt", payload)
    for _ in range(50):
        t1 = ticks_ms()
        link.poll()
        worst = max(worst, ticks_diff(ticks_ms(), t1))
        time.sleep(0.002)
    out["poll_worst_offline_ms"] = worst
    control(cfg, "proxy up")
    t = ticks_ms()
    while not link.connected and ticks_diff(ticks_ms(), t) < 20000:
        link.poll()
        time.sleep(0.002)
    out["reconnect_after_outage_ms"] = ticks_diff(ticks_ms(), t)
    link.close()
    sys.stdout.write(json.dumps(out) + "\n")


main()
