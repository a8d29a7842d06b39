# Runs one firmware test function inside MicroPython:
#   mp_run.py <module> <function> <json kwargs, or - to read them on stdin> <data heap bytes>
# Prints MP-TEST-PASSED on success; on failure prints the traceback and exits 1.
#
# The heap: on the ESP32 the firmware is frozen into the image, so its bytecode stays in flash
# and the whole heap is left for data. On the 32-bit build with the firmware frozen in
# (host_tools/devtools/mp32.py) that is so here too: <data heap bytes> is 0 and the test runs
# with whatever `-X heapsize` gives. On the 64-bit port the firmware's .mpy code is loaded into
# the heap, so the process starts with room for the code, imports the test module (and the
# firmware it uses), then fills everything but <data heap bytes> with ballast.
import gc
import sys
import json


def _ballast(budget):
    """Hold all but budget bytes of the free heap. The pieces are chained in small tuples (a
    growing list would itself need ever larger blocks), and shrink to fill the last holes."""
    gc.collect()
    chain = None
    chunk = 1 << 16
    while gc.mem_free() > budget + 64 and chunk >= 16:
        want = gc.mem_free() - budget
        try:
            chain = (bytearray(want if want < chunk else chunk), chain)
        except MemoryError:
            chunk >>= 1
    gc.collect()
    return chain


def main():
    # MicroPython puts this script's folder first on the path: drop it, so the test modules
    # come from their .mpy build like the firmware (MICROPYPATH).
    sys.path.pop(0)
    module_name, func_name, kwargs_json = sys.argv[1], sys.argv[2], sys.argv[3]
    if kwargs_json == "-":          # long arguments come on stdin (see host_tools/devtools/mprun.py)
        kwargs_json = sys.stdin.read()
    budget = int(sys.argv[4])
    gc.collect()
    before = gc.mem_alloc()
    module = __import__(module_name)
    for part in module_name.split(".")[1:]:      # a dotted name: support.lfs_scenarios
        module = getattr(module, part)
    func = getattr(module, func_name)
    kwargs = json.loads(kwargs_json)
    gc.collect()
    code_bytes = gc.mem_alloc() - before
    ballast = _ballast(budget) if budget else None
    free = gc.mem_free()
    print("MP-HEAP code=%d free=%d" % (code_bytes, free))
    if budget and not budget - 2048 <= free <= budget + 2048:
        print("heap budget not met: %d bytes free, wanted %d (code room too small?)" % (free, budget))
        sys.exit(2)
    try:
        func(**kwargs)
    except BaseException as exc:  # report every failure, assertion or crash, then fail
        sys.print_exception(exc)
        sys.exit(1)
    print("MP-TEST-PASSED")
    return ballast


main()
