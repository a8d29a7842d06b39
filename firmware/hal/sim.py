# Simulated hardware with the same interfaces as hal/esp32.py, for host tests, the fleet
# simulator and MicroPython unix runs. Nothing here imports machine.
#
# The devices and their interfaces (names, methods, units) are declared once in
# hal/contract.py; app/simulated.py wires these as that device set. Clock: hal/clock.py.
#
# Sim-only controls: SimClock.advance(ms)/set_time(s); SimRelay.fault = None | "stuck_open" |
# "welded"; SimEV.set_state("A".."F"), SimEV.diode, or SimEV.plug(need_wh) and
# SimEV.step(duty, ms, contacts_closed) -> W for a car that behaves by itself (fleet simulator:
# feed the W to the simulated meter); SimPilot.force_mv(high, low).

# MicroPython's ticks wrap at a power of two (2**30 ms on the ports that matter); the simulated
# ticks wrap the same way so drivers that subtract ticks instead of using ticks_diff fail here.
# The host's real clock is hal/clock.py's RealClock.
from hal.clock import TICKS_PERIOD

_TICKS_HALF = TICKS_PERIOD >> 1
_TICKS_MASK = TICKS_PERIOD - 1


class SimError(ValueError):
    """A bad argument to a simulated device (nothing was changed)."""


class SimClock:
    """Time that moves only when told to: advance(ms), sleep_ms(ms) or set_time(epoch)."""

    def __init__(self, epoch=1767225600, ticks=0, status="S"):   # 2026-01-01T00:00:00Z
        # The wall clock is epoch + elapsed seconds + ms: an epoch in seconds (let alone in
        # ms) is beyond the ESP32's 31-bit small integers, so advancing it would make a new
        # heap object every pass. Only the small parts move; time() builds the sum once per
        # second and hands out the same object until the next second.
        self._epoch = int(epoch)
        self._s = 0
        self._ms = 0
        self._ticks = ticks & _TICKS_MASK
        self._status = status
        self._t_s = -1
        self._t = 0

    def time(self):
        if self._s != self._t_s:
            self._t = self._epoch + self._s
            self._t_s = self._s
        return self._t

    def time_ms(self):
        return (self._epoch + self._s) * 1000 + self._ms

    def set_time(self, epoch, status="S"):
        """Set the wall clock (as NTP would); ticks keep running unchanged."""
        self._epoch = int(epoch)
        self._s = self._ms = 0
        self._t_s = -1
        self._status = status

    def status(self):
        return self._status

    def ticks_ms(self):
        return self._ticks

    def ticks_add(self, ticks, delta):
        return (ticks + delta) & _TICKS_MASK

    def ticks_diff(self, a, b):
        return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF

    def advance(self, ms):
        if ms < 0:
            raise SimError("time only moves forward")
        self._ticks = (self._ticks + ms) & _TICKS_MASK
        ms += self._ms
        if ms >= 1000:
            self._s += ms // 1000
            ms %= 1000
        self._ms = ms

    def sleep_ms(self, ms):
        self.advance(ms)


class SimOutputPin:
    """A digital output; value is the logical level (1 = active)."""

    def __init__(self, value=0):
        self._v = 1 if value else 0

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None


class SimInputPin:
    """A digital input whose level the test sets."""

    def __init__(self, value=0):
        self.level = 1 if value else 0

    def value(self):
        return self.level


class _Feedback:
    """The relay's auxiliary contact, read as an input pin (1 = main contacts closed)."""

    def __init__(self, relay):
        self._relay = relay

    def value(self):
        return 1 if self._relay.contacts_closed() else 0


class SimRelay(SimOutputPin):
    """A contactor: the coil is an output pin; the contacts follow the coil after delay_ms
    (pick-up / drop-out time). feedback is the auxiliary contact as an input pin.
    fault: None, "stuck_open" (contacts never close) or "welded" (contacts never open)."""

    def __init__(self, clock, delay_ms=30):
        SimOutputPin.__init__(self, 0)
        self._clock = clock
        self.delay_ms = delay_ms
        self.fault = None
        self._contacts = 0
        self._changed = clock.ticks_ms()
        self.operations = 0               # coil transitions, as a wear count
        self.feedback = _Feedback(self)

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            self._contacts = self.contacts_closed()   # freeze where the contacts were
            self._v = v
            self._changed = self._clock.ticks_ms()
            self.operations += 1
        return None

    def contacts_closed(self):
        """Are the main contacts closed now (energy can flow)?"""
        if self.fault == "welded":
            return True
        if self.fault == "stuck_open":
            return False
        if self._clock.ticks_diff(self._clock.ticks_ms(), self._changed) >= self.delay_ms:
            return self._v == 1
        return self._contacts == 1


class EnergyFlow:
    """What a simulated meter's energy register gains from power x time: whole Wh, as the
    meter counts, with the remainder (W*ms) carried to the next step."""

    def __init__(self):
        self.carry = 0

    def add(self, power_w, ms):
        self.carry += power_w * ms
        wh = self.carry // 3600000
        self.carry -= wh * 3600000
        return wh


# ---- control pilot ------------------------------------------------------------------------
# The EV side of IEC 61851-1 Annex A: the EV's resistors pull the +12 V high level of the
# pilot down to 9 V (B, 2.74 kOhm), 6 V (C, 882 Ohm) or 3 V (D, 246 Ohm); its diode keeps the
# low level at -12 V. Without the diode the low phase is loaded like the high phase, so the
# low level is about minus the high level. E is CP shorted to PE (0 V); F is -12 V.
_HIGH_MV = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0, "F": -12000}


class SimEV:
    """An EV (or no EV: state "A") on the pilot line. Set its state by hand (tests), or let
    step() drive it as a car that wants need_wh: plug() -> B; C once the pilot offers >= 6 A;
    charges while the contactor is closed; back to B when full or when the offer goes."""

    def __init__(self, state="A", diode=True, max_ma=32000, phases=3, volts=230):
        self.diode = diode
        self.max_ma = max_ma
        self.phases = phases
        self.volts = volts
        self.need_wh = 0
        self.delivered_uj = 0             # energy taken, in microjoules (mA * V * ms)
        self.state = "A"
        self.set_state(state)

    def plug(self, need_wh):
        self.need_wh = need_wh
        self.set_state("B")

    def unplug(self):
        self.set_state("A")

    def delivered_wh(self):
        return self.delivered_uj // 3600000000

    def step(self, duty, ms, powered):
        """Advance the car by ms with the pilot at duty and the contactor closed or not;
        returns the power drawn in W during this step."""
        s = self.state
        offered = self.offered_ma(duty)
        full = self.delivered_uj >= self.need_wh * 3600000000
        if s == "B" and offered and not full:
            self.set_state("C")                # ask for energy
        elif s == "C" and (full or not offered):
            self.set_state("B")                # done, or the charger withdrew the offer
        if not powered:
            return 0
        ma = self.draw_ma(duty)
        self.delivered_uj += ma * self.volts * self.phases * ms
        return ma * self.volts * self.phases // 1000

    def set_state(self, state):
        if state not in _HIGH_MV:
            raise SimError("EV state must be one of A-F, not %r" % (state,))
        self.state = state

    def levels_mv(self, duty):
        """(high, low) pilot levels the charger's ADC would see with the PWM at duty."""
        return self.high_mv(duty), self.low_mv(duty)

    # One level per call, no tuple: the simulated ADC is sampled every pass, and a tuple per
    # sample would show as the driver's allocation on the 32-bit heap measurements.
    def high_mv(self, duty):
        s = self.state
        if s == "E" or s == "F":
            return _HIGH_MV[s]
        return -12000 if duty <= 0 else _HIGH_MV[s]   # duty 0: the charger holds -12 V

    def low_mv(self, duty):
        s = self.state
        high = self.high_mv(duty)
        if s == "E" or s == "F" or duty >= 1000:      # steady level: no low phase
            return high
        if s == "A" or self.diode:
            return -12000
        return -high

    def offered_ma(self, duty):
        """The current the EV reads from the duty cycle (the EV's own reading, IEC 61851-1
        Table A.8 (EV side), independent of the charger's driver): 0 = must not charge."""
        if duty < 80 or duty > 970:
            return 0
        if duty < 100:
            return 6000
        if duty <= 850:
            return duty * 60
        if duty <= 960:
            return (duty - 640) * 250
        return 80000

    def draw_ma(self, duty):
        """What the EV draws: nothing unless it asks (C/D) and the pilot offers current."""
        if self.state != "C" and self.state != "D":
            return 0
        offered = self.offered_ma(duty)
        return offered if offered < self.max_ma else self.max_ma


class SimPilot:
    """The charger's pilot PWM output and pilot ADC in one object, wired to an SimEV.
    Pass it as both the pwm and the adc of drivers.pilot.Pilot."""

    def __init__(self, ev=None):
        self.ev = ev if ev is not None else SimEV()
        self._duty = 1000
        self._forced = None
        self.high_mv = 0
        self.low_mv = 0
        self.reads = 0

    def set_duty(self, permille):
        if permille < 0 or permille > 1000:
            raise SimError("duty %r outside 0..1000 per mille" % (permille,))
        self._duty = permille

    def duty(self):
        return self._duty

    def force_mv(self, high=None, low=None):
        """Override the levels read (band-edge tests); force_mv() returns to the EV model."""
        self._forced = None if high is None else (high, high if low is None else low)

    def measure(self):
        self.reads += 1
        if self._forced is not None:
            self.high_mv, self.low_mv = self._forced
        else:
            self.high_mv = self.ev.high_mv(self._duty)
            self.low_mv = self.ev.low_mv(self._duty)


class _RcdFaultOut:
    def __init__(self, rcd):
        self._rcd = rcd

    def value(self):
        return 1 if self._rcd.signalling() else 0


class SimRcd:
    """An RDC-DD module (IEC 62955): fault_out (input pin, 1 = fault) trips at 6 mA DC of
    residual current or while its test input (test, an output pin) is driven.
    leak_ua: residual DC in microamps; fault: None, "no_trip" (dead module) or "stuck"."""

    TRIP_UA = 6000

    def __init__(self):
        self.leak_ua = 0
        self.fault = None
        self.test = SimOutputPin()
        self.fault_out = _RcdFaultOut(self)

    def signalling(self):
        if self.fault == "stuck":
            return True
        if self.fault == "no_trip":
            return False
        return self.leak_ua >= self.TRIP_UA or self.test.value() == 1


class SimWatchdog:
    """Counts feeds; expired() tells whether a real watchdog would have reset the board."""

    def __init__(self, clock, timeout_ms=10000):
        self._clock = clock
        self.timeout_ms = timeout_ms
        self.feeds = 0
        self._last = clock.ticks_ms()

    def feed(self):
        self.feeds += 1
        self._last = self._clock.ticks_ms()

    def expired(self):
        return self._clock.ticks_diff(self._clock.ticks_ms(), self._last) > self.timeout_ms


def urandom(n):
    """The RNG interface (os.urandom on every target)."""
    import os
    return os.urandom(n)
