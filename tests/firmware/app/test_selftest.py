# Bring-up self-test against the simulated board: passes on good hardware, and each kind of
# broken hardware fails the check that names it.
from hal.sim import SimClock, SimRelay, SimPilot, SimEV
from app.selftest import run


def _hw(clock, ev=None, relay_delay_ms=30):
    relay = SimRelay(clock, delay_ms=relay_delay_ms)
    line = SimPilot(ev or SimEV("A"))
    return {"relay": relay, "feedback": relay.feedback, "pilot_pwm": line, "pilot_adc": line}


def _failed(results):
    return [name for name, ok, _ in results if not ok]


def test_good_hardware_passes_every_check():
    clock = SimClock()
    hw = _hw(clock)
    results = run(hw, clock, settle_ms=100, switch_contactor=True)
    assert len(results) == 8 and _failed(results) == [], results
    details = dict((n, d) for n, _, d in results)
    assert details["contactor closes within settle_ms"].startswith("pick-up 30 ms")
    assert hw["relay"].value() == 0 and hw["pilot_pwm"].duty() == 1000   # left safe


def test_slow_contactor_fails_against_settle_time():
    clock = SimClock()
    hw = _hw(clock, relay_delay_ms=150)
    assert _failed(run(hw, clock, 100, True)) == [
        "contactor closes within settle_ms", "contactor opens within settle_ms"]


def test_welded_contactor_is_found_without_switching():
    clock = SimClock()
    hw = _hw(clock)
    hw["relay"].fault = "welded"
    results = run(hw, clock, 100, switch_contactor=True)
    assert _failed(results) == ["contactor open at rest"]
    assert hw["relay"].operations == 0            # never energised onto a closed contact


def test_stuck_open_contactor_fails_to_close():
    clock = SimClock()
    hw = _hw(clock)
    hw["relay"].fault = "stuck_open"
    assert _failed(run(hw, clock, 100, True)) == ["contactor closes within settle_ms"]


def test_missing_negative_rail_fails_the_pilot_checks():
    clock = SimClock()
    hw = _hw(clock)

    class NoNegativeRail(SimPilot):               # the driver cannot go below 0 V
        def measure(self):
            SimPilot.measure(self)
            self.high_mv = max(self.high_mv, 0)
            self.low_mv = max(self.low_mv, 0)
    line = NoNegativeRail(SimEV("A"))
    hw["pilot_pwm"] = hw["pilot_adc"] = line
    failed = _failed(run(hw, clock, 100))
    assert failed == ["pilot -12 V steady", "pilot PWM 10.0 % shows both phases",
                      "pilot PWM 50.0 % shows both phases", "pilot PWM 90.0 % shows both phases"]


def test_an_ev_left_plugged_in_is_reported():
    clock = SimClock()
    hw = _hw(clock, ev=SimEV("B"))
    assert "pilot +12 V steady reads A" in _failed(run(hw, clock, 100))


def test_residual_current_monitor_is_tested_when_fitted():
    from hal.sim import SimRcd
    clock = SimClock()
    hw = _hw(clock)
    rcd = SimRcd()
    hw["rcd_fault"] = rcd.fault_out
    hw["rcd_test"] = rcd.test
    results = run(hw, clock, 100)
    assert ("residual current monitor self-test", True, "trips on test and clears") in results
    rcd.fault = "no_trip"
    assert _failed(run(hw, clock, 100)) == ["residual current monitor self-test"]
