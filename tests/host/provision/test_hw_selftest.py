"""host_tools.provision.hw_selftest: the report the board prints is what the host reads back.

The board side runs here under the MicroPython unix port with the simulated hardware (the unix
port has no machine.Pin), printing exactly what run_on_board prints on the ESP32.
"""
import os
import subprocess

from host_tools.provision import hw_selftest
from host_tools.paths import MICROPYTHON, ROOT

_BOARD_SIDE = r"""
import json
from hal.sim import SimClock, SimRelay, SimPilot, SimEV
from app.selftest import run
clock = SimClock()
relay = SimRelay(clock, delay_ms=40)
relay.fault = %r
line = SimPilot(SimEV("A"))
hw = {"relay": relay, "feedback": relay.feedback, "pilot_pwm": line, "pilot_adc": line}
res = run(hw, clock, 100, True)
print("noise before")
print("SELFTEST " + json.dumps({"board": "sim", "results": [
    {"check": n, "ok": ok, "detail": d} for n, ok, d in res]}))
"""


def _board_output(fault=None):
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
    proc = subprocess.run([MICROPYTHON, "-c", _BOARD_SIDE % (fault,)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_report_round_trip_from_micropython():
    report = hw_selftest.parse(_board_output())
    assert report["board"] == "sim" and len(report["results"]) == 8
    assert all(r["ok"] for r in report["results"])
    text = hw_selftest.render(report)
    assert "PASS  contactor closes within settle_ms" in text and "pick-up 40 ms" in text


def test_failed_check_is_reported():
    report = hw_selftest.parse(_board_output("stuck_open"))
    failed = [r["check"] for r in report["results"] if not r["ok"]]
    assert failed == ["contactor closes within settle_ms"]
    assert "FAIL  contactor closes within settle_ms" in hw_selftest.render(report)


def test_no_report_and_command():
    assert hw_selftest.parse("Traceback ...\nImportError: no module named 'app.selftest'") is None
    cmd = hw_selftest.command("/dev/ttyUSB0", "/board.json", True)
    assert cmd[1:4] == ["connect", "/dev/ttyUSB0", "exec"]
    assert cmd[4] == "from app.selftest import run_on_board; run_on_board('/board.json', True)"
