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
