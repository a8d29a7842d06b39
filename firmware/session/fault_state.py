# The charger's fault state: contactor open first, the fault stored (once), the running
# session closed on a trusted reading; the pilot signals F for fault_hold_ms, then +12 V to
# watch for unplug. A fault clears on unplug, or only by an operator reset for the codes that
# need one (session/faults.py). A receipt the ledger refused is retried once a minute.
from drivers.meter import MeterError
from session import faults as fault_codes
from session.state import CLOSING, FAULT, IDLE


class FaultState:
    def __init__(self, charger):
        self.charger = charger              # session.charger.Charger
        self._retry_ms = charger.clock.ticks_ms()   # next retry of a refused receipt

    def enter(self, code, detail):
        """Fail safe: contactor open first, then the record, then the session is closed."""
        c = self.charger
        c.contactor.open()
        c.pilot.signal_error()
        self.record(code, detail)
        c.enter(FAULT)
        s = c.session
        if s is None:
            return
        if not fault_codes.meter_untrusted(code) and s["end_wh"] is None:
            # The meter itself is fine: the end is its reading now, the contactor open.
            try:
                c.books.take_last(c.read_energy())
            except MeterError:
                pass
        # Otherwise the end is the last good reading, taken before the fault.
        if s["reason"] is None:
            s["reason"] = "fault:" + code
        if s["charge_end"] is None:
            s["charge_end"] = s["last_time"]
        c.finish(s["last_time"])

    def record(self, code, detail):
        """Store the fault once, not at every retry; True if it was new."""
        c = self.charger
        if c.state != FAULT or c.fault is None or c.fault["code"] != code:
            c.fault = c.faults.record(c.clock.time(), code, detail)
            return True
        return False

    def step(self):
        c = self.charger
        clock = c.clock
        if c.session is None and clock.ticks_diff(clock.ticks_ms(), self._retry_ms) >= 0:
            pending = c.sessions.load()
            if pending is not None and pending["phase"] == CLOSING:
                # A receipt the ledger could not take yet: try again, once a minute.
                self._retry_ms = clock.ticks_add(clock.ticks_ms(), 60000)
                c.record(pending)
                return
        if clock.ticks_diff(clock.ticks_ms(), c.since_ms) < c.cfg["fault_hold_ms"]:
            return
        if c.pilot.duty() != 1000:
            c.pilot.set_idle()
            return
        if c.pilot_state == "A" and not fault_codes.needs_operator(c.fault["code"]):
            c.fault = None
            c.enter(IDLE)

    def reset(self):
        """Operator reset, needed after a contactor fault, once the contact reads open."""
        c = self.charger
        pending = c.sessions.load()
        if pending is not None and pending["phase"] == CLOSING:
            return False                    # a receipt still waits for the ledger
        if c.state == FAULT and not c.contactor.feedback_closed():
            c.contactor.reset()
            c.fault = None
            c.enter(IDLE)
            c.pilot.set_idle()
            return True
        return False
