"""Control-loop hardware benchmarks: the cost of one pass of the pilot and contactor drivers,
the pilot ADC level extraction the ESP32 runs per poll, and loading a board file at boot.

Each figure is measured in the MicroPython unix port (192 KiB heap, as the firmware tests) and,
where it means something, in CPython. Read the MicroPython figures with DESIGN.md's factor:
an ESP32 at 240 MHz is roughly 150-270x slower than this machine's unix port.

Rows: pilot_poll_us_{micropython,cpython} (mean Pilot.poll() against the simulated EV, line
steady in state C with PWM, so the diode check runs),
pilot_poll_alloc_bytes_micropython (heap allocated by 1000 polls with an ADC stand-in that
allocates nothing: the driver's own garbage, expected 0), pilot_levels_64_us_micropython
(hal.pilot_levels over a 64-sample burst, the per-poll math of hal.esp32.PilotADC),
contactor_check_us_micropython, board_load_ms_micropython and board_heap_bytes_micropython
(load_board of the DevKitC board file, its meter table check included; heap kept afterwards by
app.board, the Board and the meter tables: the checker module is dropped after the load).
"""
import json
import os
import subprocess
import time

from host_tools import paths
from host_tools.paths import ROOT
MICROPYTHON = paths.MICROPYTHON
HEAPSIZE = 192 * 1024
BOARD = str(ROOT / "boards" / "esp32-devkitc-max485.json")

_SCRIPT = r"""
import gc, json, sys, time
from array import array
from hal.sim import SimClock, SimEV, SimPilot, SimRelay
from hal.pilot_levels import levels
from drivers.pilot import Pilot
from drivers.contactor import Contactor

clock = SimClock()
line = SimPilot(SimEV("C"))
p = Pilot(line, line, clock)
p.set_current_limit(16000)
for i in range(10):
    clock.advance(10)
    p.poll()
assert p.state == "C"

def mean_us(fn, n):
    a = time.ticks_us()
    for i in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), a) / n
poll_us = mean_us(p.poll, 5000)

class SteadyADC:            # a line that reads state C with the diode, allocating nothing
    high_mv = 6000
    low_mv = -12000
    def measure(self):
        pass
q = Pilot(line, SteadyADC(), clock)
q.set_current_limit(16000)
for i in range(10):
    clock.advance(10)
    q.poll()
def polls(n):              # in a function: module-level loop variables live in a dict
    for i in range(n):
        q.poll()
polls(10)
before = alloc = 0         # globals created before measuring (a new global grows the dict)
gc.collect()
gc.disable()
before = gc.mem_alloc()
polls(1000)
alloc = gc.mem_alloc() - before
gc.enable()

buf = array("i", [0] * 64)
for i in range(64):
    buf[i] = 2100000 if (i * 23) % 1000 < 266 else 250000
out = array("i", [0, 0])
def lv():
    levels(buf, 64, 150000, out)
lv_us = mean_us(lv, 1000)

relay = SimRelay(clock, delay_ms=20)
c = Contactor(relay, relay.feedback, clock, settle_ms=100)
c.close()
clock.advance(50)
ck_us = mean_us(c.check, 5000)
assert c.feedback_closed() and c.fault is None

print(json.dumps({"poll": poll_us, "alloc": alloc, "levels": lv_us, "check": ck_us}))
"""

# A fresh process, so the heap figure holds only what loading the board leaves behind.
_BOARD_SCRIPT = r"""
import gc, json, sys, time
gc.collect()
base = gc.mem_alloc()
a = time.ticks_us()
from app.board import load_board
b = load_board(sys.argv[1])
load_us = time.ticks_diff(time.ticks_us(), a)
gc.collect()
print(json.dumps({"load_us": load_us, "board_heap": gc.mem_alloc() - base}))
"""


def _micropython(script):
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=%d" % HEAPSIZE, "-c", script, BOARD],
                          env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("MicroPython bench failed:\n%s\n%s" % (proc.stdout, proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpython_poll_us():
    from host_tools.paths import firmware_on_path
    firmware_on_path()
    from hal.sim import SimClock, SimEV, SimPilot
    from drivers.pilot import Pilot
    clock = SimClock()
    line = SimPilot(SimEV("C"))
    p = Pilot(line, line, clock)
    p.set_current_limit(16000)
    for _ in range(10):
        clock.advance(10)
        p.poll()
    n = 20000
    a = time.perf_counter()
    for _ in range(n):
        p.poll()
    return (time.perf_counter() - a) / n * 1e6


def run():
    mp = _micropython(_SCRIPT)
    mp.update(_micropython(_BOARD_SCRIPT))
    return {
        "pilot_poll_us_micropython": round(mp["poll"], 3),
        "pilot_poll_us_cpython": round(_cpython_poll_us(), 2),
        "pilot_poll_alloc_bytes_micropython": mp["alloc"],
        "pilot_levels_64_us_micropython": round(mp["levels"], 3),
        "contactor_check_us_micropython": round(mp["check"], 3),
        "board_load_ms_micropython": round(mp["load_us"] / 1000.0, 3),
        "board_heap_bytes_micropython": mp["board_heap"],
    }
