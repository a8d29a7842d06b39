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
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FW_TESTS = ROOT / "tests" / "firmware"
MPLIB = ROOT / ".venv" / "mplib"          # umqtt.simple, fetched by host_tools/bootstrap.sh
MICROPYTHON = os.environ.get("CP_MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")

# Heap budget and MicroPython runner: host_tools/mprun.py explains the numbers.
from host_tools.mprun import DATA_HEAP as MP_HEAPSIZE, passed, run_firmware_test  # noqa: E402

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


def _cpython_item(func):
    @functools.wraps(func)
    def run(**kwargs):
        return func(**_plain(kwargs))
    return run


def _micropython_item(func):
    module = func.__module__.rsplit(".", 1)[-1]

    @functools.wraps(func)
    def run(**kwargs):
        proc = run_firmware_test(module, func.__name__, _plain(kwargs))
        if not passed(proc):
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
