"""hal/esp32_uart.py on the host: a stand-in `machine` whose UART is a real pty to the pymodbus
meter (host_tools/sim/meter.py), so the ESP32 UART code drives real RTU frames, and whose Pin
records the RS-485 direction line, so the DE/RE sequence can be checked against every write.

The stand-in accepts only the MicroPython ESP32 port's documented signatures:
machine.UART(id, baudrate, bits, parity, stop, *, tx, rx, rxbuf, timeout, timeout_char, ...),
UART.any(), UART.readinto(buf[, nbytes]) (None when nothing was read), UART.flush(),
machine.Pin(id, mode, pull=None, *, value).
"""
import fcntl
import importlib
import os
import struct
import sys
import termios
import time
import types
import tty

import pytest

from drivers.meter import Meter
from drivers.modbus import ModbusRTU
from hal.meterctl import MeterControl

LOG = []
LEVELS = {}


class _Pin:
    OUT, IN = 1, 0

    def __init__(self, gpio, mode=-1, pull=None, *, value=None):
        self.gpio = gpio
        if value is not None:
            LEVELS[gpio] = value
        LOG.append(("pin", gpio, value))

    def value(self, v=None):
        if v is None:
            return LEVELS.get(self.gpio, 0)
        LEVELS[self.gpio] = v
        LOG.append(("de", v))


class _UART:
    path = None
    de = None

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 rxbuf=256, txbuf=256, timeout=0, timeout_char=0, invert=0, flow=0):
        assert id in (1, 2) and bits == 8 and parity in (None, 0, 1) and stop in (1, 2)
        self.fd = os.open(_UART.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.config = dict(baudrate=baudrate, parity=parity, stop=stop, tx=tx, rx=rx,
                           timeout=timeout)
        LOG.append(("uart", id))

    def fileno(self):                      # what select.poll needs on CPython
        return self.fd

    def write(self, buf):
        # A frame may only go out while the transceiver drives the bus.
        assert _UART.de is None or LEVELS.get(_UART.de) == 1, "write with DE low"
        LOG.append(("write", len(buf)))
        return os.write(self.fd, bytes(buf))

    def flush(self):
        LOG.append(("flush",))

    def any(self):
        return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else nbytes
        try:
            data = os.read(self.fd, n)
        except BlockingIOError:
            return None
        buf[:len(data)] = data
        return len(data) or None

    def deinit(self):
        os.close(self.fd)


@pytest.fixture
def esp32_uart(monkeypatch, meter_sim):
    m = types.ModuleType("machine")
    m.Pin, m.UART = _Pin, _UART
    _UART.path = meter_sim["port"]
    LOG.clear()
    LEVELS.clear()
    monkeypatch.setitem(sys.modules, "machine", m)
    monkeypatch.setattr(time, "sleep_us", lambda us: LOG.append(("sleep_us", us)), raising=False)
    monkeypatch.delitem(sys.modules, "hal.esp32_uart", raising=False)
    return importlib.import_module("hal.esp32_uart")


def test_meter_read_through_the_esp32_uart_with_direction_control(esp32_uart, meter_sim):
    _UART.de = 4
    uart = esp32_uart.Esp32Uart(2, tx=17, rx=16, de=4, baudrate=9600)
    assert LOG[0] == ("pin", 4, 0)          # DE low (listening) before the UART exists
    assert LOG[1] == ("uart", 2)
    ctl = MeterControl(meter_sim["control"])
    ctl.set_energy_wh(4321000)
    ctl.set_voltage_dv(2310, 2320, 2330)
    LOG.clear()
    meter = Meter(ModbusRTU(uart, timeout_ms=200, retries=0), "SDM630", 1)
    r = meter.read()
    assert r.energy_wh == 4321000 and r.voltage_dv == [2310, 2320, 2330]
    # assert DE, one write of the whole frame, wait for the driver, one character time, release
    events = [e for e in LOG if e[0] != "pin"]
    assert events == [("de", 1), ("write", 8), ("flush",), ("sleep_us", 1042), ("de", 0)]
    assert LEVELS[4] == 0
    uart.close()
    ctl.close()


def test_auto_direction_module_and_line_settings(esp32_uart, meter_sim):
    _UART.de = None
    uart = esp32_uart.Esp32Uart(1, tx=17, rx=18, de=None, baudrate=19200, parity="E")
    assert not [e for e in LOG if e[0] == "pin"]
    meter = Meter(ModbusRTU(uart, timeout_ms=200, retries=0), "SDM630", 1)
    assert meter.read().energy_wh == 1234567
    # 8E1 = 11 bits per character at 19200 baud
    assert ("sleep_us", 573) in LOG
    uart.close()
    with pytest.raises(esp32_uart.UartError):
        esp32_uart.Esp32Uart(1, tx=17, rx=18, parity="X")
    with pytest.raises(esp32_uart.UartError):
        esp32_uart.Esp32Uart(1, tx=17, rx=18, stop_bits=3)
