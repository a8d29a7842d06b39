"""Bench rows for published (version 2) tariffs on the device, measured on the 32-bit
MicroPython build with the firmware frozen in (the virtual ESP32; an ESP32 at 240 MHz is about
150-270x slower, DESIGN.md): a tariff of three bands on Berlin's daylight-saving rule with a day
of quarter-hour slot prices, as large as a published message may be (near TARIFF_MAX).

tariff_v2_bytes              the document's size (bytes)
tariff_v2_parse_us_32        Tariff.parse: JSON, checks, the POSIX TZ rule, canonical form, SHA-256
tariff_v2_heap_bytes_32      heap the parsed tariff holds
tariff_tz_offset_us_32       one TzRule.offset(t) (the local clock, integer arithmetic)
tariff_v2_next_boundary_us_32  one next_boundary(t): the next change of the price per kWh
"""
import json
import subprocess

from host_tools.devtools import mp32
from host_tools.paths import MICROPYTHON_32_FROZEN

DAY0 = 1792886400            # 2026-10-25 00:00 UTC: the night Berlin's clocks go back

SCRIPT = r"""
import gc, json, sys, time
from session.tariff import Tariff
from session.tz import TzRule
text = sys.stdin.readline()
gc.collect()
before = gc.mem_alloc()
t0 = time.ticks_us()
for _ in range(5):
    tar = None
    tar = Tariff.parse(text)
parse_us = time.ticks_diff(time.ticks_us(), t0) // 5
gc.collect()
held = gc.mem_alloc() - before
rule = TzRule(tar.tz.text)
day0 = %d
n = 2000
t0 = time.ticks_us()
for i in range(n):
    rule.offset(day0 + i * 43)
tz_us = time.ticks_diff(time.ticks_us(), t0) / n
t, steps = day0 - 3600, 0
t0 = time.ticks_us()
while t < day0 + 2 * 86400:
    t = tar.next_boundary(t)
    steps += 1
nb_us = time.ticks_diff(time.ticks_us(), t0) / steps
print(json.dumps([parse_us, held, tz_us, nb_us, steps]))
""" % DAY0


def document() -> str:
    doc = {"v": 2, "id": "bench-day-ahead", "currency": "EUR", "valid_from": DAY0 - 86400,
           "tz": "CET-1CEST,M3.5.0,M10.5.0/3", "session_fee_minor": 50,
           "bands": [{"start_min": 0, "kwh_price_milli": 25000}, {"start_min": 420, "kwh_price_milli": 39000},
                     {"start_min": 1320, "kwh_price_milli": 29000}],
           "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900,
           "slot_s": 900, "slots": [[DAY0 + 900 * i, 18000 + (i * 7919) % 20000] for i in range(96 + 4)]}
    return json.dumps(doc, separators=(",", ":"))


def run() -> dict:
    mp32.build()
    text = document()
    proc = subprocess.run([MICROPYTHON_32_FROZEN, "-X", "heapsize=114688", "-c", SCRIPT],
                          input=text + "\n", capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    parse_us, held, tz_us, nb_us, steps = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"tariff_v2_bytes": len(text), "tariff_v2_parse_us_32": parse_us,
            "tariff_v2_heap_bytes_32": held, "tariff_tz_offset_us_32": round(tz_us, 1),
            "tariff_v2_next_boundary_us_32": round(nb_us, 1)}
