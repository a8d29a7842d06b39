# Recovery after a reboot: the journalled session is recorded if it was closing, otherwise held
# (contactor open) until the pilot has settled and the meter answers, then re-established
# (EV still plugged) or closed with the meter's reading (EV gone: power-loss).
from drivers.meter import MeterError
from session.state import AUTHORISED, CLOSING, RECOVERING, STOPPED, SUSPENDED
from store.atomic import CorruptFile


class Recovery:
    def __init__(self, charger):
        self.charger = charger      # session.charger.Charger: its journal, ledger and meter
        self.failures = 0           # failed meter reads while recovering

    def boot(self):
        """At boot: record a session that was closing; hold any other for step()."""
        c = self.charger
        try:
            s = c.sessions.load()
        except CorruptFile as exc:
            # Neither copy of the running session survived: keep the damaged file for
            # forensics, store the fault, and start clean. The receipt log is untouched.
            c.sessions.quarantine()
            c.fault = c.faults.record(c.clock.time(), "session-journal", str(exc))
            return
        if s is None:
            return
        if s["phase"] == CLOSING:
            c.record(s)
            return
        c.books.resume(s)
        c.enter(RECOVERING)

    def step(self):
        """Re-establish the journalled session once the pilot has settled; contactor open."""
        c = self.charger
        if c.clock.ticks_diff(c.clock.ticks_ms(), c.since_ms) < c.cfg["recover_settle_ms"]:
            return
        s = c.session
        try:
            energy_wh = c.read_energy()
        except MeterError as exc:
            # The session stays on flash while the meter may still come back; a meter that
            # stays silent closes it with the journalled reading, as a fault.
            self.failures += 1
            if self.failures >= c.cfg["max_meter_failures"]:
                c.on_fault("meter-silent", "after reboot: %s" % exc)
            return
        # Energy counted before the power went off belongs to this session. A clock that came
        # back behind the journal (RTC lost with the power) cannot bound it: the contactor has
        # been open since boot, so whatever the register gained flowed before the cut.
        c.enter(s["phase"] if s["phase"] in (AUTHORISED, STOPPED) else SUSPENDED)
        bounded = c.clock.time() > s["last_time"]
        if not c.take_reading(energy_wh, c.books.now(), bound_jump=bounded):
            return
        if c.state == STOPPED:
            c.set_phase(STOPPED)                # waits for unplug, as before the reboot
        elif c.pilot_state in ("B", "C", "D"):
            c.set_phase(c.state)
            c.pilot.set_current_limit(c.current_limit_ma)
        else:
            c.end_charging("power-loss")
