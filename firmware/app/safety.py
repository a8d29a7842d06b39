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
#   watch.phase                           the main loop's phase now running (a constant str:
#                                         setting it allocates nothing); the bench and a debug
#                                         run file each long gap under the phase it ended in
#
# The collector runs between two polls too (a collection cannot be split, so its pause must
# be a gap of its own, never added to a long operation's): collect() polls, collects, polls.
# The signer and verifier allocate a big integer per field operation (31-bit small ints on the
# ESP32): their hook is watch.heavy, which collects every gc_calls calls, sooner than the
# heap's own threshold would fire inside a field operation; tidy(), at the end of each main
# loop pass, collects when the pass left more than tidy_bytes of garbage.
import gc

from hal.clock import ticks_diff, ticks_us


class SafetyWatch:
    def __init__(self, poll, every_us=10000, gc_calls=0, tidy_bytes=0):
        self.poll = poll
        self.every_us = every_us
        self.polls = 0
        self.max_gap_us = 0
        self._last = ticks_us()
        self._busy = False
        self.phase = "boot"
        self.gc_calls = gc_calls        # heavy(): a collection every gc_calls calls (0: never)
        self.tidy_bytes = tidy_bytes    # tidy(): a collection past this much garbage (0: never)
        self.collects = 0               # collections made here
        self._calls = 0
        self._free = gc.mem_free() if hasattr(gc, "mem_free") else 0
        self.heavy = self._heavy        # one bound method, made once (a hook allocates nothing)

    def _heavy(self):
        self()
        n = self._calls + 1
        if n >= self.gc_calls > 0:
            self.collect()
        else:
            self._calls = n

    def collect(self):
        """A collection between two polls: its pause is a gap of its own."""
        self.force()
        gc.collect()
        self.collects += 1
        self._calls = 0
        if self.tidy_bytes:
            self._free = gc.mem_free()
        self.force()

    def tidy(self):
        """At a quiet point (the end of a loop pass): collect if more than tidy_bytes were
        allocated since the last collection, before the heap's threshold fires mid-operation."""
        if self.tidy_bytes and self._free - gc.mem_free() > self.tidy_bytes:
            self.collect()

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
