# SPI on the ESP32 (machine.SPI) for a device with its own chip-select line, with the interface
# the drivers use: transfer(tx, rx) sends tx and fills rx (equal lengths) with chip select held
# low for the whole transfer. Mode 0, MSB first (the MFRC522's SPI, datasheet 8.1.2).
import machine


class Esp32Spi:
    def __init__(self, bus, sck, mosi, miso, cs, baudrate=1000000, rst=None):
        # Chip select high (idle) before the bus starts, so the device ignores set-up clocks.
        self._cs = machine.Pin(cs, machine.Pin.OUT, value=1)
        # The reader's reset line (NRSTPD): high runs the chip; low holds it powered down.
        self._rst = None if rst is None else machine.Pin(rst, machine.Pin.OUT, value=1)
        self._spi = machine.SPI(bus, baudrate=baudrate, polarity=0, phase=0, bits=8,
                                firstbit=machine.SPI.MSB, sck=machine.Pin(sck),
                                mosi=machine.Pin(mosi), miso=machine.Pin(miso))

    def transfer(self, tx, rx):
        self._cs.value(0)
        try:
            self._spi.write_readinto(tx, rx)
        finally:
            self._cs.value(1)
