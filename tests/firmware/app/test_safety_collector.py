# The safety watch runs the collector between two polls, by the bytes the signer and verifier
# leave allocated (app/safety.py, docs/firmware.md "Safety loop"): the heap's own threshold must
# never fire between two hook calls of a verification or a signature, and the watch collects
# far less often than once every four calls (the fixed cadence it replaced). Counted, never
# timed. MicroPython only for the collector (CPython keeps its own); runs on both interpreters.
import gc
from hashlib import sha256

import app.safety as safety_mod
from app.charger_app import ChargerApp
from app.safety import SafetyWatch
from ledger import p256
from support.fwtest import allocated

D = 0x2B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFE


def _built():
    """The collector set as the app leaves it once the charger is built."""
    gc_bytes, call_bytes = ChargerApp._collector()
    ChargerApp._collector(gc_bytes)
    return gc_bytes, call_bytes


def _run(fn):
    """fn() with the app's watch.heavy as the signer's hook; returns (watch, hook calls,
    collections the heap made by itself between two hook calls)."""
    polls = []
    watch = SafetyWatch(lambda: polls.append(1), 0, *_built())
    state = [0, 0, 0]                       # heap after the last hook, hook calls, stray GCs

    def hook():
        now = gc.mem_alloc()
        if now < state[0] - 2048:           # allocated bytes fell: a collection ran in there
            state[2] += 1
        state[1] += 1
        watch.heavy()
        state[0] = gc.mem_alloc()
    gc.collect()
    state[0] = gc.mem_alloc()
    prev = p256.set_idle(hook)
    try:
        fn()
    finally:
        p256.set_idle(prev)
    return watch, state[1], state[2], len(polls)


def test_the_signer_collects_by_bytes_between_two_hook_calls():
    if not hasattr(gc, "threshold"):
        return                              # CPython: its own collector
    pub = p256.public_key(D)
    dig = sha256(b"collector").digest()
    r, s = p256.sign_digest(D, dig)
    try:
        for fn in (lambda: p256.sign_digest(D, dig, 0x1234567),
                   lambda: p256.verify_digest(pub, dig, r, s)):
            watch, calls, stray, polls = _run(fn)
            assert stray == 0, (stray, calls)               # never inside a field operation
            assert polls >= calls                           # the watch polled at every call
            assert watch.collects >= 1
            # Fewer than the old cadence (a collection every 4 calls), and the heap looked at
            # (a walk of its allocation table) no more often than every other call.
            assert watch.collects * 5 <= calls, (watch.collects, calls)
            assert watch.looks * 2 <= calls, (watch.looks, calls)
    finally:
        gc.threshold(-1)


class _Heap:
    """The gc module as app/safety.py sees it, with every call put in order into a log beside
    the watch's polls (the real collector still runs)."""

    def __init__(self, log):
        self.log = log

    def collect(self):
        self.log.append("collect")
        gc.collect()

    def mem_alloc(self):
        self.log.append("look")
        return gc.mem_alloc()

    def mem_free(self):
        return gc.mem_free()

    def threshold(self, *a):
        return gc.threshold(*a)


def _logged_watch(log):
    """A watch as the app leaves it, its gc calls put into log beside its polls; returns
    (watch, undo)."""
    watch = SafetyWatch(lambda: log.append("poll"), 0, *_built())
    real = safety_mod.gc
    safety_mod.gc = _Heap(log)

    def undo():
        safety_mod.gc = real
        gc.threshold(-1)
    return watch, undo


def test_a_collection_and_each_look_at_the_heap_are_gaps_of_their_own():
    # gc.collect and gc.mem_alloc (a walk of the allocation table: a fifth of a collection)
    # must never share a gap between two polls, nor a look share one with the signer's next
    # step: the watch polls between them.
    if not hasattr(gc, "threshold"):
        return                              # CPython: its own collector
    log = []
    watch, undo = _logged_watch(log)
    try:
        watch.collect()
        # With gcsplit (the firmware image's C module) the collector polls once more between
        # its mark and its sweep (tests/firmware/app/test_safety_loop.py).
        mid = ["poll"] if safety_mod._gcsplit is not None else []
        assert log[-5 - len(mid):] == ["poll", "collect"] + mid + ["poll", "look", "poll"], log
        del log[:]
        watch._budget = 0                   # the signer's budget spent: the next call looks
        watch._high = True
        watch.heavy()
        assert "look" in log and log[-1] == "poll", log
        watch._high = False
        del log[:]
        watch.tidy()                        # the end of a pass: a look, then a poll
        assert log.index("look") < len(log) - 1 and log[-1] == "poll", log
    finally:
        undo()


def _wide(a, b, c, d, e, f, g, h, i, j, k, m):
    # More than 11 words of state: MicroPython allocates this call's frame on the heap and
    # frees it at the return (py/objfun.c, VM_MAX_STATE_ON_STACK).
    return a + b + c + d + e + f + g + h + i + j + k + m


def test_churn_freed_at_once_never_brings_the_collector_on():
    # Once the charger is built, only the watch collects (between two polls) or a full heap:
    # ~400 KB of call frames, each freed at its return, must not fire a collection in the
    # middle of the work. The heap's threshold counted them, and collected anywhere.
    if not hasattr(gc, "threshold"):
        return                              # CPython: its own collector
    try:
        _built()
        garbage = bytearray(4096)           # freed only by a collection
        garbage = None
        before = gc.mem_alloc()
        total = 0
        for n in range(5000):
            total += _wide(n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
        assert total > 0 and garbage is None
        assert gc.mem_alloc() >= before - 1024, (before, gc.mem_alloc())
    finally:
        gc.threshold(-1)


def test_the_operator_key_is_checked_with_a_comb_built_once_under_the_watch(operator_commands):
    # A command's signature is checked with the operator key's own comb (uplink.commands,
    # OPERATOR_TEETH), made once when the charger is built: a verification then does far
    # fewer field operations (hook calls), so the watch collects far less often, than the
    # general verify_digest it replaced. Building the comb calls the hook all along too.
    from uplink import commands
    pub = commands.load_operator_key(operator_commands["operator_spki"])
    built = []
    key = commands.operator_verifier(operator_commands["operator_spki"],
                                     idle=lambda: built.append(1))
    assert key.pub == pub and commands.operator_verifier(key) is key
    assert len(built) > 200                          # every doubling and addition of the build
    dig = sha256(b"operator").digest()
    r, s = 1 + dig[0], 2 + dig[1]                    # any (r, s): a wrong one costs the same
    hooks = {}
    counted = []

    def count():
        counted.append(1)
    for name, fn in (("comb", lambda: key.verify(dig, r, s)),
                     ("general", lambda: p256.verify_digest(pub, dig, r, s))):
        if hasattr(gc, "threshold"):                 # MicroPython: the app's collector
            try:
                watch, calls, stray, _ = _run(fn)
            finally:
                gc.threshold(-1)
            assert stray == 0
            hooks[name] = (calls, watch.collects)
        else:
            del counted[:]
            prev = p256.set_idle(count)
            try:
                fn()
            finally:
                p256.set_idle(prev)
            hooks[name] = (len(counted), 0)
    assert hooks["comb"][0] * 2 < hooks["general"][0], hooks
    assert hooks["comb"][1] * 2 <= hooks["general"][1] + 1, hooks


def test_an_index_gather_leaves_no_big_integer_garbage():
    # The comb's indices are read from the scalar's bytes (ledger/p256.py): a lane trick with
    # big integers left 7 KB of garbage per signature on 32 bits.
    k = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF
    p256._G.indices(k)                                 # warm
    used = allocated(lambda: p256._G.indices(k))
    assert used is None or used <= 512, used          # None: CPython


def test_a_look_collects_only_when_not_one_more_call_fits_below_the_limit():
    # The limit is soft (half the free heap lies above it): a look that finds room for one
    # more field operation lets it run instead of collecting early. With a margin of 4 KB
    # and two calls, a verification collected every ~10 KB of a 19 KB room.
    if not hasattr(gc, "threshold"):
        return                              # CPython: its own collector
    log = []
    watch, undo = _logged_watch(log)
    try:
        for room_calls, collects in ((1.5, False), (0.5, True)):
            watch.collect()
            del log[:]
            watch._limit = gc.mem_alloc() + int(room_calls * watch.call_bytes)
            watch._budget = 0
            watch._high = True
            watch.heavy()
            assert ("collect" in log) == collects, (room_calls, log)
            watch._high = False
    finally:
        undo()


def test_a_heap_too_full_for_the_sentinel_collects_whole():
    # gcsplit's sentinel is 16 bytes: if even that cannot be had, the watch collects anyway
    # (one gap, as without the module) and tries again at the next collection.
    real = safety_mod._gcsplit
    if real is None:
        return                              # CPython, a stock image: no sentinel to arm
    polls = [0]                             # counted in place: a poll in a collection allocates nothing

    def poll():
        polls[0] += 1

    class FullHeap:                         # gcsplit, but no 16 bytes for a sentinel
        hooked = real.hooked
        slices = real.slices

        @staticmethod
        def arm(cb):
            raise MemoryError("no 16 bytes")
    safety_mod._gcsplit = FullHeap
    try:
        watch = SafetyWatch(poll, 0, *_built())
        assert not watch._armed
        watch.collect()
        assert watch.collects == 1 and watch.splits == 0
        whole = polls[0]                    # before, after, after the look at the heap
        safety_mod._gcsplit = real
        watch.collect()                     # armed before this one, and split
        assert watch.splits == 1 and polls[0] == 2 * whole + 1, (whole, polls, watch.splits)
    finally:
        safety_mod._gcsplit = real
        gc.threshold(-1)
