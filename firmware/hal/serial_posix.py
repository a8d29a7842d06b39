# UART on a POSIX tty (a pty in tests and simulation, or a USB RS-485 adapter on a host).
# Runs on the MicroPython unix port and on CPython; the ESP32 twin is hal/esp32_uart.py.
#
# Interface shared by every UART in hal/ (drivers/modbus.py relies on nothing else):
#   write(buf)                          send the whole buffer; returns when it is handed to the line
#   readinto(buf, nbytes, timeout_ms)   wait up to timeout_ms for data, then store what has
#                                       arrived (at most nbytes) at buf[0:]; return the count,
#                                       0 on timeout. Never blocks longer than timeout_ms.
#   drain_input()                       discard everything already received (stale replies)
#   baudrate                            configured line speed (the master derives t3.5 from it)
#   close()
import sys
import select
import termios

_MICROPYTHON = sys.implementation.name == "micropython"

# Linux <termios.h> values: MicroPython's termios module exports only a few of them.
_BAUD = {1200: 0o11, 2400: 0o13, 4800: 0o14, 9600: 0o15, 19200: 0o16, 38400: 0o17,
         57600: 0o10001, 115200: 0o10002, 230400: 0o10003}
# IGNBRK BRKINT PARMRK ISTRIP INLCR IGNCR ICRNL IXON IXOFF
_IFLAG_CLEAR = 0o1 | 0o2 | 0o10 | 0o40 | 0o100 | 0o200 | 0o400 | 0o2000 | 0o10000
_OFLAG_CLEAR = 0o1                                                   # OPOST
_LFLAG_CLEAR = 0o2 | 0o10 | 0o100 | 0o1 | 0o100000                   # ICANON ECHO ECHONL ISIG IEXTEN
_CFLAG_CLEAR = 0o60 | 0o400 | 0o1000 | 0o100 | 0o10017               # CSIZE PARENB PARODD CSTOPB CBAUD
_CFLAG_SET = 0o60 | 0o200 | 0o4000                                   # CS8 CREAD CLOCAL
_PARENB, _PARODD, _CSTOPB = 0o400, 0o1000, 0o100
_VTIME, _VMIN = 5, 6


class SerialError(Exception):
    pass


class SerialPort:
    """8 data bits, parity 'N'/'E'/'O', 1 or 2 stop bits, raw mode, reads never block."""

    def __init__(self, path, baudrate=9600, parity="N", stop_bits=1):
        if baudrate not in _BAUD:
            raise SerialError("unsupported baud rate %r" % (baudrate,))
        if parity not in ("N", "E", "O") or stop_bits not in (1, 2):
            raise SerialError("unsupported framing %r/%r" % (parity, stop_bits))
        try:
            self._f = open(path, "r+b") if _MICROPYTHON else open(path, "r+b", buffering=0)
        except OSError as exc:
            raise SerialError("cannot open %s: %s" % (path, exc))
        self.path = path
        self.baudrate = baudrate
        self._fd = self._f.fileno()
        attrs = termios.tcgetattr(self._fd)
        attrs[0] &= ~_IFLAG_CLEAR
        attrs[1] &= ~_OFLAG_CLEAR
        cflag = (attrs[2] & ~_CFLAG_CLEAR) | _CFLAG_SET | _BAUD[baudrate]
        if parity != "N":
            cflag |= _PARENB | (_PARODD if parity == "O" else 0)
        if stop_bits == 2:
            cflag |= _CSTOPB
        attrs[2] = cflag
        attrs[3] &= ~_LFLAG_CLEAR
        attrs[4] = attrs[5] = _BAUD[baudrate]
        # VMIN=0, VTIME=0: read() returns what is there, possibly nothing; poll() does the waiting.
        cc = attrs[6]
        cc[_VMIN] = 0
        cc[_VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(self._f if _MICROPYTHON else self._fd, select.POLLIN)
        self._scratch = bytearray(32)

    def write(self, buf):
        n = self._f.write(buf)
        if n != len(buf):
            raise SerialError("short write (%r of %d bytes)" % (n, len(buf)))

    # MicroPython: ipoll() reuses its result and readinto(buf, n) needs no slice, so a poll
    # allocates nothing; CPython has neither, and the host does not mind.
    if _MICROPYTHON:
        def _ready(self, timeout_ms):
            for _ in self._poll.ipoll(timeout_ms):
                return True
            return False

        def _read(self, buf, nbytes):
            return self._f.readinto(buf, nbytes)
    else:
        def _ready(self, timeout_ms):
            return bool(self._poll.poll(timeout_ms))

        def _read(self, buf, nbytes):
            return self._f.readinto(memoryview(buf)[:nbytes])

    def readinto(self, buf, nbytes, timeout_ms):
        if not self._ready(timeout_ms):
            return 0
        return self._read(buf, min(nbytes, len(buf))) or 0

    def drain_input(self):
        while self._ready(0):
            if not self._f.readinto(self._scratch):
                break

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
