# Runs one firmware test function inside MicroPython:
#   mp_run.py <module> <function> <json kwargs, or - to read them on stdin> <data heap bytes>
# Prints MP-TEST-PASSED on success; on failure prints the traceback and exits 1.
#
# The heap: on the ESP32 the firmware is frozen into the image, so its bytecode stays in flash
# and the whole heap is left for data. The unix port cannot freeze, so it loads the .mpy code
# into the heap. To give the test exactly what the board leaves, the process starts with room
# for the code, imports the test module (and the firmware it uses), then fills everything but
# <data heap bytes> with ballast: the test runs with that much free heap and no more.
import gc
import sys
import json


def _ballast(budget):
    gc.collect()
    blocks = []
    chunk = 1 << 16
    while gc.mem_free() > budget + 64 and chunk >= 64:
        want = gc.mem_free() - budget
        try:
            blocks.append(bytearray(want if want < chunk else chunk))
        except MemoryError:
            chunk >>= 1
    gc.collect()
    return blocks


def main():
    module_name, func_name, kwargs_json = sys.argv[1], sys.argv[2], sys.argv[3]
    if kwargs_json == "-":          # long arguments come on stdin (see host_tools/mprun.py)
        kwargs_json = sys.stdin.read()
    budget = int(sys.argv[4])
    gc.collect()
    before = gc.mem_alloc()
    module = __import__(module_name)
    func = getattr(module, func_name)
    kwargs = json.loads(kwargs_json)
    gc.collect()
    code_bytes = gc.mem_alloc() - before
    ballast = _ballast(budget)
    print("MP-HEAP code=%d free=%d" % (code_bytes, gc.mem_free()))
    try:
        func(**kwargs)
    except BaseException as exc:  # report every failure, assertion or crash, then fail
        sys.print_exception(exc)
        sys.exit(1)
    print("MP-TEST-PASSED")
    return ballast


main()
