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
# The collector runs between two polls too (its pause must be a gap of its own, never added
# to a long operation's): collect() polls, collects, polls. Python cannot split a collection,
# but the firmware image's C module gcsplit (firmware/cmod/gcsplit) can, with the heap locked:
# the collector calls the watch every gc_slice_us of its work (the image's collector loops are
# hooked) and between its mark and its sweep (a finaliser: the watch keeps one sentinel armed
# for the next collection, whoever starts it). So no piece of a pause is longer than a slice.
# Without the module (CPython, a stock MicroPython image) a collection is one gap.
# Once the charger is built the heap's own threshold is off (app/charger_app.py): it counts
# every allocation, the ones freed again at once too (a call frame of more than 11 words, a
# big-int operation's temporaries), so it fired every few KB of such churn, anywhere in the
# middle of the work, with nothing left to free. The watch decides instead, by what stays
# allocated (gc.mem_alloc); a heap that is truly full still collects by itself.
# The signer and verifier allocate a big integer per field operation (31-bit small ints on the
# ESP32): their hook is watch.heavy. Its first call of an operation collects (a clean start);
# then it collects once gc_bytes (or half the heap left free after the last collection, if
# less: room for a fragmented heap's big blocks) may have been left allocated. It counts calls
# down from a budget of calls that surely fit (n calls leave at most n * call_bytes +
# _CALL_EXTRA allocated); when the budget runs out it looks at the heap (gc.mem_alloc, a walk
# of the allocation table: too dear for every call) and collects if not one more call fits
# below the limit, else sets a new budget from the room left. (The limit is soft: half the
# free heap lies above it, so the looks need no margin of their own. With one, a collection
# came every ~10 KB of a 19 KB room.) The first other call of the watch (or tidy()) ends the
# operation with a collection, so what the signer left is not counted against the next phase.
# tidy(), at the end of each main loop pass, collects when the passes since the last
# collection left more than half of gc_bytes of garbage.
import gc

from hal.clock import ticks_diff, ticks_us

try:
    import gcsplit as _gcsplit              # the firmware image's C module (firmware/cmod)
except ImportError:
    _gcsplit = None

# n heavy() calls leave at most n * call_bytes + _CALL_EXTRA bytes allocated: the extra covers
# a few calls above the average (the first field operations after a nonce or a digest).
_CALL_EXTRA = 4096


class SafetyWatch:
    def __init__(self, poll, every_us=10000, gc_bytes=0, call_bytes=0, gc_slice_us=0):
        self.poll = poll
        self.every_us = every_us
        self.polls = 0
        self.max_gap_us = 0
        self._last = ticks_us()
        self._busy = False
        self.phase = "boot"
        self.gc_bytes = gc_bytes        # collect before this much is allocated (0: never)
        self.call_bytes = call_bytes    # the most one heavy() call's work allocates
        self.tidy_bytes = gc_bytes // 2
        self.collects = 0               # collections made here
        self.looks = 0                  # heavy() calls that looked at the heap
        self._budget = 0                # heavy() calls left before the heap is looked at
        self._heap = 0
        self._base = self._limit = 0    # allocated after the last collection; collect above
        self._high = False              # inside a heavy operation (the signer's hook)
        if gc_bytes:
            self._base = gc.mem_alloc()
            self._heap = self._base + gc.mem_free()
            self._limit = self._base + gc_bytes
        self.heavy = self._heavy        # one bound method, made once (a hook allocates nothing)
        self.in_collection = False      # polling from inside a collection (the heap locked)
        self.splits = 0                 # collections that polled between mark and sweep
        self.gc_slice_us = gc_slice_us
        self.slices = 0                 # polls every gc_slice_us inside collections
        self._armed = False             # a gcsplit sentinel waits for the next collection
        self._mid = self._mid_collection
        self._arm()
        if _gcsplit is not None and _gcsplit.hooked():    # the newest watch is the one called
            _gcsplit.slices(self._slice, gc_slice_us)

    def _heavy(self):
        now = ticks_us()
        gap = ticks_diff(now, self._last)
        if gap >= self.every_us:
            self._run(now, gap)
        if self._high:
            n = self._budget - 1
            if n >= 0:
                self._budget = n
            else:
                self._look()
        elif self.gc_bytes:
            self._high = True
            self.collect()

    def _look(self):
        """Collect now, or set the budget of heavy() calls that fit below the limit. The look
        (a walk of the allocation table, ~40 us here) is a piece of work of its own: the watch
        is called after it, so it never adds to the signer's next step."""
        self.looks += 1
        n = (self._limit - gc.mem_alloc()) // self.call_bytes
        if n < 1:
            self.collect()
        else:
            self._budget = n - 1
            self._due()

    def _end_heavy(self):
        self._high = False
        self.collect()

    def collect(self):
        """A collection between two polls (and one more in its middle, with gcsplit): its
        pause is a gap of its own, and so is the look at the heap after it (gc.mem_alloc
        walks the allocation table: a fifth of a collection), which sets the next limit."""
        self._arm()                     # a collection the heap started itself took the last
        self.force()
        gc.collect()
        self.collects += 1
        self.force()
        self._arm()
        if self.gc_bytes:
            self._base = base = gc.mem_alloc()
            room = (self._heap - base) >> 1
            if room > self.gc_bytes:
                room = self.gc_bytes
            self._limit = base + room
            self._budget = (room - _CALL_EXTRA) // self.call_bytes - 1
            self._due()

    def _arm(self):
        """Leave a sentinel for the next collection (16 bytes, once per collection). A heap
        too full for it leaves the next collection whole (one gap), nothing worse."""
        if _gcsplit is not None and not self._armed:
            try:
                _gcsplit.arm(self._mid)
            except MemoryError:
                return
            self._armed = True

    def _mid_collection(self):
        """Called by the collector between its mark and its sweep: a poll, due or not (the
        sweep is still to come). Nothing may be allocated here: the poll's paths allocate
        nothing, and session.safety opens the contactor if the heap's lock stops one."""
        self._armed = False
        self.splits += 1
        self._poll_in_collection()

    def _slice(self):
        """Called by the collector every gc_slice_us of its work (gcsplit.slices)."""
        self.slices += 1
        self._poll_in_collection()

    def _poll_in_collection(self):
        self.in_collection = True
        try:
            self.force()
        finally:
            self.in_collection = False

    def tidy(self):
        """At a quiet point (the end of a loop pass): collect if more than tidy_bytes were
        left allocated since the last collection."""
        if self._high:
            self._end_heavy()
        elif self.gc_bytes:
            if gc.mem_alloc() - self._base > self.tidy_bytes:
                self.collect()
            else:
                self._due()             # the look was a piece of work of its own

    def __call__(self):
        if self._high and not self._busy:
            self._end_heavy()
        now = ticks_us()
        gap = ticks_diff(now, self._last)
        if gap < self.every_us:
            return
        self._run(now, gap)

    def _due(self):
        """Poll if due (the watch called between two pieces of its own work)."""
        now = ticks_us()
        gap = ticks_diff(now, self._last)
        if gap >= self.every_us:
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
