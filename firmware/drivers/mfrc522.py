# NXP MFRC522 contactless reader over SPI: reads the UID of an ISO/IEC 14443 type A card.
#
# Written from the NXP MFRC522 datasheet (rev. 3.9) register map and command set, and the
# ISO/IEC 14443-3 type A activation sequence (WUPA, anticollision, SELECT per cascade level).
# The hal gives an SPI device with transfer(tx, rx): chip select held for the whole transfer,
# tx and rx of equal length (hal/esp32_spi.py on the board, hal/sim_mfrc522.py in simulation).
#
# SPI address byte (datasheet 8.1.2.3): bit 7 = 1 to read, bits 6..1 = register, bit 0 = 0.
#
# One read_uid() costs a few dozen short SPI transfers plus up to three card round trips, each
# bounded by the chip's own timer (25 ms); it allocates only the returned UID string.
from hal.compat import const

# Registers (datasheet table 20)
_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_DIV_IRQ = const(0x05)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_COLL = const(0x0E)
_MODE = const(0x11)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)

# Commands (datasheet table 149)
_CMD_IDLE = const(0x00)
_CMD_TRANSCEIVE = const(0x0C)
_CMD_SOFT_RESET = const(0x0F)

# ComIrqReg bits
_IRQ_TIMER = const(0x01)
_IRQ_ERR = const(0x02)
_IRQ_RX = const(0x20)

# ErrorReg bits that spoil a frame: protocol, parity, CRC, collision, buffer overflow
_ERR_FRAME = const(0x1F)
_ERR_COLL = const(0x08)

# ISO/IEC 14443-3 type A commands
_WUPA = const(0x52)          # wakes IDLE and HALT cards (a halted card answers again)
_HLTA = const(0x50)
_SEL_CL = (0x93, 0x95, 0x97)   # SELECT / anticollision, cascade levels 1..3
_CASCADE_TAG = const(0x88)
_SAK_MORE = const(0x04)      # SAK bit: UID not complete, go to the next cascade level

# Known VersionReg values: 0x91 v1.0, 0x92 v2.0, 0x88 a common clone (FM17522)
VERSIONS = (0x91, 0x92, 0x88)
_POLLS = const(200)          # ComIrqReg reads before giving up (the chip's timer ends sooner)


class ReaderError(Exception):
    """The reader chip is missing, or the bus returned something no MFRC522 sends."""


class CardError(Exception):
    """A card answered but the exchange was spoiled (collision, CRC, BCC, short frame).
    Nothing is reported: the driver never returns a partial UID."""


def _hex(buf, n):
    # Not a generator expression inside read_uid: its closure's cells would be allocated at
    # every call of read_uid, a card in the field or not (16 bytes a poll).
    out = ""
    for i in range(n):
        out += "%02X" % buf[i]
    return out


def crc_a(data, n=None):
    """CRC_A of ISO/IEC 14443-3 Annex B (preset 0x6363, reflected polynomial 0x8408), as the
    two bytes sent LSB first. HLTA 50 00 -> 57 CD."""
    crc = 0x6363
    for i in range(len(data) if n is None else n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc & 0xFF, crc >> 8


class MFRC522:
    def __init__(self, spi):
        self.spi = spi
        self._tx = bytearray(2)
        self._rx = bytearray(2)
        self._frame = bytearray(9)      # longest frame sent: SELECT with CRC
        self._resp = bytearray(5)       # longest answer: 4 UID bytes + BCC
        self._uid = bytearray(10)
        self.version = None
        self._more = False
        # The safety watch, called while the chip is waited on (its timer allows a card 25 ms
        # to answer; with no card in the field the wait runs that long on the board).
        self.idle = None

    # ---- register access -------------------------------------------------------------------
    def _read(self, reg):
        self._tx[0] = 0x80 | (reg << 1)
        self._tx[1] = 0
        self.spi.transfer(self._tx, self._rx)
        return self._rx[1]

    def _write(self, reg, value):
        self._tx[0] = reg << 1
        self._tx[1] = value
        self.spi.transfer(self._tx, self._rx)

    def _set_bits(self, reg, mask):
        self._write(reg, self._read(reg) | mask)

    def _clear_bits(self, reg, mask):
        self._write(reg, self._read(reg) & ~mask)

    # ---- set-up ----------------------------------------------------------------------------
    def init(self):
        """Reset the chip and configure it for ISO 14443A; raises ReaderError if none answers."""
        self._write(_COMMAND, _CMD_SOFT_RESET)
        for _ in range(_POLLS):                     # PowerDown bit clears when reset is done
            if not self._read(_COMMAND) & 0x10:
                break
        else:
            raise ReaderError("MFRC522 stays in reset")
        version = self._read(_VERSION)
        if version not in VERSIONS:
            raise ReaderError("no MFRC522 on the bus (VersionReg 0x%02x)" % version)
        self.version = version
        # Timer: TAuto, prescaler 169 -> 40 kHz (25 us per tick), reload 1000 -> 25 ms timeout
        # after each transmission (datasheet 8.5; ISO 14443 cards answer within ~5 ms).
        self._write(_T_MODE, 0x80)
        self._write(_T_PRESCALER, 0xA9)
        self._write(_T_RELOAD_H, 0x03)
        self._write(_T_RELOAD_L, 0xE8)
        self._write(_TX_ASK, 0x40)                  # 100 % ASK modulation (type A)
        self._write(_MODE, 0x3D)                    # CRC coprocessor preset 0x6363
        self._set_bits(_TX_CONTROL, 0x03)           # antenna drivers TX1, TX2 on
        return version

    # ---- one frame to the card and its answer ----------------------------------------------
    def _transceive(self, n_out, last_bits=0):
        """Send self._frame[:n_out]; return the number of bytes answered into self._resp
        (0: no card answered). Raises CardError on a spoiled answer."""
        self._write(_COMMAND, _CMD_IDLE)
        self._write(_COM_IRQ, 0x7F)                 # Set1 = 0: clear every IRQ bit
        self._write(_FIFO_LEVEL, 0x80)              # FlushBuffer
        for i in range(n_out):
            self._write(_FIFO_DATA, self._frame[i])
        self._write(_BIT_FRAMING, last_bits)
        if self.idle is not None:                   # the frame loaded; now send it
            self.idle()
        self._write(_COMMAND, _CMD_TRANSCEIVE)
        self._set_bits(_BIT_FRAMING, 0x80)          # StartSend
        irq = 0
        idle = self.idle
        for _ in range(_POLLS):
            irq = self._read(_COM_IRQ)
            if irq & (_IRQ_RX | _IRQ_TIMER | _IRQ_ERR):
                break
            if idle is not None:
                idle()
        self._clear_bits(_BIT_FRAMING, 0x80)
        self._write(_COMMAND, _CMD_IDLE)
        if not irq & (_IRQ_RX | _IRQ_ERR):
            return 0                                # timer ran out (or never ended): no card
        err = self._read(_ERROR)
        if err & _ERR_COLL:
            raise CardError("collision: more than one card in the field")
        if err & _ERR_FRAME:
            raise CardError("spoiled frame (ErrorReg 0x%02x)" % err)
        n = self._read(_FIFO_LEVEL) & 0x7F
        if n > len(self._resp):
            raise CardError("answer of %d bytes, at most %d expected" % (n, len(self._resp)))
        if self.idle is not None:
            self.idle()
        for i in range(n):
            self._resp[i] = self._read(_FIFO_DATA)
        return n

    # ---- ISO 14443-3 type A activation -----------------------------------------------------
    def read_uid(self):
        """The UID of the card in the field as upper-case hex (8, 14 or 20 digits), or None
        when no card answers. Raises CardError on a spoiled exchange, ReaderError on a bus
        that returns what no MFRC522 would."""
        self._clear_bits(_COLL, 0x80)               # received bits after a collision read 0
        self._frame[0] = _WUPA
        n = self._transceive(1, 7)                  # short frame: 7 bits
        if n == 0:
            return None
        if n != 2:
            raise CardError("ATQA of %d bytes" % n)
        size = 0
        for level in range(3):
            got = self._cascade(level, size)
            if got < 0:
                return None                         # the card left mid-read
            size = got
            if size in (4, 7, 10) and not self._more:
                break
        else:
            raise CardError("UID longer than three cascade levels")
        self._halt()
        return _hex(self._uid, size)

    def _cascade(self, level, size):
        """Anticollision and SELECT at one cascade level; appends UID bytes to self._uid and
        returns the UID size so far, or -1 when the card stopped answering."""
        sel = _SEL_CL[level]
        f = self._frame
        f[0] = sel
        f[1] = 0x20                                 # NVB: 2 bytes sent, ask for the rest
        self._write(_BIT_FRAMING, 0)
        n = self._transceive(2)
        if n == 0:
            return -1
        r = self._resp
        if n != 5:
            raise CardError("anticollision answer of %d bytes" % n)
        if r[0] ^ r[1] ^ r[2] ^ r[3] ^ r[4]:
            raise CardError("UID check byte (BCC) does not match")
        f[1] = 0x70                                 # NVB: all 7 bytes (full UID part)
        for i in range(5):
            f[2 + i] = r[i]
        f[7], f[8] = crc_a(f, 7)
        n = self._transceive(9)
        if n == 0:
            return -1
        if n != 3:
            raise CardError("SAK of %d bytes" % n)
        lo, hi = crc_a(self._resp, 1)
        if self._resp[1] != lo or self._resp[2] != hi:
            raise CardError("SAK CRC_A does not match")
        self._more = bool(self._resp[0] & _SAK_MORE)
        first = 0
        if self._more:
            if f[2] != _CASCADE_TAG:
                raise CardError("incomplete UID without the cascade tag")
            first = 1                               # the tag is not part of the UID
        for i in range(first, 4):
            self._uid[size] = f[2 + i]
            size += 1
        return size

    def _halt(self):
        """HLTA: the card stays quiet until the next WUPA (no answer is the success)."""
        f = self._frame
        f[0] = _HLTA
        f[1] = 0
        f[2], f[3] = crc_a(f, 2)
        try:
            self._transceive(4)
        except CardError:
            pass
