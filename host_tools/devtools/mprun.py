"""Run firmware code in the real MicroPython unix port with the ESP32's heap budget.

Shared by the test suite (tests/conftest.py runs every firmware test this way) and the
benchmarks (host_tools/bench/session.py bisects the budget).

An ESP32 without PSRAM lets MicroPython's heap grow to about 112 KB. Objects on the 64-bit
unix port take roughly 1.5-2x the bytes they take on the 32-bit ESP32, so 112 KB x 1.75 =
196 KB: firmware code runs with DATA_HEAP = 192 KiB of free heap and must work inside it.
On the board the firmware is frozen (firmware/manifest.py): its bytecode stays in flash. The
unix port loads it into the heap, so the process gets CODE_ROOM more, and
host_tools/devtools/mp/mp_run.py fills whatever the imported code did not take with ballast, leaving
exactly the data budget free.
"""
import json
import os
import pathlib
import re
import subprocess

from host_tools.paths import MICROPYTHON, MP_SIDE, MPY_BUILD, MPY_TESTS, ROOT

DATA_HEAP = int(os.environ.get("CP_MP_HEAPSIZE", str(192 * 1024)))
CODE_ROOM = 320 * 1024
RUNNER = MP_SIDE / "mp_run.py"


def run_firmware_test(module, func, kwargs, data_heap=DATA_HEAP, timeout=300):
    """Run tests/firmware/<module>.<func>(**kwargs) in MicroPython with data_heap bytes free."""
    env = dict(os.environ)
    env["CP_ROOT"] = str(ROOT)
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(MPY_TESTS), str(MPY_BUILD)])
    # The arguments go through stdin: the unix port aborts ("uncaught NLR") on a command-line
    # argument of 256 bytes or more, and fixture data is often longer.
    cmd = [MICROPYTHON, "-X", "heapsize=%d" % (data_heap + CODE_ROOM), str(RUNNER),
           module, func, "-", str(data_heap)]
    return subprocess.run(cmd, env=env, input=json.dumps(kwargs), capture_output=True,
                          text=True, timeout=timeout)


def passed(proc):
    return proc.returncode == 0 and "MP-TEST-PASSED" in proc.stdout


def code_bytes(proc):
    """Heap the imported bytecode took in that run (reported by mp_run.py)."""
    m = re.search(r"MP-HEAP code=(\d+)", proc.stdout)
    return int(m.group(1)) if m else None
