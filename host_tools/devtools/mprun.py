"""Run firmware code in real MicroPython with the ESP32's heap.

Shared by the test suite (tests/conftest.py runs every firmware test this way) and the
benchmarks (host_tools/bench/session.py bisects the heap).

The default interpreter is the 32-bit "virtual ESP32" (host_tools/devtools/mp32.py): MicroPython
v1.28.0's unix port built for i386 with the firmware frozen into it, as firmware/manifest.py
freezes it into the board's image. Its objects have the ESP32's sizes and its small integers
31 bits; the bytecode sits in the binary ("flash"), so `-X heapsize` of HEAP_32 (112 KiB, what
an ESP32 without PSRAM grows its heap to) is the whole budget: no ballast, no code room. The
test modules themselves are .mpy files from build/mpy-tests (on the heap beside the firmware's
data: they are small, and the board does not carry them).

The 64-bit unix port from PyPI (paths.MICROPYTHON) stays for what the 32-bit build cannot do
(TLS: the 32-bit build has no ssl module); run_firmware_test(..., interp="64") keeps its old
budget: DATA_HEAP free beside the .mpy bytecode, the rest filled with ballast by mp_run.py.
"""
import json
import os
import re
import subprocess

from host_tools.paths import (MICROPYTHON, MICROPYTHON_32_FROZEN, MP_SIDE, MPY_BUILD, MPY_TESTS,
                              ROOT)

HEAP_32 = int(os.environ.get("CP_MP_HEAPSIZE", str(112 * 1024)))
# The 64-bit port's budget (objects there take 1.3-1.5x the bytes, DESIGN.md) and the room its
# .mpy-loaded bytecode needs beside it.
DATA_HEAP = 192 * 1024
CODE_ROOM = 320 * 1024
RUNNER = MP_SIDE / "mp_run.py"
INTERPRETERS = {"32": "micropython-32 (frozen)", "64": "micropython-64 (.mpy)"}


def run_firmware_test(module, func, kwargs, heap=None, interp="32", timeout=300):
    """Run tests/firmware/<module>.<func>(**kwargs) in MicroPython.

    interp "32": the frozen 32-bit build with `-X heapsize=heap` (default HEAP_32).
    interp "64": the 64-bit port with heap (default DATA_HEAP) bytes free after the code."""
    env = dict(os.environ)
    env["CP_ROOT"] = str(ROOT)
    # The arguments go through stdin: the unix port aborts ("uncaught NLR") on a command-line
    # argument of 256 bytes or more, and fixture data is often longer.
    if interp == "32":
        heap = HEAP_32 if heap is None else heap
        # The firmware comes only from the image: build/mpy is not on the path.
        env["MICROPYPATH"] = os.pathsep.join([".frozen", str(MPY_TESTS)])
        cmd = [MICROPYTHON_32_FROZEN, "-X", "heapsize=%d" % heap, str(RUNNER), module, func, "-", "0"]
    elif interp == "64":
        heap = DATA_HEAP if heap is None else heap
        env["MICROPYPATH"] = os.pathsep.join([".frozen", str(MPY_TESTS), str(MPY_BUILD)])
        cmd = [MICROPYTHON, "-X", "heapsize=%d" % (heap + CODE_ROOM), str(RUNNER),
               module, func, "-", str(heap)]
    else:
        raise ValueError("interp is '32' or '64', not %r" % (interp,))
    return subprocess.run(cmd, env=env, input=json.dumps(kwargs), capture_output=True,
                          text=True, timeout=timeout)


def passed(proc):
    return proc.returncode == 0 and "MP-TEST-PASSED" in proc.stdout


def code_bytes(proc):
    """Heap the imported code took in that run (reported by mp_run.py): on the frozen build,
    the module objects, functions and classes the import made (the bytecode stays in flash)."""
    m = re.search(r"MP-HEAP code=(\d+)", proc.stdout)
    return int(m.group(1)) if m else None
