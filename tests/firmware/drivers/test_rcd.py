# Residual current monitor driver against the simulated RDC-DD module.
from support.fwtest import raises
from hal.sim import SimClock, SimRcd
from drivers.rcd import ResidualCurrent, RcdFault, RcdError


def _rig(trip_ms=100):
    clock = SimClock()
    mod = SimRcd()
    return clock, mod, ResidualCurrent(mod.fault_out, mod.test, clock, trip_ms=trip_ms)


def test_self_test_passes_on_a_working_module_and_leaves_test_off():
    clock, mod, rcd = _rig()
    rcd.self_test()
    assert rcd.fault is None and mod.test.value() == 0
    rcd.check()


def test_dc_leakage_trips_once_and_latches():
    clock, mod, rcd = _rig()
    mod.leak_ua = 5999
    rcd.check()                                  # below 6 mA DC: no trip
    mod.leak_ua = 6000
    assert raises(RcdFault, rcd.check).reason == "tripped"
    rcd.check()                                  # reported once
    mod.leak_ua = 0
    assert raises(RcdFault, rcd.self_test).reason == "tripped"   # latched
    rcd.reset()
    rcd.self_test()


def test_dead_module_fails_self_test():
    clock, mod, rcd = _rig()
    mod.fault = "no_trip"
    t0 = clock.ticks_ms()
    assert raises(RcdFault, rcd.self_test).reason == "self-test-no-trip"
    assert clock.ticks_diff(clock.ticks_ms(), t0) >= 100 and mod.test.value() == 0
    mod.fault = None
    rcd.reset()
    rcd.self_test()


def test_stuck_module_is_a_fault_and_reset_refuses():
    clock, mod, rcd = _rig()
    mod.fault = "stuck"
    assert raises(RcdFault, rcd.self_test).reason == "tripped"
    assert raises(RcdFault, rcd.reset).reason == "tripped"


def test_module_that_does_not_clear_after_test():
    clock, mod, rcd = _rig()

    class Latching(SimRcd):                      # trips on test, then stays tripped
        def signalling(self):
            if self.test.value() == 1:
                self.latched = True
            return getattr(self, "latched", False)
    mod = Latching()
    rcd = ResidualCurrent(mod.fault_out, mod.test, clock, trip_ms=50)
    assert raises(RcdFault, rcd.self_test).reason == "self-test-stuck"


def test_module_without_test_input_and_bad_trip_time():
    clock = SimClock()
    mod = SimRcd()
    rcd = ResidualCurrent(mod.fault_out, None, clock)
    rcd.self_test()                              # nothing to drive: only its state is checked
    raises(RcdError, ResidualCurrent, mod.fault_out, None, clock, 0)
