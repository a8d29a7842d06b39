# Residual direct current monitor (RDC-DD, IEC 62955: trips at 6 mA DC) as a fault input, with
# its test input. A Type A RCD upstream cannot see smooth DC leakage from the EV's charger, so
# AC chargers with a socket or cable carry an RDC-DD that must open the contactor.
#
#   rcd = ResidualCurrent(fault_in, test_out, clock, trip_ms=100)
#   rcd.check()       every control-loop pass: raises RcdFault("tripped") once when the module
#                     signals a fault; latched until reset()
#   rcd.self_test()   before each session (contactor open): drive the test input, expect the
#                     module to trip within trip_ms and to clear within trip_ms after release;
#                     raises RcdFault("self-test-no-trip" | "self-test-stuck"), latched
#   rcd.reset()       operator reset once the module reads healthy; raises if it does not
#   rcd.fault         latched reason or None
# fault_in: value() 1 = module signals a fault (the hal pin handles active-low wiring; wire it
# so a broken wire reads as a fault). test_out: on()/off(); None if the module tests itself.


class RcdError(ValueError):
    """A bad argument (nothing was changed)."""


class RcdFault(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class ResidualCurrent:
    def __init__(self, fault_in, test_out, clock, trip_ms=100):
        if not isinstance(trip_ms, int) or trip_ms < 1 or trip_ms > 2000:
            raise RcdError("trip_ms %r outside 1..2000" % (trip_ms,))
        self._fault_in = fault_in
        self._test = test_out
        self._clock = clock
        self.trip_ms = trip_ms
        self.fault = None
        if test_out is not None:
            test_out.off()

    def tripped(self):
        return self._fault_in.value() == 1

    def check(self):
        if self.fault is None and self.tripped():
            self.fault = "tripped"
            raise RcdFault("tripped")

    def _wait(self, want):
        t0 = self._clock.ticks_ms()
        while self.tripped() != want:
            if self._clock.ticks_diff(self._clock.ticks_ms(), t0) >= self.trip_ms:
                return False
            self._clock.sleep_ms(1)
        return True

    def self_test(self):
        """Blocks up to 2 x trip_ms. Call with the contactor open."""
        if self.fault is not None:
            raise RcdFault(self.fault)
        if self.tripped():
            self.fault = "tripped"
            raise RcdFault("tripped")
        if self._test is None:
            return
        try:
            self._test.on()
            tripped = self._wait(True)
        finally:
            self._test.off()
        if not tripped:
            self.fault = "self-test-no-trip"
            raise RcdFault(self.fault)
        if not self._wait(False):
            self.fault = "self-test-stuck"
            raise RcdFault(self.fault)

    def reset(self):
        if self.tripped():
            raise RcdFault("tripped")
        self.fault = None
