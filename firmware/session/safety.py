# The safety watch: pilot, contactor coil and feedback, residual-current monitor. Read on every
# pass of the control loop (check) and in the slices of a blocking wait such as a meter read
# (poll), so an EV that stops asking for current opens the contactor at once.
from drivers.contactor import ContactorFault
from drivers.pilot import PilotFault
from drivers.rcd import RcdFault
from session.faults import code_of


class Safety:
    def __init__(self, pilot, contactor, rcd, charge_states):
        self.pilot = pilot                # drivers.pilot.Pilot
        self.contactor = contactor        # drivers.contactor.Contactor
        self.rcd = rcd                    # drivers.rcd.ResidualCurrent, or None if not fitted
        self.charge_states = charge_states  # pilot states that may draw current: C (and D)
        self.pilot_state = "A"
        self._pilot_fault = None          # seen by poll(), reported by check()

    def poll(self):
        """The pilot and the coil only: an EV that stops asking for current, or a pilot
        fault, opens the contactor at once; check() reports it on the next pass."""
        if not self.contactor.closed:
            return
        try:
            ps = self.pilot.poll()
        except PilotFault as exc:
            self.contactor.open()
            self._pilot_fault = exc         # poll() raises once: check() must still see it
            return
        except MemoryError:
            # Polled from inside a collection (app/safety.py, gcsplit): the heap is locked and
            # a fault could not be raised as a PilotFault. The pilot noted it before raising.
            if self.pilot.fault is None:
                raise
            self.contactor.open()
            self._pilot_fault = self.pilot.fault    # the reason: check() raises it
            return
        if ps is not None:
            self.pilot_state = ps
            if ps not in self.charge_states:
                self.contactor.open()

    def check(self):
        """Pilot, contactor and residual-current monitor: None, or the fault (code, detail)."""
        try:
            if self._pilot_fault is not None:
                exc, self._pilot_fault = self._pilot_fault, None
                raise exc if isinstance(exc, PilotFault) else PilotFault(exc)
            ps = self.pilot.poll()
        except PilotFault as exc:
            return code_of("pilot", exc.reason), str(exc)
        if ps is not None:
            self.pilot_state = ps
        try:
            self.contactor.check()
        except ContactorFault as exc:
            return code_of("contactor", exc.reason), ""
        if self.rcd is not None:
            try:
                self.rcd.check()
            except RcdFault as exc:
                return code_of("rcd", exc.reason), "residual DC current"
        return None

    def before_closing(self):
        """The residual-current monitor must trip on its test: None, or the fault."""
        if self.rcd is not None:
            try:
                self.rcd.self_test()
            except RcdFault as exc:
                return code_of("rcd", exc.reason), "self-test before closing"
        return None
