"""Fixtures: a pymodbus-served energy meter on a serial pty (host_tools/meter_sim.py).

Each fixture yields JSON data both interpreters receive:
    {"port": "/dev/pts/N", "baud": 115200, "address": 1, "model": "SDM630", "control": <tcp port>}
Open `port` with hal.serial_posix.SerialPort(port, baud); drive the meter with
tests/firmware/meterctl.MeterControl(control).

One simulator process per model serves the whole test session (starting pymodbus costs about
a second); every test gets it reset: default values, no faults, counters at zero.
"""
import json
import pathlib
import subprocess
import sys

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE_BAUD = 115200       # a pty has no line speed; the master's t3.5 follows this figure
_procs = {}


def start_meter_sim(model="SDM630", address=1, baud=FIXTURE_BAUD, link=None):
    """Start host_tools.meter_sim in a subprocess; return (process, info dict). Caller stops it."""
    cmd = [sys.executable, "-m", "host_tools.meter_sim", "--model", model,
           "--address", str(address), "--baud", str(baud)]
    if link:
        cmd += ["--link", str(link)]
    proc = subprocess.Popen(cmd, cwd=str(_ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("meter simulator for %s did not start" % model)
    return proc, json.loads(line)


def stop_meter_sim(proc):
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


def _reset(info):
    from hal.meterctl import MeterControl
    ctl = MeterControl(info["control"])
    try:
        ctl.reset()
    finally:
        ctl.close()


@pytest.fixture(scope="session")
def meter_pool():
    """Session-wide simulator processes, one per model (started on first use)."""
    def get(model):
        if model not in _procs:
            _procs[model] = start_meter_sim(model)
        return _procs[model][1]
    yield get
    for proc, _ in _procs.values():
        stop_meter_sim(proc)
    _procs.clear()


def _fresh(pool, model):
    info = pool(model)
    _reset(info)
    return dict(info)


@pytest.fixture
def meter_sim(meter_pool):
    """An Eastron SDM630 at address 1 (the default meter of the charger)."""
    return _fresh(meter_pool, "SDM630")


@pytest.fixture
def meter_sdm120(meter_pool):
    return _fresh(meter_pool, "SDM120")


@pytest.fixture
def meter_sdm72dm(meter_pool):
    return _fresh(meter_pool, "SDM72D-M")


@pytest.fixture
def meter_b23(meter_pool):
    return _fresh(meter_pool, "B23")


@pytest.fixture
def meter_em340(meter_pool):
    return _fresh(meter_pool, "EM340")


@pytest.fixture
def meter_sims(meter_pool):
    """Every simulated model: {"SDM630": info, "SDM120": info, ...}."""
    return {m: _fresh(meter_pool, m) for m in ("SDM630", "SDM72D-M", "SDM120", "B23", "EM340")}
