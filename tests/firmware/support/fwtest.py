# Small helpers for firmware tests, usable under both CPython and MicroPython.


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised none."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def is_micropython():
    import sys
    return sys.implementation.name == "micropython"


def allocated(fn):
    """Bytes fn() leaves allocated with the collector off (MicroPython), or None on CPython."""
    import gc
    if not hasattr(gc, "mem_alloc"):
        fn()
        return None
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn()
        return gc.mem_alloc() - before
    finally:
        gc.enable()
