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
# journalled while it runs. After a reboot the contactor stays open until the session is
# re-established (EV still plugged, meter answering) or closed with the meter's reading.
from drivers.contactor import ContactorFault
from drivers.meter import MeterError
from drivers.pilot import PilotFault
from drivers.rcd import RcdFault
from session.billing import Billing
from store.atomic import CorruptFile

IDLE = "idle"
CONNECTED = "connected"
AUTHORISED = "authorised"
CHARGING = "charging"
SUSPENDED = "suspended"
STOPPED = "stopped"
FAULT = "fault"
RECOVERING = "recovering"
CLOSING = "closing"            # only in the journal: the end is fixed, the receipt not yet made

# Stop reason -> OCMF TX of the end reading (E end, L local, R remote, A abort, P power loss).
_END_TX = {"ev-unplugged": "E", "user": "L", "remote": "R", "power-loss": "P",
           "segment-limit": "L"}
# A receipt lists the energy per time-of-use segment, one per band start crossed. A session
# that crosses this many is closed (and a new one must be authorised), so its receipt stays
# well inside ledger.log.RECEIPT_MAX.
MAX_SEGMENTS = 40


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
        self.billing = billing            # session.billing.Billing
        self.rcd = rcd                    # drivers.rcd.ResidualCurrent, or None if not fitted
        # State D (the EV needs ventilation) may only charge where the site provides it.
        self._charge_states = ("C", "D") if config.get("ventilation") else ("C",)
        self.state = IDLE
        self.session = None
        self.split = None                 # the running session's energy per tariff band
        self.pilot_state = "A"
        self.fault = None
        self.meter_failures = 0
        self.last_power_w = 0
        self.current_limit_ma = config["rated_current_a"] * 1000
        self._next_meter_ms = clock.ticks_ms()
        self._limit0_ms = clock.ticks_ms()     # when the current limit last changed
        self._retry_ms = clock.ticks_ms()      # next retry of a receipt the ledger refused
        self._recover_failures = 0
        self._pilot_fault = None               # seen by safety_poll(), handled by step()
        self._last_journal_s = 0
        self._since_ms = clock.ticks_ms()   # when the current state was entered
        # Most energy the meter may count per second: rated power with 25 % headroom.
        max_w = config["rated_current_a"] * config["nominal_voltage_v"] * config["phases"]
        self._max_w = max_w + max_w // 4
        self.contactor.open()
        self._recover()

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
        self._end_charging(reason)
        return True

    def set_current_limit(self, milliamps):
        rated = self.cfg["rated_current_a"] * 1000
        if milliamps != 0 and (milliamps < 6000 or milliamps > rated):
            raise ValueError("current limit %d mA: 0 or 6000..%d" % (milliamps, rated))
        self.current_limit_ma = milliamps
        self._limit0_ms = self.clock.ticks_ms()
        if self.state in (AUTHORISED, CHARGING, SUSPENDED):
            self.pilot.set_current_limit(milliamps)

    def reset_fault(self):
        """Operator reset, needed after a contactor fault, once the contact reads open."""
        pending = self.sessions.load()
        if pending is not None and pending["phase"] == CLOSING:
            return False                    # a receipt still waits for the ledger
        if self.state == FAULT and not self.contactor.feedback_closed():
            self.contactor.reset()
            self.fault = None
            self._enter(IDLE)
            self.pilot.set_idle()
            return True
        return False

    # ---- the control loop ------------------------------------------------------------------

    def safety_poll(self):
        """The pilot and the coil only, for the slices of a blocking wait (a meter read): an EV
        that stops asking for current, or a pilot fault, opens the contactor at once; step()
        does the bookkeeping on its next pass."""
        if not self.contactor.closed:
            return
        try:
            ps = self.pilot.poll()
        except PilotFault as exc:
            self.contactor.open()
            self._pilot_fault = exc         # poll() raises once: step() must still see it
            return
        if ps is not None:
            self.pilot_state = ps
            if ps not in self._charge_states:
                self.contactor.open()

    def step(self):
        """One pass of the control loop: bounded work, at most one meter read."""
        try:
            if self._pilot_fault is not None:
                exc, self._pilot_fault = self._pilot_fault, None
                raise exc
            ps = self.pilot.poll()
        except PilotFault as exc:
            self._on_fault("pilot-" + exc.reason, str(exc))
            return
        if ps is not None:
            self.pilot_state = ps
        try:
            self.contactor.check()
        except ContactorFault as exc:
            self._on_fault("contactor-" + exc.reason, "")
            return
        if self.rcd is not None:
            try:
                self.rcd.check()
            except RcdFault as exc:
                self._on_fault("rcd-" + str(exc), "residual DC current")
                return
        state = self.state
        if state == IDLE:
            self._step_idle()
        elif state == CONNECTED:
            self._step_connected()
        elif state == FAULT:
            self._step_fault()
        elif state == RECOVERING:
            self._step_recovering()
        else:
            now_ms = self.clock.ticks_ms()
            if self.clock.ticks_diff(now_ms, self._next_meter_ms) >= 0:
                self._next_meter_ms = self.clock.ticks_add(now_ms, self.cfg["meter_poll_ms"])
                if not self._poll_meter():
                    return
            self._step_session()

    def _enter(self, state):
        self.state = state
        self._since_ms = self.clock.ticks_ms()

    def _now(self):
        """Wall time for the running session, never before its last reading: an RTC that came
        back behind the journal after a power cut must not put an end before a begin."""
        now = self.clock.time()
        s = self.session
        if s is not None and now < s["last_time"]:
            return s["last_time"]
        return now

    def _step_idle(self):
        if self.pilot_state in ("B", "C", "D"):
            self._enter(CONNECTED)
            now = self.clock.time()
            if self.auth.mode == "free":
                self._try_begin("", "NONE", now)
            else:
                self._step_connected()

    def _step_connected(self):
        if self.pilot_state == "A":
            self._enter(IDLE)
            return
        now = self.clock.time()
        remote_id = self.auth.take_remote(now)
        if remote_id is not None:
            self._try_begin(remote_id, self.auth.id_type(remote_id, True), now)

    def _step_session(self):
        ps = self.pilot_state
        state = self.state
        if ps == "A":
            if state != STOPPED:
                self._end_charging("ev-unplugged")
            if self.session is not None:
                self._close_session()
        elif len(self.split.segments) >= MAX_SEGMENTS:
            if state != STOPPED:
                self._end_charging("segment-limit")
            if self.session is not None:
                self._close_session()
        elif state == AUTHORISED or state == SUSPENDED:
            if ps in self._charge_states and self.current_limit_ma:
                self._close_contactor()
        elif state == CHARGING and ps not in self._charge_states:   # paused, full, or D unvented
            self.contactor.open()
            self.session["charge_end"] = self._now()
            self._set_phase(SUSPENDED)
        elif state == CHARGING and self.current_limit_ma == 0:
            # PWM withdrawn (limit 0): the EV must stop drawing; if it keeps asking past the
            # grace time, the contactor opens under it.
            if self.clock.ticks_diff(self.clock.ticks_ms(), self._limit0_ms) >= self.cfg["pwm_off_grace_ms"]:
                self.contactor.open()
                self.session["charge_end"] = self._now()
                self._set_phase(SUSPENDED)

    def _step_fault(self):
        # The pilot holds -12 V (state F) for fault_hold_ms, then +12 V to watch for unplug.
        if self.session is None and self.clock.ticks_diff(self.clock.ticks_ms(), self._retry_ms) >= 0:
            pending = self.sessions.load()
            if pending is not None and pending["phase"] == CLOSING:
                # A receipt the ledger could not take yet: try again, once a minute.
                self._retry_ms = self.clock.ticks_add(self.clock.ticks_ms(), 60000)
                self._record(pending)
                return
        held = self.clock.ticks_diff(self.clock.ticks_ms(), self._since_ms)
        if held < self.cfg["fault_hold_ms"]:
            return
        if self.pilot.duty() != 1000:
            self.pilot.set_idle()
            return
        if self.pilot_state == "A" and not self.fault["code"].startswith("contactor"):
            self.fault = None
            self._enter(IDLE)

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
            begin_wh = self._read_energy()
        except MeterError as exc:
            raise Refused("meter-unavailable: %s" % exc)
        last_end = self.sessions.last_end_wh
        if last_end is not None and begin_wh < last_end:
            self._on_fault("meter-backwards", "begin %d Wh < last end %d Wh" % (begin_wh, last_end))
            raise Refused("meter-backwards")
        self.split = self.billing.start(now, begin_wh)
        self.session = {
            "seq": self.ledger.next_seq(), "id": id_tag, "id_type": id_type,
            "begin_wh": begin_wh, "begin_time": now, "last_wh": begin_wh, "last_time": now,
            "tariff": self.split.tariff.hash, "charge_end": None, "end_wh": None,
            "end_time": None, "reason": None, "phase": AUTHORISED,
            # Energy the meter counted between the last session and this one (validators flag it).
            "between_wh": (begin_wh - last_end) if last_end is not None else 0,
        }
        self._enter(AUTHORISED)
        self._journal()                     # on flash before the contactor can close
        self.pilot.set_current_limit(self.current_limit_ma)

    def _close_contactor(self):
        if self.rcd is not None:
            try:
                self.rcd.self_test()            # the residual-current monitor must trip on test
            except RcdFault as exc:
                self._on_fault("rcd-" + str(exc), "self-test before closing")
                return
        self.session["charge_end"] = None
        self._set_phase(CHARGING)           # journalled first: a reboot knows it may have flowed
        try:
            self.contactor.close()
        except ContactorFault as exc:
            self._on_fault("contactor-" + exc.reason, "on close")

    def _set_phase(self, state):
        self._enter(state)
        self.session["phase"] = state
        self._journal()

    def _end_charging(self, reason):
        """Open the contactor and fix the charge end; the session waits for unplug."""
        self.contactor.open()
        self.pilot.set_idle()
        s = self.session
        now = self._now()
        try:
            self._take_reading(self._read_energy(), now)
        except MeterError:
            pass            # the last good reading stands: nothing flows once open
        if self.session is None:
            return          # the reading was a fault, which closed the session
        if s["charge_end"] is None:
            s["charge_end"] = now
        s["reason"] = reason
        self._set_phase(STOPPED)

    def _close_session(self):
        """Unplugged: fix the end reading, then the session goes to the ledger."""
        s = self.session
        now = self._now()
        try:
            self._take_reading(self._read_energy(), now)
        except MeterError:
            pass
        if self.session is not None:        # _take_reading may have faulted and closed it
            self._finish(s, now)

    def _finish(self, s, end_time):
        """Fix the end of s and record it: journal (closing) first, then ledger, then clear."""
        self.split.sample(end_time if end_time > s["last_time"] else s["last_time"], s["last_wh"])
        s["end_wh"] = s["last_wh"]
        s["end_time"] = end_time if end_time > s["last_time"] else s["last_time"]
        if s["charge_end"] is None:
            s["charge_end"] = s["end_time"]
        s["price"] = list(self.billing.price(self.split, s, s["end_time"]))
        s["phase"] = CLOSING
        self._journal()
        self._record(s)
        if self.state != FAULT:
            self._enter(IDLE)
            self.pilot.set_idle()

    def _record(self, s):
        """Ledger first, then the journal forgets the session. If the ledger cannot take it,
        the session stays on flash (closing) and is recorded at the next chance."""
        self.session = None
        self.split = None
        if not self.ledger.recorded(s["seq"]):
            try:
                self.ledger.record(self._receipt_fields(s))
            except Exception as exc:      # flash full, bad field: keep it, stop charging
                self.contactor.open()
                if self.state != FAULT or self.fault is None or self.fault["code"] != "ledger":
                    self.fault = self.faults.record(self.clock.time(), "ledger", str(exc))
                    self._enter(FAULT)
                return
        self.sessions.finish(s)

    def _receipt_fields(self, s):
        cfg = self.cfg
        reason = s["reason"] or "ev-unplugged"
        net, tax, total = s["price"]
        fields = {
            "seq": s["seq"], "charger_id": cfg["charger_id"],
            "meter_model": cfg["meter_model"], "meter_serial": cfg["meter_serial"],
            "user_id": s["id"], "user_id_type": s["id_type"],
            "begin_wh": s["begin_wh"], "end_wh": s["end_wh"],
            "begin_time": s["begin_time"], "end_time": s["end_time"],
            "charge_end_time": s["charge_end"], "clock_status": self.clock.status(),
            "segments": s["segments"], "tariff": s["tariff"],
            "net_minor": net, "tax_minor": tax, "price_minor": total,
            "currency": self.billing.tariff_by_hash(s["tariff"]).currency,
            "stop_reason": reason, "end_tx": _END_TX.get(reason, "A"),
        }
        if cfg["evse_id"]:
            fields["evse_id"] = cfg["evse_id"]
        return fields

    # ---- meter -------------------------------------------------------------------------------

    def _read_energy(self):
        reading = self.meter.read()
        self.last_power_w = reading.power_w
        return reading.energy_wh

    def _poll_meter(self):
        """Read the meter during a session; False if this step must go no further."""
        try:
            energy_wh = self._read_energy()
        except MeterError as exc:
            self.meter_failures += 1
            if self.meter_failures >= self.cfg["max_meter_failures"]:
                self._on_fault("meter-silent", "%d failed reads: %s" % (self.meter_failures, exc))
                return False
            return True
        self.meter_failures = 0
        return self._take_reading(energy_wh, self._now())

    def _take_reading(self, energy_wh, now, bound_jump=True):
        s = self.session
        delta = energy_wh - s["last_wh"]
        if delta < 0:
            self._on_fault("meter-backwards", "%d Wh after %d Wh" % (energy_wh, s["last_wh"]))
            return False
        elapsed = now - s["last_time"]
        if elapsed < 1:
            elapsed = 1
        # Rated power over the elapsed time, plus 10 Wh for meters that count in 10 Wh steps.
        if bound_jump and delta > self._max_w * elapsed // 3600 + 10:
            self._on_fault("meter-jump", "+%d Wh in %d s" % (delta, elapsed))
            return False
        if now < s["last_time"]:
            now = s["last_time"]            # a clock stepped back does not rewrite history
        self.split.sample(now, energy_wh)
        s["last_wh"] = energy_wh
        s["last_time"] = now
        if now - self._last_journal_s >= self.cfg["journal_interval_s"]:
            self._journal()
        return True

    def _journal(self):
        s = self.session
        Billing.save(self.split, s)
        self.sessions.save(s)
        self._last_journal_s = s["last_time"]

    # ---- faults ----------------------------------------------------------------------------

    def fail(self, code, detail=""):
        """A fault found outside the state machine (the main loop's last resort)."""
        self._on_fault(code, detail)

    def _on_fault(self, code, detail):
        """Fail safe: contactor open first, then the record, then the session is closed."""
        self.contactor.open()
        self.pilot.signal_error()
        now = self.clock.time()
        if self.state != FAULT or self.fault is None or self.fault["code"] != code:
            self.fault = self.faults.record(now, code, detail)   # once, not every retry
        self._enter(FAULT)
        s = self.session
        if s is not None:
            if not code.startswith("meter") and s["end_wh"] is None:
                # The meter itself is fine: the end is its reading now, the contactor open.
                try:
                    wh = self._read_energy()
                    if wh >= s["last_wh"]:
                        t = self._now()
                        self.split.sample(t, wh)
                        s["last_wh"] = wh
                        s["last_time"] = t
                except MeterError:
                    pass
            if s["reason"] is None:
                s["reason"] = "fault:" + code
            if s["charge_end"] is None:
                s["charge_end"] = s["last_time"]
            # Otherwise the end is the last good reading, taken before the fault.
            self._finish(s, s["last_time"])

    # ---- reboot recovery ---------------------------------------------------------------------

    def _recover(self):
        """At boot: record a session that was closing; hold any other for _step_recovering."""
        try:
            s = self.sessions.load()
        except CorruptFile as exc:
            # Neither copy of the running session survived: keep the damaged file for
            # forensics, store the fault, and start clean. The receipt log is untouched.
            self.sessions.quarantine()
            self.fault = self.faults.record(self.clock.time(), "session-journal", str(exc))
            return
        if s is None:
            return
        self.session = s
        if s["phase"] == CLOSING:
            self._record(s)
            return
        self.split = self.billing.resume(s)
        self._enter(RECOVERING)

    def _step_recovering(self):
        """Re-establish the journalled session once the pilot has settled; contactor open."""
        if self.clock.ticks_diff(self.clock.ticks_ms(), self._since_ms) < self.cfg["recover_settle_ms"]:
            return
        s = self.session
        try:
            energy_wh = self._read_energy()
        except MeterError as exc:
            # The session stays on flash while the meter may still come back; a meter that
            # stays silent closes it with the journalled reading, as a fault.
            self._recover_failures += 1
            if self._recover_failures >= self.cfg["max_meter_failures"]:
                self._on_fault("meter-silent", "after reboot: %s" % exc)
            return
        # Energy counted before the power went off belongs to this session. A clock that came
        # back behind the journal (RTC lost with the power) cannot bound it: the contactor has
        # been open since boot, so whatever the register gained flowed before the cut.
        self._enter(s["phase"] if s["phase"] in (AUTHORISED, STOPPED) else SUSPENDED)
        bounded = self.clock.time() > s["last_time"]
        if not self._take_reading(energy_wh, self._now(), bound_jump=bounded):
            return
        if self.state == STOPPED:
            self._set_phase(STOPPED)            # waits for unplug, as before the reboot
        elif self.pilot_state in ("B", "C", "D"):
            self._set_phase(self.state)
            self.pilot.set_current_limit(self.current_limit_ma)
        else:
            self._end_charging("power-loss")

    # ---- for telemetry and status --------------------------------------------------------------

    def status(self):
        s = self.session
        price = 0
        if s is not None and self.split is not None:
            price = self.billing.price(self.split, s, s["last_time"])[2]
        return {
            "state": self.state, "pilot": self.pilot_state, "power_w": self.last_power_w,
            "energy_wh": (s["last_wh"] - s["begin_wh"]) if s else 0, "price_minor": price,
            "fault": self.fault["code"] if self.fault else None,
        }
