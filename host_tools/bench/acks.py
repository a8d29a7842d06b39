"""Ack benchmarks: what checking one authenticated ack costs the charger (MicroPython unix port).

Rows: ack_verify_us_micropython (median of uplink.acks.AckChecker.check over acks made on the
host with python's hmac: JSON parse, field checks, HMAC-SHA256, comparison), ack_verify_and_outbox_us_micropython
(the same plus Outbox.ack, which reads the record back from flash and hashes it: the whole cost
of an ack before the record may leave), hmac_us_micropython (one ledger.hmac256 MAC of an ack's
MAC input), and ack_verify_us_cpython for comparison. For scale: one P-256 verification costs
sign.py's verify_ms_micropython.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

from host_tools import paths
from host_tools.validator import acks

N = 300
HEAPSIZE = 192 * 1024           # the firmware tests' heap (tests/conftest.py)
CHARGER = "CP-BENCH"
KEY = bytes(range(32))

_SCRIPT = r"""
import sys, time, json
from uplink.acks import AckChecker, mac_input
from uplink.outbox import Outbox
from ledger.hmac256 import HmacKey
cfg = json.loads(sys.stdin.readline())
chk = AckChecker(cfg["charger"], {"bench": {"k1": cfg["key"]}})
box = Outbox(cfg["dir"], reserve_bytes=0, persist_every=1000000)
payload = cfg["payload"].encode()
for i in range(len(cfg["acks"])):
    box.put("receipt", payload)
raws = [a.encode() for a in cfg["acks"]]
for raw in raws[:5]:
    chk.check("bench", raw)
check_us, both_us = [], []
for raw in raws:
    t = time.ticks_us()
    chk.check("bench", raw)
    check_us.append(time.ticks_diff(time.ticks_us(), t))
for raw in raws:
    t = time.ticks_us()
    seq, tag, digest = chk.check("bench", raw)
    box.ack(seq, "bench", digest, tag)
    both_us.append(time.ticks_diff(time.ticks_us(), t))
k = HmacKey(bytes(32))
m = mac_input("CP-BENCH", "bench", "receipt", 1, "ab" * 32)
t = time.ticks_us()
for i in range(200):
    k.mac(m)
hmac_us = time.ticks_diff(time.ticks_us(), t) / 200
check_us.sort()
both_us.sort()
print(json.dumps({"check": check_us[len(check_us) // 2], "both": both_us[len(both_us) // 2],
                  "hmac": hmac_us, "acked": box.acked}))
"""


def _acks(payload):
    return [acks.make_ack("bench", CHARGER, "receipt", seq, payload, "k1", KEY).decode()
            for seq in range(1, N + 1)]


def run():
    payload = "OCMF|" + "x" * 600 + "|sig"
    raws = _acks(payload.encode())
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(paths.FIRMWARE), str(paths.MPLIB)]))
        cfg = {"charger": CHARGER, "key": KEY.hex(), "dir": tmp + "/ob", "payload": payload, "acks": raws}
        proc = subprocess.run([str(paths.MICROPYTHON), "-X", "heapsize=%d" % HEAPSIZE, "-c", _SCRIPT],
                              input=json.dumps(cfg) + "\n", env=env, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            raise RuntimeError("ack bench failed:\n" + proc.stdout + proc.stderr)
        mp = json.loads(proc.stdout.strip().splitlines()[-1])
    if mp["acked"] != N:
        raise RuntimeError("the bench's acks did not all count: %r" % mp)
    # CPython, the same firmware code, for scale.
    paths.firmware_on_path()
    from uplink.acks import AckChecker
    chk = AckChecker(CHARGER, {"bench": {"k1": KEY.hex()}})
    times = []
    for raw in raws:
        t = time.perf_counter()
        chk.check("bench", raw.encode())
        times.append((time.perf_counter() - t) * 1e6)
    return {"ack_verify_us_micropython": mp["check"],
            "ack_verify_and_outbox_us_micropython": mp["both"],
            "hmac_us_micropython": round(mp["hmac"], 1),
            "ack_verify_us_cpython": round(statistics.median(times), 1)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
