# The clock interface, and the one definition of the host's real ticks.
#
# Every clock the firmware is given (hal/sim.py's SimClock, hal/esp32.py's Clock, RealClock
# here) provides:
#   time() -> int Unix seconds; status() -> "S" synchronised / "U" unknown (OCMF TM)
#   ticks_ms(); ticks_add(t, ms); ticks_diff(a, b) -> a - b, wrap-safe; sleep_ms(ms)
# and the real-time ones (RealClock, the ESP32's) also ticks_us() and sleep_us(us), which the
# Modbus master needs for its inter-frame gap.
#
# MicroPython's ticks wrap at a power of two (2**30 on the ports that matter); on CPython the
# ticks here wrap the same way, so code that subtracts ticks instead of using ticks_diff fails
# on the host as it would on the board.
import time as _t

TICKS_PERIOD = 1 << 30
_TICKS_HALF = TICKS_PERIOD >> 1
_TICKS_MASK = TICKS_PERIOD - 1

if hasattr(_t, "ticks_ms"):                 # MicroPython: the port's own
    ticks_ms = _t.ticks_ms
    ticks_us = _t.ticks_us
    ticks_add = _t.ticks_add
    ticks_diff = _t.ticks_diff
    sleep_ms = _t.sleep_ms
    sleep_us = _t.sleep_us
else:                                       # CPython
    def ticks_ms():
        return int(_t.monotonic() * 1000) & _TICKS_MASK

    def ticks_us():
        return int(_t.perf_counter() * 1000000) & _TICKS_MASK

    def ticks_add(ticks, delta):
        return (ticks + delta) & _TICKS_MASK

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF

    def sleep_ms(ms):
        _t.sleep(ms / 1000)

    def sleep_us(us):
        _t.sleep(us / 1000000)


class RealClock:
    """The host's own clock behind the clock interface (CPython or the MicroPython unix port),
    for runs against real time (fleet simulator in real time, benches, the bus and the net)."""

    def __init__(self, status="S"):
        self._status = status

    def time(self):
        return int(_t.time())

    def status(self):
        return self._status

    def ticks_ms(self):
        return ticks_ms()

    def ticks_us(self):
        return ticks_us()

    def ticks_add(self, ticks, delta):
        return ticks_add(ticks, delta)

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)

    def sleep_ms(self, ms):
        sleep_ms(ms)

    def sleep_us(self, us):
        sleep_us(us)


# The real ticks as a clock object, for the parts that wait on real devices (the Modbus bus, a
# socket) when their owner passes no clock of its own.
REAL = RealClock()
