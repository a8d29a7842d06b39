# Modbus RTU master.
# Framing, CRC and timing follow "MODBUS over Serial Line, Specification and Implementation
# Guide V1.02" (modbus.org, 2006); PDUs and exception codes follow "MODBUS Application Protocol
# Specification V1.1b3" (modbus.org, 2012).
#
# The master owns one UART from hal/ (write / readinto(buf, n, timeout_ms) / drain_input /
# baudrate) and does one transaction at a time. Buffers are allocated once; a read returns a
# memoryview into the receive buffer that stays valid until the next call.

from hal import clock as _clock
from hal.compat import const

FC_READ_HOLDING = const(3)
FC_READ_INPUT = const(4)
FC_WRITE_SINGLE = const(6)
FC_WRITE_MULTIPLE = const(16)

_MAX_READ = const(125)    # registers per read (Application Protocol 6.3/6.4)
_MAX_WRITE = const(123)   # registers per write multiple (6.12)
_BUF = const(256)         # largest RTU ADU (Serial Line 2.5.1)

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


_IDLE_SLICE_MS = const(10)


class ModbusError(Exception):
    """Any failed transaction: the reply was missing, damaged or negative."""


class ModbusTimeout(ModbusError):
    """No byte arrived within the response timeout (silent or absent slave)."""


class ModbusCRCError(ModbusError):
    """A complete frame arrived but its CRC-16 does not match (line noise)."""


class ModbusFrameError(ModbusError):
    """Short, truncated or inconsistent frame (byte count, length)."""


class ModbusEchoError(ModbusError):
    """A valid frame that is not the answer to our request (other slave, other function)."""


class ModbusException(ModbusError):
    """The slave answered with an exception response; .code is the exception code."""

    def __init__(self, function, code):
        self.function = function
        self.code = code
        super().__init__("slave exception %d (%s) for function %d" % (
            code, EXCEPTION_NAMES.get(code, "unknown"), function))


class ModbusArgError(ValueError):
    """The caller asked for something the protocol cannot carry; nothing was sent."""


# CRC-16/MODBUS (Serial Line 6.2.2 and its appendix B): reflected polynomial 0xA001, initial
# value 0xFFFF, computed a byte at a time with the CRC kept as two bytes and two tables of the
# 256 byte remainders (their low bytes, their high bytes), as the appendix does: no shift or
# mask per byte, ~0.28 us a byte on the 32-bit build where one table of 16-bit entries read
# as byte pairs took ~0.58. Bytes constants, so a frozen image keeps them in flash (an array
# built at import held ~1 KB of the ESP32's heap). Made by c = i; 8 times:
# c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1 (tests/firmware/drivers check them).
_CRC_LO = (
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
)
_CRC_HI = (
    b"\x00\xc0\xc1\x01\xc3\x03\x02\xc2\xc6\x06\x07\xc7\x05\xc5\xc4\x04"
    b"\xcc\x0c\x0d\xcd\x0f\xcf\xce\x0e\x0a\xca\xcb\x0b\xc9\x09\x08\xc8"
    b"\xd8\x18\x19\xd9\x1b\xdb\xda\x1a\x1e\xde\xdf\x1f\xdd\x1d\x1c\xdc"
    b"\x14\xd4\xd5\x15\xd7\x17\x16\xd6\xd2\x12\x13\xd3\x11\xd1\xd0\x10"
    b"\xf0\x30\x31\xf1\x33\xf3\xf2\x32\x36\xf6\xf7\x37\xf5\x35\x34\xf4"
    b"\x3c\xfc\xfd\x3d\xff\x3f\x3e\xfe\xfa\x3a\x3b\xfb\x39\xf9\xf8\x38"
    b"\x28\xe8\xe9\x29\xeb\x2b\x2a\xea\xee\x2e\x2f\xef\x2d\xed\xec\x2c"
    b"\xe4\x24\x25\xe5\x27\xe7\xe6\x26\x22\xe2\xe3\x23\xe1\x21\x20\xe0"
    b"\xa0\x60\x61\xa1\x63\xa3\xa2\x62\x66\xa6\xa7\x67\xa5\x65\x64\xa4"
    b"\x6c\xac\xad\x6d\xaf\x6f\x6e\xae\xaa\x6a\x6b\xab\x69\xa9\xa8\x68"
    b"\x78\xb8\xb9\x79\xbb\x7b\x7a\xba\xbe\x7e\x7f\xbf\x7d\xbd\xbc\x7c"
    b"\xb4\x74\x75\xb5\x77\xb7\xb6\x76\x72\xb2\xb3\x73\xb1\x71\x70\xb0"
    b"\x50\x90\x91\x51\x93\x53\x52\x92\x96\x56\x57\x97\x55\x95\x94\x54"
    b"\x9c\x5c\x5d\x9d\x5f\x9f\x9e\x5e\x5a\x9a\x9b\x5b\x99\x59\x58\x98"
    b"\x88\x48\x49\x89\x4b\x8b\x8a\x4a\x4e\x8e\x8f\x4f\x8d\x4d\x4c\x8c"
    b"\x44\x84\x85\x45\x87\x47\x46\x86\x82\x42\x43\x83\x41\x81\x80\x40"
)
_CRC_PIECE = const(64)          # bytes checked between two idle() calls


def crc16(buf, n=-1, idle=None):
    """CRC-16/MODBUS of buf[:n] (all of buf when n < 0). Sent low byte first. idle, if given,
    is called after every _CRC_PIECE bytes (a 165-byte reply: ~46 us on the 32-bit build)."""
    if n < 0:
        n = len(buf)
    lo = hi = 0xFF
    tl = _CRC_LO
    th = _CRC_HI
    i = 0
    while i < n:
        end = i + _CRC_PIECE if i + _CRC_PIECE < n else n
        for k in range(i, end):
            x = lo ^ buf[k]
            lo = hi ^ tl[x]
            hi = th[x]
        i = end
        if idle is not None and i < n:
            idle()
    return lo | hi << 8


def frame_gap_us(baudrate):
    """t3.5: 3.5 character times of 11 bits, fixed at 1750 us above 19200 baud (Serial Line 2.5.1.1)."""
    if baudrate > 19200:
        return 1750
    return (3500 * 11 * 1000 + baudrate - 1) // baudrate


class ModbusRTU:
    """One RTU master on one UART.

    timeout_ms      wait for the first byte of a reply (the slave's turnaround time)
    char_timeout_ms once a reply has started, silence this long (plus the wire time of the
                    bytes still expected) ends it. Looser than t1.5 on purpose: a host pty or USB
                    adapter delivers bytes in bursts, and the ESP32's UART driver holds bytes in
                    its hardware FIFO until a threshold or an idle timeout.
    retries         extra attempts after a failed transaction (timeouts, CRC, frame and echo
                    errors, "busy" exceptions); other exception responses are final.
    clock           a real-time clock (hal/clock.py: ticks_us, ticks_diff, sleep_us) for the
                    inter-frame gap; the host's or the board's real ticks by default.
    """

    def __init__(self, port, timeout_ms=200, char_timeout_ms=20, retries=2, idle=None,
                 clock=None):
        if retries < 0 or timeout_ms <= 0 or char_timeout_ms <= 0:
            raise ModbusArgError("bad timing parameters")
        self.port = port
        self.clock = clock if clock is not None else _clock.REAL
        self.timeout_ms = timeout_ms
        self.char_timeout_ms = char_timeout_ms
        self.retries = retries
        # Called every _IDLE_SLICE_MS while a reply is awaited: a bus transaction with retries
        # can take most of a second, and the charger's safety checks must not wait for it.
        self.idle = idle
        # The slice: 10 ms on the board. Below a millisecond (the unix-port bench, where a us
        # stands for ~200 on the ESP32) the port is looked at without waiting, then slept on.
        self.idle_slice_us = _IDLE_SLICE_MS * 1000
        self.gap_us = frame_gap_us(port.baudrate)
        self.char_us = (11 * 1000000 + port.baudrate - 1) // port.baudrate   # 11-bit characters
        self._tx = bytearray(_BUF)
        self._txv = memoryview(self._tx)
        self._rx = bytearray(_BUF)
        self._rxv = memoryview(self._rx)
        # Slicing a memoryview makes a new object: the views a poll needs (the request, the
        # registers of a reply, the rest of a reply that came in pieces) are made once and
        # kept, so a meter read allocates nothing (a few per meter plan, a bounded few offsets).
        self._tx_views = {}
        self._reg_views = {}
        self._rx_views = {}
        self._last_us = self.clock.ticks_us()
        # Counters for diagnostics and tests: transactions sent (attempts), failed attempts.
        self.attempts = 0
        self.failures = 0
        self.last_error = None

    # ---- public requests ---------------------------------------------------------------
    def read_registers(self, slave, function, address, count):
        """FC 03/04: return a memoryview of 2*count big-endian register bytes."""
        if function != FC_READ_HOLDING and function != FC_READ_INPUT:
            raise ModbusArgError("read function must be 3 or 4, not %r" % (function,))
        self._check(slave, address, count, _MAX_READ)
        tx = self._tx
        tx[0] = slave
        tx[1] = function
        tx[2] = address >> 8
        tx[3] = address & 0xFF
        tx[4] = count >> 8
        tx[5] = count & 0xFF
        self._run(6, 5 + 2 * count, count)
        v = self._reg_views.get(count)
        if v is None:
            v = self._reg_views[count] = self._rxv[3:3 + 2 * count]
        return v

    def read_holding(self, slave, address, count):
        return self.read_registers(slave, FC_READ_HOLDING, address, count)

    def read_input(self, slave, address, count):
        return self.read_registers(slave, FC_READ_INPUT, address, count)

    def write_register(self, slave, address, value):
        """FC 06: write one 16-bit register; the slave echoes the request."""
        self._check(slave, address, 1, 1)
        if not 0 <= value <= 0xFFFF:
            raise ModbusArgError("register value out of range: %r" % (value,))
        tx = self._tx
        tx[0] = slave
        tx[1] = FC_WRITE_SINGLE
        tx[2] = address >> 8
        tx[3] = address & 0xFF
        tx[4] = value >> 8
        tx[5] = value & 0xFF
        self._run(6, 8, 0)

    def write_registers(self, slave, address, values):
        """FC 16: write consecutive 16-bit registers from a sequence of ints."""
        count = len(values)
        self._check(slave, address, count, _MAX_WRITE)
        for v in values:
            if not 0 <= v <= 0xFFFF:
                raise ModbusArgError("register value out of range: %r" % (v,))
        tx = self._tx
        tx[0] = slave
        tx[1] = FC_WRITE_MULTIPLE
        tx[2] = address >> 8
        tx[3] = address & 0xFF
        tx[4] = 0
        tx[5] = count
        tx[6] = 2 * count
        i = 7
        for v in values:
            tx[i] = v >> 8
            tx[i + 1] = v & 0xFF
            i += 2
        self._run(i, 8, count)

    # ---- transaction machinery -----------------------------------------------------------
    def _check(self, slave, address, count, max_count):
        # Broadcast (0) gets no reply, so it cannot carry a read; 248-255 are reserved.
        if not 1 <= slave <= 247:
            raise ModbusArgError("slave address must be 1..247, not %r" % (slave,))
        if not 1 <= count <= max_count:
            raise ModbusArgError("register count must be 1..%d, not %r" % (max_count, count))
        if not 0 <= address or address + count > 0x10000:
            raise ModbusArgError("register range out of 0..65535: %r+%r" % (address, count))

    def _run(self, req_len, reply_len, count):
        crc = crc16(self._tx, req_len)
        self._tx[req_len] = crc & 0xFF
        self._tx[req_len + 1] = crc >> 8
        req = self._tx_views.get(req_len)
        if req is None:
            req = self._tx_views[req_len] = self._txv[:req_len + 2]
        attempt = 0
        while True:
            self.attempts += 1
            try:
                self._transact(req, reply_len, count)
                return
            except ModbusError as exc:
                self.failures += 1
                self.last_error = exc
                retry = not isinstance(exc, ModbusException) or exc.code == 6
                if not retry or attempt >= self.retries:
                    raise
                attempt += 1
                self._resync()

    def _transact(self, req, reply_len, count):
        port = self.port
        if self.idle is not None:
            self.idle()             # the caller's work before this request is a piece of its own
        # The line must have been idle for t3.5 before a new frame starts.
        c = self.clock
        wait = self.gap_us - c.ticks_diff(c.ticks_us(), self._last_us)
        if wait > 0:
            self._pause(wait)
        port.drain_input()          # a late reply to an earlier request must not be taken for ours
        port.write(req)
        got = self._receive(reply_len)
        self._last_us = self.clock.ticks_us()
        self._validate(req, got, reply_len, count)

    def _receive(self, reply_len):
        """Read one reply; return the byte count. The length comes from the header as it arrives."""
        rx = self._rx
        port = self.port
        need = reply_len
        got = self._await_reply(need)
        if got == 0:
            raise ModbusTimeout("no reply within %d ms" % self.timeout_ms)
        while True:
            if got >= 2:
                if rx[1] & 0x80:
                    need = 5                 # exception reply: addr, fc|0x80, code, crc
                elif rx[1] != self._tx[1]:
                    need = _BUF              # not our function: take it all, then judge
            if got >= need:
                return got
            wait = self.char_timeout_ms + ((need - got) * self.char_us) // 1000
            if self.idle is None:
                n = port.readinto(self._rx_from(got), need - got, wait)
            else:
                n = self._read_sliced(got, need - got, wait)
            if n == 0:
                return got                   # silence: the frame ended here
            got += n

    def _read_sliced(self, at, n, wait_ms):
        """The rest of a reply that has started, up to wait_ms, with idle() between slices."""
        c = self.clock
        t0 = c.ticks_us()
        limit_us = wait_ms * 1000
        view = self._rx_from(at)
        idle = self.idle
        slice_us = self.idle_slice_us
        while True:
            got = self.port.readinto(view, n, 0)
            if got or c.ticks_diff(c.ticks_us(), t0) >= limit_us:
                return got
            idle()
            c.sleep_us(slice_us)

    def _pause(self, us):
        """Sleep us (the inter-frame gap), with idle() between slices."""
        idle = self.idle
        if idle is None:
            self.clock.sleep_us(us)
            return
        slice_us = self.idle_slice_us
        while us > 0:
            step = slice_us if us > slice_us else us
            self.clock.sleep_us(step)
            us -= step
            idle()

    def _rx_from(self, got):
        v = self._rx_views.get(got)
        if v is None:
            v = self._rxv[got:]
            if len(self._rx_views) < 16:
                self._rx_views[got] = v
        return v

    def _await_reply(self, need):
        """Wait up to timeout_ms for the first bytes of the reply, calling idle() in between."""
        idle = self.idle
        if idle is None:
            return self.port.readinto(self._rxv, need, self.timeout_ms)
        slice_us = self.idle_slice_us
        if slice_us >= 1000:
            slice_ms = slice_us // 1000
            waited = 0
            while True:
                got = self.port.readinto(self._rxv, need, slice_ms)
                if got or waited >= self.timeout_ms:
                    return got
                waited += slice_ms
                idle()
        c = self.clock
        t0 = c.ticks_us()
        limit_us = self.timeout_ms * 1000
        while True:
            got = self.port.readinto(self._rxv, need, 0)
            if got or c.ticks_diff(c.ticks_us(), t0) >= limit_us:
                return got
            idle()
            c.sleep_us(slice_us)

    def _validate(self, req, got, reply_len, count):
        rx = self._rx
        if got < 4:
            raise ModbusFrameError("short frame: %d bytes" % got)
        n = got
        if rx[1] == req[1] or rx[1] & 0x80:
            want = 5 if rx[1] & 0x80 else reply_len
            if got < want:
                raise ModbusFrameError("short frame: %d of %d bytes" % (got, want))
            n = want
        if crc16(rx, n - 2, self.idle) != rx[n - 2] | (rx[n - 1] << 8):
            raise ModbusCRCError("CRC mismatch in %d-byte reply" % n)
        if rx[0] != req[0]:
            raise ModbusEchoError("reply from slave %d, expected %d" % (rx[0], req[0]))
        if rx[1] == req[1] | 0x80:
            raise ModbusException(req[1], rx[2])
        if rx[1] != req[1]:
            raise ModbusEchoError("reply function %d, expected %d" % (rx[1], req[1]))
        fc = req[1]
        if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
            if rx[2] != 2 * count:
                raise ModbusFrameError("byte count %d, expected %d" % (rx[2], 2 * count))
        else:
            # FC 06 echoes address and value; FC 16 echoes address and quantity.
            for i in range(2, 6):
                if rx[i] != req[i]:
                    raise ModbusEchoError("write echo differs from request")

    def _resync(self):
        """After a bad reply, wait until the line is quiet so the next reply starts clean
        (char_timeout_ms without a byte), in slices with idle() between them."""
        c = self.clock
        self._last_us = c.ticks_us()
        if self.idle is None:
            while self.port.readinto(self._rxv, _BUF, self.char_timeout_ms):
                self._last_us = c.ticks_us()
            return
        quiet_us = self.char_timeout_ms * 1000
        while c.ticks_diff(c.ticks_us(), self._last_us) < quiet_us:
            if self.port.readinto(self._rxv, _BUF, 0):
                self._last_us = c.ticks_us()
            else:
                self.idle()
                c.sleep_us(self.idle_slice_us)
