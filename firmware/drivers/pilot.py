# Control pilot, EV supply equipment side, per IEC 61851-1:2017 Annex A (same values as
# SAE J1772): reads the EV's state from the pilot voltage and offers a current by PWM duty.
#
#   p = Pilot(pwm, adc, clock, max_ma=32000)   # pwm/adc: see hal/sim.py (interfaces)
#   p.poll()          -> "A".."F" (debounced), None before the first state has settled;
#                        raises PilotFault once when a fault becomes steady (see below)
#   p.set_current_limit(ma) -> duty per mille; below 6 A: no PWM (steady +12 V)
#   p.set_idle()      steady +12 V, no PWM: nothing offered (A, or B without current)
#   p.signal_error()  steady -12 V: state F, "EV supply equipment not available"
#   p.state, p.fault, p.duty(), p.offered_ma(), p.high_mv / p.low_mv (last sample)
#   duty_from_current(ma), current_from_duty(duty): the Annex A mapping, integers only
#
# Faults (PilotFault.reason): "state-E" (CP shorted to PE, ~0 V), "state-F" (-12 V while we
# drive +12 V or PWM), "diode" (PWM runs, an EV is present, but the low level is not -12 V:
# the EV's diode is missing or shorted), "invalid-level" (a level outside every band),
# "unstable" (for unstable_ms no reading lasted the debounce time: a loose contact).
# poll() raises once when a fault has been steady for the debounce time, then returns "E"
# (short) or "F" (any other fault) until the line reads a valid state again: the caller
# records one fault, not one per poll. While signal_error() holds the line at -12 V, reading
# -12 V is our own doing and poll() returns "F" without a fault. The EV cannot be seen then:
# go back to set_idle() to look for "A" (unplug).
#
# Debounce: a classification must be read in debounce_polls consecutive polls spanning at least
# debounce_ms before it is reported. Keep debounce plus the poll period well inside Annex A's
# reaction times (the contactor must open within 100 ms of the EV leaving state C).
from hal.compat import const

# Pilot high-level bands in mV at the EVSE's measuring point: nominal 12/9/6/3/0/-12 V, each
# +-1 V (IEC 61851-1:2017 Annex A, Table A.4, the ranges the EV supply equipment detects; SAE
# J1772 has the same nominal levels). Levels in the gaps between bands are not a state: if one
# lasts the debounce time it is the fault "invalid-level", never rounded to the nearest state.
_A_MIN = const(11000)
_A_MAX = const(13000)
_B_MIN = const(8000)
_B_MAX = const(10000)
_C_MIN = const(5000)
_C_MAX = const(7000)
_D_MIN = const(2000)
_D_MAX = const(4000)
_E_MIN = const(-1000)
_E_MAX = const(1000)
_F_MIN = const(-13000)
_F_MAX = const(-11000)

# Duty cycle in per mille (0.1 %). IEC 61851-1:2017 Table A.7 (duty cycle provided by the
# EV supply equipment): 6 A <= I <= 51 A: D% = I / 0.6; 51 A < I <= 80 A: D% = I / 2.5 + 64;
# 5 % asks for digital communication (ISO 15118), which this charger does not do.
DUTY_OFF_HIGH = const(1000)     # steady +12 V: no PWM, no current offered
DUTY_OFF_LOW = const(0)         # steady -12 V: state F
DUTY_DIGITAL = const(50)
MIN_MA = const(6000)
MAX_MA = const(80000)
_LOW_RANGE_MA = const(51000)
_DUTY_MIN = const(100)          # 10 %: 6 A
_DUTY_LOW_MAX = const(850)      # 85 %: 51 A
_DUTY_MAX = const(960)          # 96 %: 80 A

# Internal classifications beyond the state letters.
_DIODE = "d"
_INVALID = "?"
_UNSTABLE = "~"


class PilotError(ValueError):
    """A bad argument to the pilot driver (nothing was changed)."""


class PilotFault(Exception):
    """A steady fault on the pilot line; reason is one of the strings listed above."""

    def __init__(self, reason, high_mv=0, low_mv=0):
        super().__init__("%s (high %d mV, low %d mV)" % (reason, high_mv, low_mv))
        self.reason = reason


def duty_from_current(ma):
    """Duty (per mille) that offers at most ma milliamps (6000..80000). Rounds down, so the EV
    is never offered more than ma."""
    if not isinstance(ma, int) or ma < MIN_MA or ma > MAX_MA:
        raise PilotError("current %r mA outside %d..%d" % (ma, MIN_MA, MAX_MA))
    if ma <= _LOW_RANGE_MA:
        return ma // 60                  # D[%] = I[A] / 0.6  ->  D[per mille] = I[mA] / 60
    return ma // 250 + 640               # D[%] = I[A] / 2.5 + 64


def current_from_duty(duty):
    """Current (mA) a duty (per mille) offers, as the EV reads it (Table A.8): the inverse of
    duty_from_current for every duty it produces (100..960)."""
    if not isinstance(duty, int) or duty < _DUTY_MIN or duty > _DUTY_MAX:
        raise PilotError("duty %r per mille does not offer a current (%d..%d)" % (
            duty, _DUTY_MIN, _DUTY_MAX))
    if duty <= _DUTY_LOW_MAX:
        return duty * 60
    return (duty - 640) * 250


def classify(high_mv):
    """The state letter for a pilot high level in mV, or "?" outside every band."""
    if _A_MIN <= high_mv <= _A_MAX:
        return "A"
    if _B_MIN <= high_mv <= _B_MAX:
        return "B"
    if _C_MIN <= high_mv <= _C_MAX:
        return "C"
    if _D_MIN <= high_mv <= _D_MAX:
        return "D"
    if _E_MIN <= high_mv <= _E_MAX:
        return "E"
    if _F_MIN <= high_mv <= _F_MAX:
        return "F"
    return _INVALID


_FAULT_REASON = {"E": "state-E", "F": "state-F", _DIODE: "diode", _INVALID: "invalid-level"}


class Pilot:
    def __init__(self, pwm, adc, clock, max_ma=MAX_MA, debounce_ms=30, debounce_polls=3,
                 unstable_ms=500):
        if not isinstance(max_ma, int) or max_ma < MIN_MA or max_ma > MAX_MA:
            raise PilotError("max_ma %r outside %d..%d" % (max_ma, MIN_MA, MAX_MA))
        if debounce_polls < 1 or debounce_ms < 0 or unstable_ms <= debounce_ms:
            raise PilotError("debounce needs >= 1 poll, >= 0 ms and unstable_ms above it")
        self._pwm = pwm
        self._adc = adc
        self._clock = clock
        self.max_ma = max_ma
        self.debounce_ms = debounce_ms
        self.debounce_polls = debounce_polls
        self.unstable_ms = unstable_ms
        self.state = None            # last debounced state letter
        self.fault = None            # reason of the steady fault, or None
        self.high_mv = 0
        self.low_mv = 0
        self._cand = None            # classification being debounced
        self._cand_since = 0
        self._cand_count = 0
        self._stable = None          # debounced classification (may be a fault class)
        self._settled = clock.ticks_ms()   # last poll whose reading had lasted the debounce
        self._last_poll = self._settled
        self.set_idle()

    # ---- output ---------------------------------------------------------------------------

    def duty(self):
        return self._pwm.duty()

    def set_idle(self):
        self._pwm.set_duty(DUTY_OFF_HIGH)

    def signal_error(self):
        self._pwm.set_duty(DUTY_OFF_LOW)

    def set_current_limit(self, ma):
        """Offer min(ma, max_ma) by PWM; below 6 A there is no PWM (Table A.7: charging is
        not allowed below 6 A), which tells the EV to stop drawing current. Returns the duty."""
        if not isinstance(ma, int) or ma < 0:
            raise PilotError("current limit %r mA must be an int >= 0" % (ma,))
        if ma < MIN_MA:
            duty = DUTY_OFF_HIGH
        else:
            duty = duty_from_current(ma if ma < self.max_ma else self.max_ma)
        self._pwm.set_duty(duty)
        return duty

    def offered_ma(self):
        d = self._pwm.duty()
        if d < _DUTY_MIN or d > _DUTY_MAX:
            return 0
        return current_from_duty(d)

    # ---- input ----------------------------------------------------------------------------

    def _classify_now(self):
        adc = self._adc
        adc.measure()
        high = adc.high_mv
        low = adc.low_mv
        self.high_mv = high
        self.low_mv = low
        cls = classify(high)
        duty = self._pwm.duty()
        if duty == DUTY_OFF_LOW:
            return "f" if cls == "F" else cls        # our own -12 V: not a fault
        if (cls == "B" or cls == "C" or cls == "D") and 0 < duty < DUTY_OFF_HIGH:
            # Diode check: with PWM running the EV's diode blocks the negative half, so the
            # low level stays in the -12 V band.
            if not (_F_MIN <= low <= _F_MAX):
                return _DIODE
        return cls

    def poll(self):
        """Sample the line once and return the debounced state (see the module header)."""
        cls = self._classify_now()
        now = self._clock.ticks_ms()
        if self._clock.ticks_diff(now, self._last_poll) > self.unstable_ms // 4:
            # A gap in the sampling (a long meter read) is not a line that keeps changing:
            # instability is judged over polls that actually watched the line.
            self._settled = now
        self._last_poll = now
        if cls != self._cand:
            self._cand = cls
            self._cand_since = now
            self._cand_count = 1
        elif self._cand_count < self.debounce_polls:
            self._cand_count += 1
        if (self._cand_count >= self.debounce_polls
                and self._clock.ticks_diff(now, self._cand_since) >= self.debounce_ms):
            self._settled = now
            if cls != self._stable:
                self._stable = cls
                if cls in _FAULT_REASON:
                    self._fault(_FAULT_REASON[cls], "E" if cls == "E" else "F")
                self.fault = None
                self.state = "F" if cls == "f" else cls
        elif (self._stable != _UNSTABLE
                and self._clock.ticks_diff(now, self._settled) >= self.unstable_ms):
            # The line keeps changing and no reading lasts the debounce time: a loose
            # contact or interference. The last stable state is no longer true.
            self._stable = _UNSTABLE
            self._fault("unstable", "F")
        return self.state

    def _fault(self, reason, state):
        self.fault = reason
        self.state = state
        raise PilotFault(reason, self.high_mv, self.low_mv)
