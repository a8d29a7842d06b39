# gcsplit (firmware/cmod/gcsplit/gcsplit.c), the firmware image's C module that has the
# collector call the safety watch between its mark and its sweep. Only builds that carry it
# (the frozen and plain 32-bit builds, the board's image) run these; elsewhere they pass
# without it, as app/safety.py does.
import gc

from support.fwtest import raises


def _gcsplit():
    try:
        import gcsplit
    except ImportError:
        return None
    return gcsplit


def test_the_callback_runs_once_inside_the_next_collection_with_the_heap_locked():
    split = _gcsplit()
    if split is None:
        return
    seen = [0, None]                        # calls, what an allocation did in there

    def callback():
        seen[0] += 1
        try:
            bytearray(64)
            seen[1] = "allocated"
        except MemoryError:
            seen[1] = "locked"
    fired = split.fired()
    split.arm(callback)
    assert seen[0] == 0                     # not before a collection
    gc.collect()
    assert seen == [1, "locked"], seen      # inside it: the heap is locked
    assert split.fired() == fired + 1
    gc.collect()
    assert seen[0] == 1                     # once: the sentinel is gone with that collection


def test_a_callback_that_raises_is_swallowed_and_counted():
    split = _gcsplit()
    if split is None:
        return
    failures = split.failures()

    def callback():
        raise ValueError("from inside a collection")
    split.arm(callback)
    gc.collect()                            # the collection itself goes on
    assert split.failures() == failures + 1
    assert raises(TypeError, split.arm, 42)


def _armed_with_a_callback_only_the_module_holds(box):
    """Arm a callback that nothing else refers to, which stores an object it alone reaches
    into box (live) when it runs."""
    split = _gcsplit()
    kept = bytearray(b"\x55" * 48)

    def callback():
        box[0] = kept
    split.arm(callback)


def test_what_the_callback_stores_stays_alive():
    # The module holds the callback in a root pointer, so the callback and what it reaches are
    # marked: an object it stores into a live one while the collection runs is not freed by
    # that collection's sweep (if it were, the memory below would be handed out again).
    if _gcsplit() is None:
        return
    box = [None]
    _armed_with_a_callback_only_the_module_holds(box)
    gc.collect()
    reuse = [bytearray(b"\xaa" * 48) for _ in range(200)]   # whatever was freed, reused
    assert box[0] == bytearray(b"\x55" * 48) and len(reuse) == 200


def test_the_image_hooks_the_collectors_loops():
    # The 32-bit builds give py/gc.c gcsplit_hook.h (host_tools/devtools/mp32.py): without it
    # there would be no slices, and a collection's marking would be one gap again.
    split = _gcsplit()
    if split is None:
        return
    assert split.hooked()


def _live_heap():
    """Enough live objects that marking them takes many ticks of the hook."""
    return [[i, bytearray(8)] for i in range(600)]


def test_slices_call_back_all_through_a_collection_with_the_heap_locked():
    split = _gcsplit()
    if split is None:
        return
    live = _live_heap()
    seen = [0, 0]                           # calls, calls in which an allocation failed

    def callback():
        seen[0] += 1
        try:
            bytearray(64)
        except MemoryError:
            seen[1] += 1
    sliced = split.sliced()
    split.slices(callback, 1)               # every tick at least 1 us after the last call
    try:
        gc.collect()
        calls = seen[0]
        assert calls >= 2 and seen[1] == calls, (seen, len(live))
        assert split.sliced() == sliced + calls
    finally:
        split.slices(None, 0)
    gc.collect()
    assert seen[0] == calls                 # off: no more calls


def test_slices_refuse_a_bad_period_or_callback_and_swallow_a_raise():
    split = _gcsplit()
    if split is None:
        return
    assert raises(ValueError, split.slices, len, -1)
    assert raises(TypeError, split.slices, 42, 10)
    live = _live_heap()
    failures = split.failures()

    def callback():
        raise ValueError("from inside a marking")
    split.slices(callback, 1)
    try:
        gc.collect()                        # the collection goes on
        assert split.failures() > failures and len(live) == 600
    finally:
        split.slices(None, 0)


def _sliced_with_a_callback_only_the_module_holds(box):
    split = _gcsplit()
    kept = bytearray(b"\x55" * 48)

    def callback():
        box[0] = kept
    split.slices(callback, 1)


def test_what_a_slice_stores_stays_alive():
    # A slice may come before the objects it reaches are marked: storing one it reaches into
    # another (a copy: it stays where it was too) must not lose it.
    split = _gcsplit()
    if split is None:
        return
    box = [None]
    live = _live_heap()
    _sliced_with_a_callback_only_the_module_holds(box)
    try:
        gc.collect()
    finally:
        split.slices(None, 0)
    reuse = [bytearray(b"\xaa" * 48) for _ in range(200)]
    assert box[0] == bytearray(b"\x55" * 48) and len(reuse) == 200 and len(live) == 600
