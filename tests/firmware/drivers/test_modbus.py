# Modbus RTU master: CRC, timing, framing and reply checking, byte for byte.
# The UART here is a scripted line (what the master wrote is recorded, the reply bytes are
# given in chunks), so every malformed reply can be produced exactly; test_meters.py does the
# same against pymodbus over a real pty.
from support.fwtest import raises
from drivers import modbus
from drivers.modbus import (ModbusRTU, ModbusTimeout, ModbusCRCError, ModbusFrameError,
                            ModbusEchoError, ModbusException, ModbusArgError, crc16)


class ScriptedLine:
    """hal UART interface; replies[i] is a list of byte chunks answering the i-th frame."""

    def __init__(self, replies, baudrate=115200):
        self.baudrate = baudrate
        self.replies = list(replies)
        self.written = []
        self.chunks = []

    def write(self, buf):
        self.written.append(bytes(buf))
        self.chunks = list(self.replies.pop(0)) if self.replies else []

    def readinto(self, buf, nbytes, timeout_ms):
        if not self.chunks:
            return 0
        chunk = self.chunks[0]
        n = min(len(chunk), nbytes)
        for i in range(n):
            buf[i] = chunk[i]
        if n == len(chunk):
            self.chunks.pop(0)
        else:
            self.chunks[0] = chunk[n:]
        return n

    def drain_input(self):
        pass


def with_crc(frame):
    c = crc16(frame)
    return bytes(frame) + bytes([c & 0xFF, c >> 8])


def test_crc16_known_vectors():
    # MODBUS over Serial Line V1.02, 6.2.2: the CRC of 02 07 is 0x1241 (sent 41 12).
    assert crc16(b"\x02\x07") == 0x1241
    # CRC-16/MODBUS check value over "123456789" (RevEng CRC catalogue).
    assert crc16(b"123456789") == 0x4B37
    # Read Holding Registers, slave 0x11, address 0x006B, 3 registers: frame ends 76 87.
    assert with_crc(b"\x11\x03\x00\x6B\x00\x03")[-2:] == b"\x76\x87"
    assert crc16(b"\x11\x03\x00\x6B\x00\x03\x76\x87") == 0    # CRC over a good frame is 0
    assert crc16(b"abc", 0) == 0xFFFF


def test_crc_tables_are_the_polynomials():
    # The tables are constants (in flash when frozen): entry i of each is the low / high byte
    # of the byte i's remainder under the reflected polynomial 0xA001.
    from drivers import modbus
    for table in (modbus._CRC_LO, modbus._CRC_HI):
        assert isinstance(table, bytes) and len(table) == 256
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        assert modbus._CRC_LO[i] | modbus._CRC_HI[i] << 8 == c, i


def test_a_long_crc_is_checked_in_pieces_with_idle_between():
    # A reply of 165 bytes (80 registers) is three pieces of at most 64 bytes, with idle()
    # (the safety watch) between them; the CRC is the same as in one piece.
    frame = bytes(range(165))
    calls = []
    assert crc16(frame, -1, lambda: calls.append(1)) == crc16(frame)
    assert len(calls) == 2
    calls = []
    crc16(frame[:64], -1, lambda: calls.append(1))
    assert calls == []                      # one piece: nothing to put between


def test_frame_gap_follows_the_baud_rate():
    # t3.5 = 3.5 characters of 11 bits; fixed 1750 us above 19200 baud (Serial Line 2.5.1.1).
    assert modbus.frame_gap_us(9600) == 4011
    assert modbus.frame_gap_us(19200) == 2006
    assert modbus.frame_gap_us(38400) == 1750
    assert modbus.frame_gap_us(115200) == 1750


def test_read_holding_registers_spec_example():
    # MODBUS Application Protocol V1.1b3, 6.3: registers 108..110 hold 0x022B, 0x0000, 0x0064.
    line = ScriptedLine([[with_crc(b"\x11\x03\x06\x02\x2B\x00\x00\x00\x64")]])
    m = ModbusRTU(line)
    data = m.read_holding(0x11, 0x006B, 3)
    assert line.written == [b"\x11\x03\x00\x6B\x00\x03\x76\x87"]
    assert bytes(data) == b"\x02\x2B\x00\x00\x00\x64"


def test_reply_arriving_in_fragments_is_reassembled():
    reply = with_crc(b"\x01\x04\x04\x43\x66\x33\x33")
    line = ScriptedLine([[reply[:1], reply[1:2], reply[2:5], reply[5:]]])
    data = ModbusRTU(line).read_input(1, 0x0000, 2)
    assert line.written[0][:6] == b"\x01\x04\x00\x00\x00\x02"
    assert bytes(data) == b"\x43\x66\x33\x33"


def test_write_single_and_multiple_registers():
    # Application Protocol 6.6 (write 0x0003 to register 1) and 6.12 (0x000A, 0x0102 to 1..2).
    line = ScriptedLine([
        [with_crc(b"\x01\x06\x00\x01\x00\x03")],
        [with_crc(b"\x01\x10\x00\x01\x00\x02")],
    ])
    m = ModbusRTU(line)
    m.write_register(1, 0x0001, 0x0003)
    m.write_registers(1, 0x0001, [0x000A, 0x0102])
    assert line.written[0] == with_crc(b"\x01\x06\x00\x01\x00\x03")
    assert line.written[1] == with_crc(b"\x01\x10\x00\x01\x00\x02\x04\x00\x0A\x01\x02")


def test_each_bad_reply_raises_its_own_error():
    good = b"\x01\x04\x04\x43\x66\x33\x33"
    bad_crc = bytearray(with_crc(good))
    bad_crc[-1] ^= 0xFF
    cases = [
        ([], ModbusTimeout),                                         # silence
        ([bytes(bad_crc)], ModbusCRCError),                          # line noise
        ([with_crc(good)[:6]], ModbusFrameError),                    # cut short
        ([with_crc(b"\x02" + good[1:])], ModbusEchoError),           # another slave answered
        ([with_crc(b"\x01\x03" + good[2:])], ModbusEchoError),       # another function
        ([with_crc(b"\x01\x04\x02\x43\x66")], ModbusFrameError),     # byte count disagrees
        ([with_crc(b"\x01\x84\x02")], ModbusException),              # exception response
    ]
    for reply, err in cases:
        line = ScriptedLine([reply])
        m = ModbusRTU(line, retries=0)
        exc = raises(err, m.read_input, 1, 0, 2)
        assert isinstance(exc, modbus.ModbusError)
        assert len(line.written) == 1
    exc = raises(ModbusException, ModbusRTU(ScriptedLine([[with_crc(b"\x01\x84\x02")]]),
                                            retries=0).read_input, 1, 0, 2)
    assert exc.code == 2 and exc.function == 4 and "illegal data address" in str(exc)


def test_write_echo_must_match_the_request():
    line = ScriptedLine([[with_crc(b"\x01\x06\x00\x01\x00\x04")]])
    raises(ModbusEchoError, ModbusRTU(line, retries=0).write_register, 1, 1, 3)


def test_retries_are_bounded_and_recover():
    good = with_crc(b"\x01\x04\x02\x00\x07")
    # Two silent attempts, then an answer: retries=2 gets it on the third try.
    line = ScriptedLine([[], [], [good]])
    m = ModbusRTU(line, retries=2)
    assert bytes(m.read_input(1, 0, 1)) == b"\x00\x07"
    assert len(line.written) == 3 and m.attempts == 3 and m.failures == 2
    # Always silent: exactly 1 + retries frames go out, then the error.
    line = ScriptedLine([[], [], [], [], []])
    m = ModbusRTU(line, retries=2)
    raises(ModbusTimeout, m.read_input, 1, 0, 1)
    assert len(line.written) == 3


def test_exception_replies_are_final_except_busy():
    line = ScriptedLine([[with_crc(b"\x01\x84\x02")], [good_reply()]])
    raises(ModbusException, ModbusRTU(line, retries=3).read_input, 1, 0, 1)
    assert len(line.written) == 1
    line = ScriptedLine([[with_crc(b"\x01\x84\x06")], [good_reply()]])   # 6 = server busy
    assert bytes(ModbusRTU(line, retries=3).read_input(1, 0, 1)) == b"\x00\x07"
    assert len(line.written) == 2


def good_reply():
    return with_crc(b"\x01\x04\x02\x00\x07")


def test_bad_arguments_send_nothing():
    line = ScriptedLine([])
    m = ModbusRTU(line)
    raises(ModbusArgError, m.read_input, 0, 0, 1)          # broadcast cannot be read
    raises(ModbusArgError, m.read_input, 248, 0, 1)
    raises(ModbusArgError, m.read_input, 1, 0, 126)        # more than 125 registers
    raises(ModbusArgError, m.read_input, 1, 0xFFFF, 2)     # past the address space
    raises(ModbusArgError, m.read_registers, 1, 5, 0, 1)   # not a register read
    raises(ModbusArgError, m.write_register, 1, 0, 0x10000)
    raises(ModbusArgError, m.write_registers, 1, 0, [1, -1])
    raises(ModbusArgError, ModbusRTU, line, 200, 20, -1)
    assert line.written == []


def test_every_wait_calls_idle_frame_gap_and_resync_included():
    """The safety watch (idle) runs while the line's inter-frame gap is waited out and while a
    bad reply's line is waited quiet, not only while a reply is awaited."""
    events = []

    class Line(ScriptedLine):
        def write(self, buf):
            events.append("write")
            ScriptedLine.write(self, buf)
    good = with_crc(b"\x01\x04\x02\x00\x07")
    m = ModbusRTU(Line([[good]]), idle=lambda: events.append("idle"))
    m.idle_slice_us = 100
    m.gap_us = 5000                          # a long t3.5 just begun: it is surely waited
    m._last_us = m.clock.ticks_us()
    assert bytes(m.read_input(1, 0, 1)) == b"\x00\x07"
    assert events.index("write") >= 5, events
    # A reply with a bad CRC, then the good one: no frame gap to wait here, so the idle()
    # calls between the two requests are the second transaction's first (below) and the
    # resynchronisation's.
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    del events[:]
    m = ModbusRTU(Line([[bytes(bad)], [good]]), retries=1, idle=lambda: events.append("idle"))
    m.idle_slice_us = 100
    m.gap_us = 0
    assert bytes(m.read_input(1, 0, 1)) == b"\x00\x07" and m.failures == 1
    first = events.index("write")
    second = events.index("write", first + 1)
    assert events[first + 1:second].count("idle") >= 2, events


def test_a_transaction_starts_with_idle():
    # What the caller did before a request (the charger's checks, the meter's setup) is a
    # piece of its own: idle() (the safety watch) runs before the request goes out, even with
    # no frame gap to wait.
    events = []

    class Line(ScriptedLine):
        def write(self, buf):
            events.append("write")
            ScriptedLine.write(self, buf)
    m = ModbusRTU(Line([[with_crc(b"\x01\x04\x02\x00\x07")]]), idle=lambda: events.append("idle"))
    m.gap_us = 0
    assert bytes(m.read_input(1, 0, 1)) == b"\x00\x07"
    assert events[:2] == ["idle", "write"], events
