"""Bench rows for the Modbus RTU master and the meter driver.

modbus_poll_ms              median of one full Meter.read() of an SDM630 (one 74-register
                            transaction) on the MicroPython unix port, against the pymodbus meter
                            over a pty, the master set for 9600 baud. Reads are 5 ms apart, past
                            the t3.5 gap (4.0 ms), as polls once a second are. A pty has no line
                            speed: on a real bus add the wire time, (8 + 153 bytes) x 11 bits /
                            9600 = 184 ms for this read, and the meter's turnaround.
modbus_poll_ms_b23          the same for an ABB B23 (two transactions)
modbus_poll_ms_cpython      the SDM630 read under CPython
modbus_poll_alloc_bytes     heap bytes one SDM630 read allocates on MicroPython (gc.mem_alloc)
modbus_crc_us_256           MicroPython CRC-16 over a 256-byte frame, microseconds
modbus_driver_heap_bytes    MicroPython heap held after importing the serial hal, the master,
                            the maps and the meter from .py and building one Meter (64-bit
                            objects: roughly 1.5-2x an ESP32's; less again as frozen .mpy)
"""
import json
import os
import statistics
import subprocess
import sys
import time

from host_tools import paths
from host_tools.paths import ROOT
MICROPYTHON = paths.MICROPYTHON
BAUD = 9600
READS = 200

_SCRIPT = r"""
import sys, time, gc
gc.collect()
heap0 = gc.mem_alloc()
from hal.serial_posix import SerialPort
from drivers.modbus import ModbusRTU, crc16
from drivers.meter import Meter
port = SerialPort(sys.argv[1], int(sys.argv[2]))
meter = Meter(ModbusRTU(port), sys.argv[3], 1)
gc.collect()
heap = gc.mem_alloc() - heap0
n = int(sys.argv[4])
meter.read()
ts = []
for i in range(n):
    time.sleep_ms(5)          # polls are far apart in use: the t3.5 gap has long passed
    t = time.ticks_us()
    meter.read()
    ts.append(time.ticks_diff(time.ticks_us(), t))
ts.sort()
def allocated():
    # locals only: a new global would grow the module dict inside the measurement
    time.sleep_ms(5)
    gc.collect()
    before = gc.mem_alloc()
    meter.read()
    return gc.mem_alloc() - before
alloc = max(allocated() for i in range(10))
buf = bytearray(256)
t = time.ticks_us()
for i in range(20):
    crc16(buf)
crc_us = time.ticks_diff(time.ticks_us(), t) / 20
print("RESULT %d %d %d %d" % (ts[n // 2], alloc, crc_us, heap))
"""


def _start_sim(model):
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.sim.meter", "--model", model,
                             "--baud", str(BAUD)], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    return proc, json.loads(proc.stdout.readline())


def _stop(proc):
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def _micropython(info, model):
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=196608", "-c", _SCRIPT, info["port"],
                          str(BAUD), model, str(READS)],
                         env=env, capture_output=True, text=True, timeout=300)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        raise RuntimeError("MicroPython bench failed: %s" % out.stderr[-2000:])
    median_us, alloc, crc_us, heap = (int(x) for x in line[0].split()[1:])
    return median_us / 1000, alloc, crc_us, heap


def _cpython(info, model):
    from host_tools.paths import firmware_on_path
    firmware_on_path()
    from hal.serial_posix import SerialPort
    from drivers.modbus import ModbusRTU
    from drivers.meter import Meter
    port = SerialPort(info["port"], BAUD)
    try:
        meter = Meter(ModbusRTU(port), model, 1)
        meter.read()
        ts = []
        for _ in range(READS):
            time.sleep(0.005)
            t = time.perf_counter()
            meter.read()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1000
    finally:
        port.close()


def run():
    rows = {}
    proc, info = _start_sim("SDM630")
    try:
        ms, alloc, crc_us, heap = _micropython(info, "SDM630")
        rows["modbus_driver_heap_bytes"] = heap
        rows["modbus_poll_ms"] = round(ms, 3)
        rows["modbus_poll_alloc_bytes"] = alloc
        rows["modbus_crc_us_256"] = crc_us
        rows["modbus_poll_ms_cpython"] = round(_cpython(info, "SDM630"), 3)
    finally:
        _stop(proc)
    proc, info = _start_sim("B23")
    try:
        rows["modbus_poll_ms_b23"] = round(_micropython(info, "B23")[0], 3)
    finally:
        _stop(proc)
    return rows


if __name__ == "__main__":
    print(run())
