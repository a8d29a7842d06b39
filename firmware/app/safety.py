# The safety watch: the one callable every long operation calls while it works (the signer
# between field operations, the MQTT socket between wait slices, the Modbus master while a
# reply is awaited, the main loop between its phases and while it sleeps). At most every
# every_us it runs the charger's safety poll: the pilot and the contactor coil, so an EV that
# stops asking for current opens the contactor within the debounce whatever else runs.
# docs/firmware.md describes the design and its figures.
#
#   watch = SafetyWatch(poll, every_us)   poll: the charger's safety_poll
#   watch()                               cheap when not due (a ticks read and a compare)
#   watch.force()                         poll now (the main loop's own passes)
#   watch.polls, watch.max_gap_us         counters: polls made, largest gap between two polls
#                                         (measured only when every_us is 0: the bench)
from hal.clock import ticks_diff, ticks_us


class SafetyWatch:
    def __init__(self, poll, every_us=10000):
        self.poll = poll
        self.every_us = every_us
        self.polls = 0
        self.max_gap_us = 0
        self._last = ticks_us()
        self._busy = False

    def __call__(self):
        now = ticks_us()
        gap = ticks_diff(now, self._last)
        if gap < self.every_us:
            return
        self._run(now, gap)

    def force(self):
        now = ticks_us()
        self._run(now, ticks_diff(now, self._last))

    def _run(self, now, gap):
        if self._busy:              # a hook called from inside the poll itself
            return
        if gap > self.max_gap_us:
            self.max_gap_us = gap
        self._busy = True
        try:
            self.polls += 1
            self.poll()
        finally:
            self._busy = False
            self._last = ticks_us()

    def reset_stats(self):
        self.max_gap_us = 0
        self._last = ticks_us()

    def mark(self):
        """Note a poll made by the caller itself (the charger's step polls pilot and coil)."""
        now = ticks_us()
        gap = ticks_diff(now, self._last)
        if gap > self.max_gap_us:
            self.max_gap_us = gap
        self.polls += 1
        self._last = now

    def resume(self):
        """Forget the time since the last poll (bench harness work that is not the charger's)."""
        self._last = ticks_us()
