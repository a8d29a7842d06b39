# Meter plausibility during a session: is a new reading of the total import register one the
# charger may bill? The register may not go backwards, and may not gain more than the rated
# power allows in the elapsed time; a meter that stops answering is a fault after a bounded
# number of reads; while current flows, the register must move (a frozen register is
# "meter-stale") and gain what the meter's own power says ("meter-inconsistent"). Energy is
# integer Wh (mWh inside FlowCheck), wall time integer seconds, ticks ms.
from drivers.meter import MeterError


class MeterWatch:
    """The meter during a session: reads it, counts failed reads in a row."""

    def __init__(self, meter, config):
        self.meter = meter                # drivers.meter.Meter
        self.max_failures = config["max_meter_failures"]
        self.failures = 0
        self.power_w = 0                  # the last reading's power
        self.silent = None                # why the meter counts as silent, or None

    def read(self):
        """The total import register in Wh; raises MeterError."""
        reading = self.meter.read()
        self.power_w = reading.power_w
        return reading.energy_wh

    def poll(self):
        """The register in Wh, or None if this read failed; after max_failures failed reads
        in a row, silent says so (a fault)."""
        try:
            energy_wh = self.read()
        except MeterError as exc:
            self.failures += 1
            if self.failures >= self.max_failures:
                self.silent = "%d failed reads: %s" % (self.failures, exc)
            return None
        self.failures = 0
        self.silent = None
        return energy_wh


class Plausibility:
    def __init__(self, config):
        # Most energy the meter may count per second: rated power with 25 % headroom.
        max_w = config["rated_current_a"] * config["nominal_voltage_v"] * config["phases"]
        self.max_w = max_w + max_w // 4

    def check(self, last_wh, last_time, energy_wh, now, bound_jump=True):
        """None if energy_wh at now may follow last_wh at last_time, else (fault code, detail).
        bound_jump=False: the elapsed time is unknown (the RTC came back behind the journal),
        so only the direction is checked."""
        delta = energy_wh - last_wh
        if delta < 0:
            return "meter-backwards", "%d Wh after %d Wh" % (energy_wh, last_wh)
        elapsed = now - last_time
        if elapsed < 1:
            elapsed = 1
        # Rated power over the elapsed time, plus 10 Wh for meters that count in 10 Wh steps.
        if bound_jump and delta > self.max_w * elapsed // 3600 + 10:
            return "meter-jump", "+%d Wh in %d s" % (delta, elapsed)
        return None

    @staticmethod
    def check_begin(begin_wh, last_end_wh):
        """None if a session may begin at begin_wh after the last one ended at last_end_wh."""
        if last_end_wh is not None and begin_wh < last_end_wh:
            return "meter-backwards", "begin %d Wh < last end %d Wh" % (begin_wh, last_end_wh)
        return None


# Absolute slack of the power/energy comparison: two steps of a meter that counts in 10 Wh.
_SLACK_WH = 20


class FlowCheck:
    """While current may flow (contactor closed, EV in C/D), does the register move as the
    meter's own power reading says it should? check() takes every session reading."""

    def __init__(self, config, clock):
        self.clock = clock
        self.stale_power_w = config["meter_stale_power_w"]
        self.stale_ms = config["meter_stale_s"] * 1000
        self.window_ms = config["meter_check_window_s"] * 1000
        self.tolerance_pct = config["meter_check_tolerance_pct"]
        self.reset()

    def reset(self):
        """No flow: the next flowing reading starts afresh."""
        self._last_ms = None        # ticks of the previous flowing reading
        self._last_wh = 0
        self._last_w = 0
        self._moved_ms = 0          # ticks the register last moved (or flow began)
        self._powered_ms = None     # ticks since which power stayed above stale_power_w
        self._win_ms = 0            # ticks the comparison window began
        self._win_wh = 0            # the register then
        self._win_mwh = 0           # energy the reported power implies since then, mWh

    def check(self, energy_wh, power_w, flowing):
        """None, or the fault (code, detail) of this reading."""
        if not flowing:
            self.reset()
            return None
        clock = self.clock
        now = clock.ticks_ms()
        if self._last_ms is None:
            self._last_ms = self._moved_ms = self._win_ms = now
            self._last_wh = self._win_wh = energy_wh
            self._last_w = power_w
            self._win_mwh = 0
            self._powered_ms = now if power_w > self.stale_power_w else None
            return None
        dt = clock.ticks_diff(now, self._last_ms)
        self._win_mwh += (self._last_w + power_w) * dt // 7200     # mean W x ms -> mWh
        self._last_ms = now
        self._last_w = power_w
        if energy_wh != self._last_wh:
            self._last_wh = energy_wh
            self._moved_ms = now
        if power_w <= self.stale_power_w:
            self._powered_ms = None
        elif self._powered_ms is None:
            self._powered_ms = now
        bad = self._stale(now, energy_wh, power_w)
        if bad is None and clock.ticks_diff(now, self._win_ms) >= self.window_ms:
            bad = self._window(now, energy_wh)
        return bad

    def _stale(self, now, energy_wh, power_w):
        if self._powered_ms is None:
            return None
        clock = self.clock
        since = self._moved_ms
        if clock.ticks_diff(self._powered_ms, since) > 0:
            since = self._powered_ms
        frozen = clock.ticks_diff(now, since)
        if frozen < self.stale_ms:
            return None
        return "meter-stale", "register at %d Wh for %d s while the meter reports %d W" % (
            energy_wh, frozen // 1000, power_w)

    def _window(self, now, energy_wh):
        gained = energy_wh - self._win_wh
        implied = self._win_mwh // 1000
        secs = self.clock.ticks_diff(now, self._win_ms) // 1000
        self._win_ms = now
        self._win_wh = energy_wh
        self._win_mwh = 0
        larger = gained if gained > implied else implied
        diff = gained - implied if gained > implied else implied - gained
        if diff <= _SLACK_WH + larger * self.tolerance_pct // 100:
            return None
        return "meter-inconsistent", "+%d Wh on the register, %d Wh from its power in %d s" % (
            gained, implied, secs)
