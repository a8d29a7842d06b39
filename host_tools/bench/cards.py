"""Card pseudonym benchmarks: what turning a card's UID into its pseudonym costs the charger
(firmware/ledger/cards.py, on the MicroPython unix port), once per card presented.

Rows: card_pseudonym_us_micropython (median of CardPseudonyms.of over 7-byte UIDs: one
HMAC-SHA256 and the hex), card_pseudonym_key_heap_bytes_micropython (the heap the charger keeps
for the key: its HMAC pads, held from boot), the same two on the 32-bit build with the firmware
frozen in (`_32`, devtools/mp32.py: the ESP32's object sizes), card_pseudonym_us_cpython for scale.
"""
import json
import os
import statistics
import subprocess
import time

from host_tools import paths
from host_tools.devtools import mp32, mprun

N = 300
HEAPSIZE = 192 * 1024           # the firmware tests' heap (tests/conftest.py)
KEY = "5a" * 32

_SCRIPT = r"""
import gc, json, sys, time
from ledger.cards import CardPseudonyms
key = sys.stdin.readline().strip()
n = int(sys.stdin.readline())
uids = ["04%012X" % (i * 7919) for i in range(n)]
gc.collect()
before = gc.mem_alloc()
cards = CardPseudonyms(key)
gc.collect()
held = gc.mem_alloc() - before
for u in uids[:5]:
    cards.of(u)
us = []
for u in uids:
    t = time.ticks_us()
    cards.of(u)
    us.append(time.ticks_diff(time.ticks_us(), t))
us.sort()
print(json.dumps({"us": us[len(us) // 2], "held": held}))
"""


def _measure(exe, heap, env):
    proc = subprocess.run([str(exe), "-X", "heapsize=%d" % heap, "-c", _SCRIPT], cwd=str(paths.ROOT),
                          input="%s\n%d\n" % (KEY, N), env=env, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("card pseudonym bench failed:\n" + proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run():
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(paths.FIRMWARE), str(paths.MPLIB)]))
    mp = _measure(paths.MICROPYTHON, HEAPSIZE, env)
    mp32.build()
    mp_32 = _measure(paths.MICROPYTHON_32_FROZEN, mprun.HEAP_32, {"MICROPYPATH": ".frozen"})
    paths.firmware_on_path()
    from ledger.cards import CardPseudonyms
    cards = CardPseudonyms(KEY)
    times = []
    for i in range(N):
        uid = "04%012X" % (i * 7919)
        t = time.perf_counter()
        cards.of(uid)
        times.append((time.perf_counter() - t) * 1e6)
    return {"card_pseudonym_us_micropython": mp["us"],
            "card_pseudonym_key_heap_bytes_micropython": mp["held"],
            "card_pseudonym_us_32": mp_32["us"],
            "card_pseudonym_key_heap_bytes_32": mp_32["held"],
            "card_pseudonym_us_cpython": round(statistics.median(times), 1)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
