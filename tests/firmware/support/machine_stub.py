# A stand-in for MicroPython's `machine` module on the ESP32, for testing hal/esp32.py on the
# host (both interpreters). It accepts only the call signatures of the MicroPython ESP32
# port's documentation -- Pin(id, mode, pull, *, value), PWM(pin, *, freq, duty_u16),
# ADC(pin, *, atten), WDT(*, id, timeout), RTC().datetime(8-tuple) -- so a call the board
# would reject fails here too. It records pin levels and PWM state, and its ADC replays a
# waveform function so the level extraction and calibration run for real.
log = []
levels = {}
pwms = {}
wave = [None]
rtc_set = [None]


def reset():
    del log[:]
    levels.clear()
    pwms.clear()
    wave[0] = None
    rtc_set[0] = None
    spi_device[0] = None
    del spi_log[:]


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, gpio, mode=-1, pull=None, *, value=None):
        self.gpio = gpio
        if value is not None:
            levels[gpio] = value
        log.append(("Pin", gpio, mode, pull, value))

    def value(self, v=None):
        if v is None:
            return levels.get(self.gpio, 0)
        levels[self.gpio] = v
        return None


class PWM:
    def __init__(self, pin, *, freq, duty_u16):
        assert isinstance(pin, Pin) and 0 <= duty_u16 <= 65535 and freq > 0
        self.gpio = pin.gpio
        self.freq = freq
        self.u16 = duty_u16
        pwms[pin.gpio] = self

    def duty_u16(self, v):
        assert 0 <= v <= 65535
        self.u16 = v

    def deinit(self):
        del pwms[self.gpio]


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, *, atten):
        assert isinstance(pin, Pin) and atten == ADC.ATTN_11DB
        self.i = 0

    def read_uv(self):
        self.i += 1
        return wave[0](self.i)


class WDT:
    def __init__(self, *, id=0, timeout=5000):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


class RTC:
    def datetime(self, t=None):
        assert t is None or len(t) == 8
        rtc_set[0] = t


spi_device = [None]     # what sits on the SPI bus: an object with transfer(tx, rx)
spi_log = []            # (chip-select level seen at each transfer, bytes written)


class SPI:
    """machine.SPI(id, baudrate, *, polarity, phase, bits, firstbit, sck, mosi, miso) of the
    ESP32 port (hardware SPI 1 and 2); write_readinto(write_buf, read_buf) of equal lengths.
    The bytes go to spi_device, and the level of every chip-select pin is logged with them."""
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        assert id in (1, 2) and polarity in (0, 1) and phase in (0, 1) and bits == 8
        assert isinstance(sck, Pin) and isinstance(mosi, Pin) and isinstance(miso, Pin)
        self.id = id
        self.baudrate = baudrate
        self.mode = (polarity, phase, firstbit)
        log.append(("SPI", id, baudrate, sck.gpio, mosi.gpio, miso.gpio))

    def write_readinto(self, write_buf, read_buf):
        assert len(write_buf) == len(read_buf)
        spi_log.append((dict(levels), bytes(write_buf)))
        spi_device[0].transfer(write_buf, read_buf)
