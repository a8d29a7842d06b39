"""Test set-up shared by the whole suite.

Firmware tests (tests/firmware/<layer>/test_*.py) are written once, in the subset of Python that both
CPython and MicroPython run, and every one of them is collected twice:

  test_x[cpython]      runs in this process, under CPython;
  test_x[micropython]  runs the same function in real MicroPython, in a fresh process: the
                       32-bit unix port with the firmware frozen in (the "virtual ESP32",
                       host_tools/devtools/mp32.py) and the ESP32's 112 KiB heap (README,
                       "Heap limit").

A test module that sets MP_INTERPRETERS = ("32", "64") is also collected as test_x[micropython-64],
run on the 64-bit unix port from PyPI: for what the 32-bit build lacks (its `ssl`: TLS).

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

from host_tools.devtools.mprun import HEAP_32, INTERPRETERS, passed, run_firmware_test
from host_tools.paths import FIRMWARE, FW_TESTS, MP_SIDE, MPLIB, ROOT

# CPython runs the firmware tests with the firmware's layers, the tests' support package and
# the MicroPython-side tools importable by the same names MicroPython uses (MICROPYPATH).
for p in (FIRMWARE, FW_TESTS, MP_SIDE, ROOT, MPLIB):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# Fixtures, one module per topic (a pymodbus meter, brokers, boards, keys, charger files).
pytest_plugins = ["fixtures.boards", "fixtures.charger", "fixtures.crypto", "fixtures.meter",
                  "fixtures.mqtt", "fixtures.ota", "fixtures.postgres", "fixtures.secure_broker",
                  "fixtures.tariffs"]


MP_LABEL = INTERPRETERS["32"]


def _is_firmware_test(path):
    return FW_TESTS in path.parents and "support" not in path.relative_to(FW_TESTS).parts


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


def _micropython_item(func, interp="32"):
    module = func.__module__.rsplit(".", 1)[-1]

    @functools.wraps(func)
    def run(**kwargs):
        proc = run_firmware_test(module, func.__name__, _plain(kwargs), interp=interp)
        if not passed(proc):
            raise AssertionError("MicroPython run of %s.%s failed (exit %d):\n%s\n%s" % (
                module, func.__name__, proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    return run


def pytest_pycollect_makeitem(collector, name, obj):
    """Collect each firmware test function once per interpreter."""
    if not isinstance(collector, pytest.Module):
        return None
    path = pathlib.Path(str(collector.path))
    if not _is_firmware_test(path) or not name.startswith("test_") or not inspect.isfunction(obj):
        return None
    items = []
    runs = [("cpython", _cpython_item), ("micropython", _micropython_item)]
    if "64" in getattr(collector.module, "MP_INTERPRETERS", ()):
        runs.append(("micropython-64", functools.partial(_micropython_item, interp="64")))
    for interp, wrap in runs:
        wrapped = wrap(obj)
        wrapped.__signature__ = inspect.signature(obj)
        items.append(pytest.Function.from_parent(
            collector, name="%s[%s]" % (name, interp), callobj=wrapped,
            keywords={interp.split("-")[0]: True}))
    return items


def pytest_configure(config):
    from host_tools.devtools import build_mpy, mp32
    build_mpy.build()
    mp32.build()      # once; afterwards only when firmware/ or the manifest changed
    config.addinivalue_line("markers", "cpython: firmware test run under CPython")
    config.addinivalue_line("markers", "micropython: firmware test run under MicroPython")


def pytest_terminal_summary(terminalreporter):
    counts = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            if getattr(rep, "when", "call") != "call" and outcome == "passed":
                continue
            nodeid = rep.nodeid
            interp = MP_LABEL if nodeid.endswith("[micropython]") else (
                INTERPRETERS["64"] if nodeid.endswith("[micropython-64]") else (
                    "cpython (firmware)" if nodeid.endswith("[cpython]") else "cpython (host)"))
            counts.setdefault(interp, {}).setdefault(outcome, 0)
            counts[interp][outcome] += 1
    terminalreporter.write_sep("=", "tests per interpreter")
    for interp in ("cpython (firmware)", MP_LABEL, INTERPRETERS["64"], "cpython (host)"):
        c = counts.get(interp, {})
        if not c and interp == INTERPRETERS["64"]:
            continue
        terminalreporter.write_line("%-24s %s" % (interp, ", ".join(
            "%d %s" % (n, o) for o, n in sorted(c.items())) or "none"))
    terminalreporter.write_line("MicroPython: 32-bit v1.28.0 with the firmware frozen in (bytecode in "
                                "flash, as on the ESP32), -X heapsize=%d per test" % HEAP_32)
