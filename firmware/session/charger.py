# The charging session state machine (one connector).
#
#   idle --EV plugged (B)--> connected --authorised--> authorised --EV asks (C/D)--> charging
#   charging --EV pauses (B)--> suspended --EV asks again (C/D)--> charging
#   authorised/charging/suspended --card again, remote stop--> stopped
#   any session state --unplugged (A)--> idle, and the session becomes a receipt
#   any state --fault--> fault: contactor open, fault stored, session closed into a receipt
#
# Energy is the difference of the meter's total import register (integer Wh), never an
# integral of power. The session is on flash before the contactor closes and its readings are
# journalled while it runs (session/books.py, with session/plausibility.py judging each
# reading). After a reboot the contactor stays open until the session is re-established (EV
# still plugged, meter answering) or closed with the meter's reading (session/recovery.py).
from drivers.contactor import ContactorFault
from drivers.meter import MeterError
from session import faults as fault_codes
from session.limit import LimitLease
from session.books import Books
from session.fault_state import FaultState
from session.plausibility import FlowCheck, MeterWatch
from session.recovery import Recovery
from session.tariff import TariffError
from session.safety import Safety
from session.state import (IDLE, CONNECTED, AUTHORISED, CHARGING, SUSPENDED, STOPPED, FAULT,
                           RECOVERING, CLOSING)
from store import atomic

# A receipt lists the energy per time-of-use segment, one per band start crossed. A session
# that crosses this many is closed (and a new one must be authorised), so its receipt stays
# well inside ledger.log.RECEIPT_MAX.
MAX_SEGMENTS = 40
# The states, for the callers that name them through this module.
STATES = (IDLE, CONNECTED, AUTHORISED, CHARGING, SUSPENDED, STOPPED, FAULT, RECOVERING, CLOSING)


class Refused(Exception):
    """An authorisation that cannot start a session; the message is the reason."""


class Charger:
    def __init__(self, config, clock, meter, contactor, pilot, auth, sessions, faults, ledger,
                 billing, rcd=None):
        self.cfg = config                 # app/config.py lists the keys
        self.clock = clock
        self.meter = meter                # drivers.meter.Meter
        self.contactor = contactor        # drivers.contactor.Contactor
        self.pilot = pilot                # drivers.pilot.Pilot
        self.auth = auth                  # session.auth.Authoriser
        self.sessions = sessions          # session.state.SessionStore
        self.faults = faults              # session.faults.FaultLog
        self.ledger = ledger              # has_room(), next_seq(), recorded(seq), record(dict)
        self.books = Books(config, clock, sessions, ledger, billing)   # the running session
        self.watch = MeterWatch(meter, config)
        self.flow = FlowCheck(config, clock)   # stale or inconsistent while current flows
        # State D (the EV needs ventilation) may only charge where the site provides it.
        self._charge_states = ("C", "D") if config.get("ventilation") else ("C",)
        self.safety = Safety(pilot, contactor, rcd, self._charge_states)
        self.safety_poll = self.safety.poll   # for the slices of a blocking wait (meter reads)
        self.state = IDLE
        self.fault = None
        self.current_limit_ma = config["rated_current_a"] * 1000
        self.lease = LimitLease(clock)         # a site controller's limit runs out unless renewed
        self._next_meter_ms = clock.ticks_ms()
        self._limit0_ms = clock.ticks_ms()     # when the current limit last changed
        self.since_ms = clock.ticks_ms()       # when the current state was entered
        self.recovery = Recovery(self)         # the recovering state, after a reboot
        self.fault_state = FaultState(self)    # the fault state
        self.contactor.open()
        self.recovery.boot()

    @property
    def session(self):
        """The running session (a dict, see session/books.py) or None."""
        return self.books.session

    @property
    def pilot_state(self):
        return self.safety.pilot_state

    # ---- requests: RFID reader, operator commands -------------------------------------------

    def authorise(self, id_tag, remote=False):
        """Start (or, for the card that started it, stop) a session; raises Refused(reason)."""
        now = self.clock.time()
        if self.state == FAULT or self.state == RECOVERING:
            raise Refused("charger-fault" if self.state == FAULT else "recovering")
        if self.session is not None:
            if id_tag == self.session["id"] and not remote:
                self.stop("user")
                return
            raise Refused("busy")
        reason = self.auth.check(id_tag, now, remote)
        if reason:
            raise Refused(reason)
        if self.state != CONNECTED:
            if remote:                    # remote start before plug-in: held for a while
                self.auth.grant_remote(id_tag, now)
                return
            raise Refused("no-ev")
        self._begin(id_tag, self.auth.id_type(id_tag, remote), now)

    def stop(self, reason):
        """Stop charging; the receipt is made when the EV is unplugged."""
        if self.session is None or self.state == STOPPED:
            return False
        self.end_charging(reason)
        return True

    def set_current_limit(self, milliamps, ttl_s=None):
        """ttl_s: the limit holds that long unless set again, then fallback_current_ma applies."""
        rated = self.cfg["rated_current_a"] * 1000
        if milliamps != 0 and (milliamps < 6000 or milliamps > rated):
            raise ValueError("current limit %d mA: 0 or 6000..%d" % (milliamps, rated))
        self.lease.start(ttl_s)
        self.current_limit_ma = milliamps
        self._limit0_ms = self.clock.ticks_ms()
        if self.state in (AUTHORISED, CHARGING, SUSPENDED):
            self.pilot.set_current_limit(milliamps)

    def reset_fault(self):
        """Operator reset, needed after a contactor fault, once the contact reads open."""
        return self.fault_state.reset()

    # ---- the control loop ------------------------------------------------------------------

    def step(self):
        """One pass of the control loop: bounded work, at most one meter read."""
        if self._faulted(self.safety.check()):
            return
        if self.lease.ran_out():              # the site controller went silent
            self.set_current_limit(min(self.cfg["fallback_current_ma"],
                                       self.cfg["rated_current_a"] * 1000))
        state = self.state
        if state == IDLE:
            self._step_idle()
        elif state == CONNECTED:
            self._step_connected()
        elif state == FAULT:
            self.fault_state.step()
        elif state == RECOVERING:
            self.recovery.step()
        else:
            now_ms = self.clock.ticks_ms()
            if self.clock.ticks_diff(now_ms, self._next_meter_ms) >= 0:
                self._next_meter_ms = self.clock.ticks_add(now_ms, self.cfg["meter_poll_ms"])
                if not self._poll_meter():
                    return
                atomic.idle()           # the safety watch (the app's): the reading is booked
            self._step_session()

    def enter(self, state):
        self.state = state
        self.since_ms = self.clock.ticks_ms()

    def _step_idle(self):
        if self.pilot_state in ("B", "C", "D"):
            self.enter(CONNECTED)
            now = self.clock.time()
            if self.auth.mode == "free":
                self._try_begin("", "NONE", now)
            else:
                self._step_connected()

    def _step_connected(self):
        if self.pilot_state == "A":
            self.enter(IDLE)
            return
        now = self.clock.time()
        remote_id = self.auth.take_remote(now)
        if remote_id is not None:
            self._try_begin(remote_id, self.auth.id_type(remote_id, True), now)

    def _step_session(self):
        ps = self.pilot_state
        state = self.state
        if ps == "A" or len(self.books.split.segments) >= MAX_SEGMENTS:
            if state != STOPPED:
                self.end_charging("ev-unplugged" if ps == "A" else "segment-limit")
            if self.session is not None:
                self._close_session()
        elif state == AUTHORISED or state == SUSPENDED:
            if ps in self._charge_states and self.current_limit_ma:
                self._close_contactor()
        elif state == CHARGING and ps not in self._charge_states:   # paused, full, or D unvented
            self._suspend()
        elif state == CHARGING and self.current_limit_ma == 0:
            # PWM withdrawn (limit 0): the EV must stop drawing; if it keeps asking past the
            # grace time, the contactor opens under it.
            held = self.clock.ticks_diff(self.clock.ticks_ms(), self._limit0_ms)
            if held >= self.cfg["pwm_off_grace_ms"]:
                self._suspend()

    def _suspend(self):
        self.contactor.open()
        self.session["charge_end"] = self.books.now()
        self.set_phase(SUSPENDED)

    # ---- session begin and end ------------------------------------------------------------

    def _try_begin(self, id_tag, id_type, now):
        try:
            self._begin(id_tag, id_type, now)
        except Refused as exc:
            self.faults.record(now, "refused", str(exc))

    def _begin(self, id_tag, id_type, now):
        if not self.ledger.has_room():
            raise Refused("storage-full")
        try:
            begin_wh = self.read_energy()
        except MeterError as exc:
            raise Refused("meter-unavailable: %s" % exc)
        try:
            bad = self.books.open(id_tag, id_type, begin_wh, now)   # journalled before closing
        except TariffError as exc:              # the tariff in force has expired: no price
            raise Refused("no-tariff: %s" % exc)
        if bad is not None:
            self.on_fault(bad[0], bad[1])
            raise Refused(bad[0])
        self.enter(AUTHORISED)
        self.pilot.set_current_limit(self.current_limit_ma)

    def _close_contactor(self):
        if self._faulted(self.safety.before_closing()):
            return
        self.session["charge_end"] = None
        self.set_phase(CHARGING)           # journalled first: a reboot knows it may have flowed
        try:
            self.contactor.close()
        except ContactorFault as exc:
            self.on_fault(fault_codes.code_of("contactor", exc.reason), "on close")

    def set_phase(self, state):
        self.enter(state)
        self.books.set_phase(state)

    def end_charging(self, reason):
        """Open the contactor and fix the charge end; the session waits for unplug."""
        self.contactor.open()
        self.pilot.set_idle()
        s = self.session
        now = self.books.now()
        if not self._last_reading(now):
            return
        if s["charge_end"] is None:
            s["charge_end"] = now
        s["reason"] = reason
        self.set_phase(STOPPED)

    def _close_session(self):
        """Unplugged: fix the end reading, then the session goes to the ledger."""
        now = self.books.now()
        if self._last_reading(now):
            self.finish(now)

    def _last_reading(self, now):
        """A fresh reading for the end; False if it was a fault (which closed the session).
        A failed read leaves the last good reading standing: nothing flows once open."""
        try:
            self.take_reading(self.read_energy(), now)
        except MeterError:
            pass
        return self.session is not None

    def finish(self, end_time):
        """Fix the end of the session and record it: journal (closing), ledger, then clear."""
        self.record(self.books.close(end_time))
        if self.state != FAULT:
            self.enter(IDLE)
            self.pilot.set_idle()

    def record(self, s):
        """The closed session s to the ledger. If the ledger cannot take it, the session stays
        on flash (closing) and is recorded at the next chance; meanwhile nothing charges."""
        try:
            self.books.to_ledger(s)
        except Exception as exc:      # flash full, bad field: keep it, stop charging
            self.contactor.open()
            if self.fault_state.record("ledger", str(exc)):
                self.enter(FAULT)
            return
        self.sessions.finish(s)

    # ---- meter -------------------------------------------------------------------------------

    def read_energy(self):
        return self.watch.read()

    def _poll_meter(self):
        """Read the meter during a session; False if this step must go no further."""
        energy_wh = self.watch.poll()
        if energy_wh is None:
            if self.watch.silent is None:
                return True                 # one failed read: the last good reading stands
            self.on_fault("meter-silent", self.watch.silent)
            return False
        flowing = self.contactor.closed and self.pilot_state in self._charge_states
        if self._faulted(self.flow.check(energy_wh, self.watch.power_w, flowing)):
            return False
        return self.take_reading(energy_wh, self.books.now())

    def take_reading(self, energy_wh, now, bound_jump=True):
        """Book a reading; False (after the fault) if the meter's register is implausible."""
        return not self._faulted(self.books.take_reading(energy_wh, now, bound_jump))

    # ---- faults ----------------------------------------------------------------------------

    def _faulted(self, bad):
        """bad: None, or a fault (code, detail) that is then handled; True if it was a fault."""
        if bad is None:
            return False
        self.on_fault(bad[0], bad[1])
        return True

    def fail(self, code, detail=""):
        """A fault found outside the state machine (the main loop's last resort)."""
        self.on_fault(code, detail)

    def on_fault(self, code, detail):
        """Fail safe: contactor open first, then the record, then the session is closed."""
        self.fault_state.enter(code, detail)

    # ---- for telemetry and status --------------------------------------------------------------

    def status(self):
        s = self.session
        return {
            "state": self.state, "pilot": self.pilot_state, "power_w": self.watch.power_w,
            "energy_wh": (s["last_wh"] - s["begin_wh"]) if s else 0,
            "price_minor": self.books.price_so_far(),
            "fault": self.fault["code"] if self.fault else None,
        }
