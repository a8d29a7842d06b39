# A simulated MFRC522 reader chip, answering at the register level over the same
# transfer(tx, rx) the ESP32's SPI device offers, with ISO/IEC 14443-3 type A cards in its field.
# It models what drivers/mfrc522.py relies on and what goes wrong on a bench: no card, a card
# taken away in the middle of a read, two cards at once, and a bus that returns noise.
#
#   chip = SimMFRC522();  chip.card = SimCard("04A1B2C3D4E5F6")
#   chip.leave_after = 3      the card leaves the field after 3 more frames
#   chip.noise = seed         every byte read back is pseudo-random from then on
#   chip.version = 0x92       what VersionReg reads

_IDLE, _READY, _ACTIVE, _HALT = 0, 1, 2, 3


def crc_a(data):
    # ISO/IEC 14443-3 Annex B, computed here independently of the driver.
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


class SimCard:
    """A type A card: 4-, 7- or 10-byte UID, with the ISO 14443-3 state machine."""

    def __init__(self, uid_hex, sak=0x08):
        self.uid = bytes(int(uid_hex[i:i + 2], 16) for i in range(0, len(uid_hex), 2))
        if len(self.uid) not in (4, 7, 10):
            raise ValueError("UID of 4, 7 or 10 bytes")
        self.sak = sak
        self.state = _IDLE
        self.level = 0

    def _part(self, level):
        """The 4 UID bytes (cascade tag included) sent at one cascade level."""
        u, n = self.uid, len(self.uid)
        if n == 4:
            return u
        if n == 7:
            return bytes((0x88,)) + u[0:3] if level == 0 else u[3:7]
        return (bytes((0x88,)) + u[0:3], bytes((0x88,)) + u[3:6], u[6:10])[level]

    def answer(self, frame, bits):
        """The card's answer to one frame (bytes), or None when it stays silent."""
        if bits == 7 and len(frame) == 1:
            if frame[0] == 0x52 or (frame[0] == 0x26 and self.state != _HALT):
                self.state, self.level = _READY, 0
                return b"\x44\x00" if len(self.uid) == 7 else (
                    b"\x04\x00" if len(self.uid) == 4 else b"\x84\x00")
            return None
        sel = (0x93, 0x95, 0x97)
        if self.state == _READY and len(frame) == 2 and frame[1] == 0x20 and \
                frame[0] == sel[self.level]:
            part = self._part(self.level)
            return part + bytes((part[0] ^ part[1] ^ part[2] ^ part[3],))
        if self.state == _READY and len(frame) == 9 and frame[0] == sel[self.level] and \
                frame[1] == 0x70 and crc_a(frame[:7]) == frame[7:9] and \
                frame[2:6] == self._part(self.level):
            last = self.level == {4: 0, 7: 1, 10: 2}[len(self.uid)]
            if last:
                self.state = _ACTIVE
                sak = self.sak
            else:
                self.level += 1
                sak = 0x04
            return bytes((sak,)) + crc_a(bytes((sak,)))
        if self.state == _ACTIVE and len(frame) == 4 and frame[0] == 0x50 and frame[1] == 0 \
                and crc_a(frame[:2]) == frame[2:4]:
            self.state = _HALT
            return None
        if self.state != _HALT:
            self.state = _IDLE          # anything unexpected sends a card back to IDLE
        return None


class SimMFRC522:
    def __init__(self, version=0x92):
        self.version = version
        self.card = None
        self.second_card = None         # a second card in the field: collisions
        self.leave_after = None         # frames until the card leaves the field
        self.noise = None               # seed: the bus returns pseudo-random bytes
        self.transfers = 0
        self._reset()

    def _reset(self):
        self.regs = bytearray(64)
        # The 64-byte FIFO as a buffer with read and write positions: a poll with no card in
        # the field allocates nothing (the real chip's SPI transfer does not either, so the
        # loop's per-pass allocation rows show the firmware's own).
        self._fifo = bytearray(64)
        self._head = self._tail = 0
        self.command = 0
        self.regs[0x37] = self.version

    # ---- the SPI side ----------------------------------------------------------------------
    def transfer(self, tx, rx):
        self.transfers += 1
        if len(tx) != len(rx):
            raise ValueError("tx and rx differ in length")
        if self.noise is not None:
            for i in range(len(rx)):
                self.noise = (self.noise * 1103515245 + 12345) & 0x7FFFFFFF
                rx[i] = (self.noise >> 16) & 0xFF
            return
        reg = (tx[0] >> 1) & 0x3F
        rx[0] = 0
        if tx[0] & 0x80:
            for i in range(1, len(tx)):
                rx[i] = self._read(reg)
        else:
            for i in range(1, len(tx)):
                self._write(reg, tx[i])
                rx[i] = 0

    def _read(self, reg):
        if reg == 0x09:
            if self._head == self._tail:
                return 0
            self._head += 1
            return self._fifo[self._head - 1]
        if reg == 0x0A:
            return self._tail - self._head
        if reg == 0x01:
            return self.command
        if reg == 0x37:
            return self.version
        return self.regs[reg]

    def _write(self, reg, value):
        if reg == 0x01:
            self.command = value & 0x0F
            if self.command == 0x0F:
                self._reset()
                self.command = 0
        elif reg == 0x04:               # ComIrqReg: Set1 sets the marked bits, else clears them
            if value & 0x80:
                self.regs[reg] |= value & 0x7F
            else:
                self.regs[reg] &= ~value & 0x7F
        elif reg == 0x09:
            if self._tail < 64:
                self._fifo[self._tail] = value
                self._tail += 1
        elif reg == 0x0A:
            if value & 0x80:
                self._head = self._tail = 0
        elif reg == 0x0D:
            self.regs[reg] = value & 0x7F
            if value & 0x80 and self.command == 0x0C:
                self._send(value & 0x07)
        else:
            self.regs[reg] = value

    # ---- the RF side -----------------------------------------------------------------------
    def _send(self, last_bits):
        head, tail = self._head, self._tail
        self._head = self._tail = 0
        self.regs[0x06] = 0             # ErrorReg
        if self.leave_after is not None:
            if self.leave_after <= 0:
                self.card = None
            self.leave_after -= 1
        if self.card is None and self.second_card is None:
            self.regs[0x04] |= 0x01     # TimerIRq: nobody answered in time
            return
        frame = bytes(self._fifo[head:tail])
        answers = []
        for card in (self.card, self.second_card):
            if card is not None:
                a = card.answer(frame, last_bits)
                if a is not None:
                    answers.append(a)
        if not answers:
            self.regs[0x04] |= 0x01     # TimerIRq: nobody answered in time
            return
        if len(answers) > 1 and answers[0] != answers[1]:
            self.regs[0x06] |= 0x08     # CollErr
            self.regs[0x04] |= 0x02 | 0x20
            return
        a = answers[0]
        self._fifo[:len(a)] = a
        self._tail = len(a)
        self.regs[0x04] |= 0x20         # RxIRq
