# drivers/mfrc522.py and drivers/card_reader.py against a simulated MFRC522 that answers at the
# register level (hal/sim_mfrc522.py): UIDs of every length, no card, a card leaving at every
# frame of a read, two cards, a missing chip and a bus returning noise. Both interpreters.
from support.fwtest import allocated, raises
from drivers.card_reader import CardReader
from drivers.mfrc522 import MFRC522, CardError, ReaderError, crc_a
from hal.sim_mfrc522 import SimCard, SimMFRC522

UID4 = "DEADBEEF"
UID7 = "04A2B3C4D5E6F7"
UID10 = "0102030405060708090A"


def _reader(card=None):
    chip = SimMFRC522()
    if card:
        chip.card = SimCard(card)
    rc = MFRC522(chip)
    rc.init()
    return chip, rc


def test_crc_a_matches_iso14443_annex_b_vector():
    assert crc_a(b"\x50\x00") == (0x57, 0xCD)          # HLTA 50 00 -> 57 CD


def test_init_reads_version_and_refuses_a_missing_chip():
    chip = SimMFRC522(version=0x91)
    assert MFRC522(chip).init() == 0x91
    for bad in (0x00, 0xFF, 0x12):          # no chip (bus low or high), or something else
        exc = raises(ReaderError, MFRC522(SimMFRC522(version=bad)).init)
        assert "0x%02x" % bad in str(exc)


def test_reads_uids_of_every_length():
    for uid in (UID4, UID7, UID10):
        chip, rc = _reader(uid)
        assert rc.read_uid() == uid
        # The card was halted; WUPA wakes it, so the next read sees it again.
        assert chip.card.state == 3
        assert rc.read_uid() == uid


def test_no_card_is_none():
    chip, rc = _reader()
    assert rc.read_uid() is None


def test_card_leaving_at_any_frame_never_gives_a_partial_uid():
    for uid in (UID4, UID7, UID10):
        frames = {4: 3, 7: 5, 10: 7}[len(uid) // 2]   # WUPA + 2 per cascade level
        for n in range(frames + 1):
            chip, rc = _reader(uid)
            chip.leave_after = n
            got = rc.read_uid()
            if n >= frames:
                assert got == uid, (uid, n, got)
            else:
                assert got is None, (uid, n, got)


def test_two_cards_are_a_collision_not_a_wrong_uid():
    chip, rc = _reader(UID4)
    chip.second_card = SimCard("CAFEBABE")
    assert "collision" in str(raises(CardError, rc.read_uid))


def test_noise_on_the_bus_never_yields_a_uid():
    for seed in range(1, 60):
        chip, rc = _reader(UID7)
        chip.noise = seed
        try:
            got = rc.read_uid()
        except (CardError, ReaderError):
            got = None
        assert got is None or got == UID7, (seed, got)


def test_card_reader_reports_a_card_once_until_it_leaves():
    chip = SimMFRC522()
    reader = CardReader(MFRC522(chip), gone_polls=2)
    assert reader.poll() is None and reader.ready
    chip.card = SimCard(UID7)
    assert reader.poll() == UID7
    for _ in range(5):
        assert reader.poll() is None                     # held on the reader: not again
    chip.card = None
    assert reader.poll() is None
    assert reader.poll() is None
    chip.card = SimCard(UID7)
    assert reader.poll() == UID7                         # taken away and presented again
    chip.card = SimCard(UID4)
    assert reader.poll() == UID4                         # another card at once


def test_card_reader_without_a_chip_backs_off_and_recovers():
    chip = SimMFRC522(version=0x00)
    reader = CardReader(MFRC522(chip), retry_polls=3)
    assert reader.poll() is None and not reader.ready and "VersionReg" in reader.error
    before = chip.transfers
    for _ in range(3):
        assert reader.poll() is None
    assert chip.transfers == before                      # waiting, not hammering the bus
    chip.version = 0x92
    chip.card = SimCard(UID4)
    assert reader.poll() == UID4 and reader.ready and reader.error is None


def test_a_poll_with_no_card_in_the_field_allocates_nothing():
    # The main loop polls the reader every rfid_poll_ms: with no card that poll must leave no
    # garbage, in the driver and in the simulated chip alike (the ESP32's SPI transfer into
    # the driver's buffers allocates nothing), so the loop's allocation rows are the firmware's.
    chip = SimMFRC522()
    reader = CardReader(MFRC522(chip))
    for _ in range(3):
        assert reader.poll() is None                    # warm: the chip's set-up done
    chip.card = SimCard(UID4)
    assert reader.poll() == UID4                        # the same chip still reads cards
    chip.card = None
    for _ in range(3):
        assert reader.poll() is None

    def polls():
        for _ in range(20):
            reader.poll()
    used = allocated(polls)
    assert used is None or used == 0, used           # None: CPython
