# A stand-in for MicroPython's `machine` module on the ESP32, for testing hal/esp32.py on the
# host (both interpreters). It accepts only the call signatures of the MicroPython ESP32
# port's documentation -- Pin(id, mode, pull, *, value), PWM(pin, *, freq, duty_u16),
# ADC(pin, *, atten), WDT(*, id, timeout), RTC().datetime(8-tuple) -- so a call the board
# would reject fails here too. It records pin levels and PWM state, and its ADC replays a
# waveform function so the level extraction and calibration run for real.
#
# Beside machine, the behaviours of the ESP32 port (v1.24-1.28) the hal must respect:
#   network  WLAN(STA_IF): active(), connect() raising OSError("Wifi Internal Error") while
#            the station is connecting (MicroPython issue #17661), status() with the port's
#            STAT_* codes, isconnected(), ifconfig() -> (ip, mask, gw, dns)
#   os_esp32 urandom(): esp_random(), pseudo-random (the same stream on every boot) until the
#            radio is active, counted in radio["weak_draws"]
#   errno_newlib  the ESP32's errno numbers (newlib: ETIMEDOUT 116, EINPROGRESS 119)
log = []
levels = {}
pwms = {}
wave = [None]
rtc_set = [None]


radio = {}


def reset():
    del log[:]
    levels.clear()
    pwms.clear()
    wave[0] = None
    rtc_set[0] = None
    spi_device[0] = None
    del spi_log[:]
    radio.clear()
    radio.update({"active": False, "status": network.STAT_IDLE, "connects": 0,
                  "weak_draws": 0, "weak_state": 1, "dns": "127.0.0.1"})


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
class network:
    """The ESP32 port's network module (station side)."""
    STA_IF = 0
    AP_IF = 1
    STAT_IDLE = 1000
    STAT_CONNECTING = 1001
    STAT_GOT_IP = 1010
    STAT_BEACON_TIMEOUT = 200
    STAT_NO_AP_FOUND = 201
    STAT_WRONG_PASSWORD = 202
    STAT_ASSOC_FAIL = 203
    STAT_HANDSHAKE_TIMEOUT = 204

    class WLAN:
        def __init__(self, interface_id=0):
            assert interface_id == network.STA_IF

        def active(self, v=None):
            if v is None:
                return radio["active"]
            radio["active"] = bool(v)
            return None

        def connect(self, ssid=None, key=None, *, bssid=None):
            if not radio["active"]:
                raise OSError("Wifi Not Started")
            if radio["status"] == network.STAT_CONNECTING:
                raise OSError("Wifi Internal Error")
            radio["status"] = network.STAT_CONNECTING
            radio["connects"] += 1

        def status(self, param=None):
            assert param is None
            return radio["status"]

        def isconnected(self):
            return radio["status"] == network.STAT_GOT_IP

        def ifconfig(self):
            return ("192.168.4.20", "255.255.255.0", "192.168.4.1", radio["dns"])


class os_esp32:
    """os.urandom as the ESP32 gives it: esp_random(), a true RNG only while the radio runs."""
    @staticmethod
    def urandom(n):
        if radio["active"]:
            import os
            return os.urandom(n)
        # Before the radio: a fixed pseudo-random stream, the same on every board and boot.
        radio["weak_draws"] += 1
        out = bytearray(n)
        x = radio["weak_state"]
        for i in range(n):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = x >> 16 & 255
        radio["weak_state"] = x
        return bytes(out)


class errno_newlib:
    """The ESP32's errno numbers (newlib), where they differ from Linux's."""
    EAGAIN = 11
    ECONNRESET = 104
    ETIMEDOUT = 116
    EALREADY = 120
    EINPROGRESS = 119
    EWOULDBLOCK = 11


reset()
