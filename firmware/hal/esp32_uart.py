# UART on the ESP32 (machine.UART) for an RS-485 transceiver, with the same interface as
# hal/serial_posix.py: write(buf), readinto(buf, nbytes, timeout_ms) -> count, drain_input(),
# baudrate, close().
#
# MicroPython does not expose the ESP32 UART's hardware RS-485 direction mode, so the
# transceiver's DE and /RE (tied together) are driven from a GPIO: high to talk, low to listen.
# A frame goes out in one write, uart.flush() waits until the driver has sent it, and the line
# is held one more character time so the last stop bit is not cut off before DE drops. The
# receiver is off while we drive, so our own frame is not echoed back.
# de=None is for auto-direction transceiver modules.
import select
import time

import machine

_PARITY = {"N": None, "E": 0, "O": 1}      # machine.UART's parity argument


class UartError(Exception):
    pass


class Esp32Uart:
    def __init__(self, uart_id, tx, rx, de=None, baudrate=9600, parity="N", stop_bits=1,
                 rxbuf=512):
        if parity not in _PARITY or stop_bits not in (1, 2) or not 1200 <= baudrate <= 921600:
            raise UartError("unsupported line settings %r %r %r" % (baudrate, parity, stop_bits))
        self.baudrate = baudrate
        # Direction pin first, low, so the transceiver never drives the bus while we set up.
        self._de = None if de is None else machine.Pin(de, machine.Pin.OUT, value=0)
        # timeout=0: reads return what the driver holds; waiting is done by poll() below.
        self._uart = machine.UART(uart_id, baudrate=baudrate, bits=8, parity=_PARITY[parity],
                                  stop=stop_bits, tx=tx, rx=rx, rxbuf=rxbuf, timeout=0,
                                  timeout_char=0)
        bits = 1 + 8 + (0 if parity == "N" else 1) + stop_bits
        self._char_us = (bits * 1000000 + baudrate - 1) // baudrate
        self._poll = select.poll()
        self._poll.register(self._uart, select.POLLIN)
        self._scratch = bytearray(32)

    def write(self, buf):
        de = self._de
        if de is not None:
            de.value(1)
        try:
            n = self._uart.write(buf)
            self._uart.flush()
            time.sleep_us(self._char_us)
        finally:
            if de is not None:
                de.value(0)
        if n != len(buf):
            raise UartError("short write (%r of %d bytes)" % (n, len(buf)))

    def readinto(self, buf, nbytes, timeout_ms):
        u = self._uart
        n = u.any()
        if not n:
            if not self._poll.poll(timeout_ms):
                return 0
            n = u.any()
        if n > nbytes:
            n = nbytes
        if n <= 0:
            return 0
        return u.readinto(buf, n) or 0

    def drain_input(self):
        u = self._uart
        s = self._scratch
        n = u.any()
        while n > 0:
            u.readinto(s, n if n < len(s) else len(s))
            n = u.any()

    def close(self):
        self._uart.deinit()
        if self._de is not None:
            self._de.value(0)
