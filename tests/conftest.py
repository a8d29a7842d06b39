"""Test set-up shared by the whole suite.

Firmware tests (tests/firmware/test_*.py) are written once, in the subset of Python that both
CPython and MicroPython run, and every one of them is collected twice:

  test_x[cpython]      runs in this process, under CPython;
  test_x[micropython]  runs the same function in the real MicroPython unix port, in a fresh
                       process with the heap limited to MP_HEAPSIZE (see README, "Heap limit").

A firmware test may take pytest fixtures as arguments; both runs receive the fixture's value as
plain JSON data (strings, numbers, lists, dicts; a path becomes its string), so host-side
services (a pymodbus meter on a pty, a broker) are started by pytest and used from either
interpreter.
"""
import functools
import inspect
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FW_TESTS = ROOT / "tests" / "firmware"
MPLIB = ROOT / ".venv" / "mplib"          # umqtt.simple, fetched by host_tools/bootstrap.sh
MICROPYTHON = os.environ.get("CP_MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")

# An ESP32 without PSRAM lets MicroPython's heap grow to about 112 KB. Objects on the 64-bit
# unix port take roughly 1.5-2x the bytes they take on the 32-bit ESP32, so 112 KB x 1.75 =
# 196 KB: every firmware test runs with 192 KiB of free heap and must pass inside it.
# On the board the firmware is frozen (firmware/manifest.py): its bytecode stays in flash. The
# unix port loads it into the heap, so the process gets MP_CODE_ROOM more, and mp_run.py fills
# whatever the imported code did not take with ballast, leaving the test exactly MP_HEAPSIZE.
MP_HEAPSIZE = int(os.environ.get("CP_MP_HEAPSIZE", str(192 * 1024)))
MP_CODE_ROOM = 320 * 1024
MP_TIMEOUT_S = 300
# MicroPython imports the firmware as mpy-cross output, as the board does (host_tools/build_mpy).
MPY_BUILD = ROOT / "build" / "mpy"
MPY_TESTS = ROOT / "build" / "mpy-tests"

for p in (FIRMWARE, FW_TESTS, ROOT, ROOT / "tests", MPLIB):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def _plain(value):
    """A fixture value as the JSON data both interpreters receive."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_micropython(module, func, kwargs, heapsize=MP_HEAPSIZE, timeout=MP_TIMEOUT_S):
    """Run tests/firmware/<module>.<func>(**kwargs) in MicroPython; return the completed process."""
    env = dict(os.environ)
    env["CP_ROOT"] = str(ROOT)
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(MPY_TESTS), str(MPY_BUILD)])
    # The arguments go through stdin: the unix port aborts ("uncaught NLR") on a command-line
    # argument of 256 bytes or more, and fixture data is often longer.
    cmd = [MICROPYTHON, "-X", "heapsize=%d" % (heapsize + MP_CODE_ROOM),
           str(FW_TESTS / "mp_run.py"), module, func, "-", str(heapsize)]
    return subprocess.run(cmd, env=env, input=json.dumps(kwargs), capture_output=True,
                          text=True, timeout=timeout)


def _cpython_item(func):
    @functools.wraps(func)
    def run(**kwargs):
        return func(**_plain(kwargs))
    return run


def _micropython_item(func):
    module = func.__module__.rsplit(".", 1)[-1]

    @functools.wraps(func)
    def run(**kwargs):
        proc = run_micropython(module, func.__name__, _plain(kwargs))
        if proc.returncode != 0 or "MP-TEST-PASSED" not in proc.stdout:
            raise AssertionError("MicroPython run of %s.%s failed (exit %d):\n%s\n%s" % (
                module, func.__name__, proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    return run


def pytest_pycollect_makeitem(collector, name, obj):
    """Collect each firmware test function once per interpreter."""
    if not isinstance(collector, pytest.Module):
        return None
    path = pathlib.Path(str(collector.path))
    if path.parent != FW_TESTS or not name.startswith("test_") or not inspect.isfunction(obj):
        return None
    items = []
    for interp, wrap in (("cpython", _cpython_item), ("micropython", _micropython_item)):
        wrapped = wrap(obj)
        wrapped.__signature__ = inspect.signature(obj)
        items.append(pytest.Function.from_parent(
            collector, name="%s[%s]" % (name, interp), callobj=wrapped,
            keywords={interp: True}))
    return items


def pytest_configure(config):
    from host_tools import build_mpy
    build_mpy.build()
    config.addinivalue_line("markers", "cpython: firmware test run under CPython")
    config.addinivalue_line("markers", "micropython: firmware test run under MicroPython")


def pytest_terminal_summary(terminalreporter):
    counts = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            if getattr(rep, "when", "call") != "call" and outcome == "passed":
                continue
            nodeid = rep.nodeid
            interp = "micropython" if nodeid.endswith("[micropython]") else (
                "cpython (firmware)" if nodeid.endswith("[cpython]") else "cpython (host)")
            counts.setdefault(interp, {}).setdefault(outcome, 0)
            counts[interp][outcome] += 1
    terminalreporter.write_sep("=", "tests per interpreter")
    for interp in ("cpython (firmware)", "micropython", "cpython (host)"):
        c = counts.get(interp, {})
        terminalreporter.write_line("%-20s %s" % (interp, ", ".join(
            "%d %s" % (n, o) for o, n in sorted(c.items())) or "none"))
    terminalreporter.write_line("MicroPython: %d bytes of free heap per test, firmware bytecode "
                                "loaded beside it (frozen in flash on the ESP32)" % MP_HEAPSIZE)


# ---- fixtures shared by firmware and host tests -------------------------------------------
# Each tests/fixtures_<topic>.py holds the fixtures of one topic (a pymodbus meter, brokers...);
# they are made visible to the whole suite here.
import importlib as _importlib

for _path in sorted((ROOT / "tests").glob("fixtures_*.py")):
    _mod = _importlib.import_module(_path.stem)
    for _name in dir(_mod):
        if not _name.startswith("_"):
            globals().setdefault(_name, getattr(_mod, _name))
