# hal/esp32_spi.py through machine_stub's SPI (the ESP32 port's documented signature), with the
# MFRC522 driver talking to a simulated chip behind it: chip select low for exactly each
# transfer, mode 0, MSB first; and the board's reader pins reach machine.SPI. Both interpreters.
import sys

from support import machine_stub as m
from app.board import load_board


def _load(name):
    m.reset()
    sys.modules["machine"] = m
    sys.modules.pop(name, None)
    __import__(name)
    return sys.modules[name]


def _done():
    for name in ("machine", "hal.esp32_spi", "hal.esp32"):
        sys.modules.pop(name, None)


def test_transfers_hold_chip_select_low_and_reach_the_chip():
    try:
        spi_mod = _load("hal.esp32_spi")
        from drivers.mfrc522 import MFRC522
        from hal.sim_mfrc522 import SimCard, SimMFRC522
        chip = SimMFRC522()
        chip.card = SimCard("04A2B3C4D5E6F7")
        m.spi_device[0] = chip
        dev = spi_mod.Esp32Spi(2, sck=18, mosi=23, miso=19, cs=21, baudrate=1000000, rst=22)
        assert m.levels[21] == 1 and m.levels[22] == 1      # deselected, reader running
        rc = MFRC522(dev)
        rc.init()
        assert rc.read_uid() == "04A2B3C4D5E6F7"
        assert len(m.spi_log) > 20
        assert all(levels[21] == 0 for levels, _ in m.spi_log)   # selected during each one
        assert m.levels[21] == 1                                   # released after the last
        assert ("SPI", 2, 1000000, 18, 23, 19) in m.log
    finally:
        _done()


def test_board_reader_is_wired_from_the_board_file(boards_dir):
    try:
        esp32 = _load("hal.esp32")
        from hal.sim_mfrc522 import SimMFRC522
        m.spi_device[0] = SimMFRC522()
        board = load_board(boards_dir + "/esp32-devkitc-max485.json")
        hw = esp32.devices(board)
        assert "rfid_spi" in hw
        spi = [e for e in m.log if e[0] == "SPI"]
        assert spi == [("SPI", board.rfid_spi, board.rfid_baud, board.rfid_sck,
                        board.rfid_mosi, board.rfid_miso)]
    finally:
        _done()
