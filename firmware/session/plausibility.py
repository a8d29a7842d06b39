# Meter plausibility during a session: is a new reading of the total import register one the
# charger may bill? The register may not go backwards, and may not gain more than the rated
# power allows in the elapsed time; a meter that stops answering is a fault after a bounded
# number of reads. Energy is integer Wh, time integer seconds.
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
