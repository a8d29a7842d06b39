"""hal/esp32.py on the host, against a stand-in for MicroPython's `machine` module.

The stand-in accepts only the call signatures of the MicroPython ESP32 port's documentation
(machine.Pin(id, mode, pull, *, value), PWM(pin, *, freq, duty_u16), ADC(pin, *, atten),
WDT(*, timeout), RTC().datetime(tuple)), so a call the board would reject fails here too; the
ADC replays a pilot waveform so the level extraction and calibration run for real.
"""
import importlib
import sys
import types

import pytest

from app.board import load_board
from conftest import ROOT


class _Pin:
    OUT, IN, OPEN_DRAIN = 1, 0, 2
    PULL_UP, PULL_DOWN = 1, 2
    levels = {}

    def __init__(self, gpio, mode=-1, pull=None, *, value=None):
        self.gpio = gpio
        self.mode = mode
        self.pull = pull
        if value is not None:
            _Pin.levels[gpio] = value
        _Pin.log.append(("Pin", gpio, mode, pull, value))

    def value(self, v=None):
        if v is None:
            return _Pin.levels.get(self.gpio, 0)
        _Pin.levels[self.gpio] = v


class _PWM:
    live = {}

    def __init__(self, pin, *, freq, duty_u16):
        assert isinstance(pin, _Pin) and 0 <= duty_u16 <= 65535
        self.pin, self.freq, self.u16 = pin, freq, duty_u16
        _PWM.live[pin.gpio] = self

    def duty_u16(self, v):
        assert 0 <= v <= 65535
        self.u16 = v

    def deinit(self):
        del _PWM.live[self.pin.gpio]


class _ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3
    wave = None

    def __init__(self, pin, *, atten):
        assert atten == _ADC.ATTN_11DB
        self.i = 0

    def read_uv(self):
        self.i += 1
        return _ADC.wave(self.i)


class _WDT:
    def __init__(self, *, timeout, id=0):
        self.timeout, self.fed = timeout, 0

    def feed(self):
        self.fed += 1


class _RTC:
    set_to = None

    def datetime(self, t=None):
        assert t is None or len(t) == 8
        _RTC.set_to = t


@pytest.fixture
def esp32(monkeypatch):
    m = types.ModuleType("machine")
    m.Pin, m.PWM, m.ADC, m.WDT, m.RTC = _Pin, _PWM, _ADC, _WDT, _RTC
    _Pin.log, _Pin.levels, _PWM.live = [], {}, {}
    monkeypatch.setitem(sys.modules, "machine", m)
    monkeypatch.delitem(sys.modules, "hal.esp32", raising=False)
    return importlib.import_module("hal.esp32")


def test_output_pin_starts_inactive_and_honours_active_low(esp32):
    relay = esp32.OutputPin(26, active_low=True)
    assert _Pin.log[0] == ("Pin", 26, _Pin.OUT, None, 1)   # inactive level set with the mode
    relay.on()
    assert _Pin.levels[26] == 0 and relay.value() == 1
    relay.off()
    assert _Pin.levels[26] == 1 and relay.value() == 0


def test_input_pin_pull_and_polarity(esp32):
    fb = esp32.InputPin(27, active_low=True, pull="up")
    assert _Pin.log[-1][3] == _Pin.PULL_UP
    _Pin.levels[27] = 0                 # aux contact closes to GND
    assert fb.value() == 1
    with pytest.raises(ValueError):
        esp32.InputPin(27, pull="sideways")


def test_pilot_pwm_duty_and_steady_levels(esp32):
    pwm = esp32.PilotPWM(25)
    assert _Pin.levels[25] == 1 and 25 not in _PWM.live      # +12 V steady, no PWM
    pwm.set_duty(266)                                          # 16 A
    p = _PWM.live[25]
    assert p.freq == 1000 and p.u16 == 17432                   # 26.6 % of 65535
    pwm.set_duty(960)
    assert p.u16 == 62914
    pwm.set_duty(0)                                            # state F: -12 V steady
    assert 25 not in _PWM.live and _Pin.levels[25] == 0 and pwm.duty() == 0
    with pytest.raises(ValueError):
        pwm.set_duty(1001)
    inv = esp32.PilotPWM(17, inverted=True)
    assert _Pin.levels[17] == 0                                # inverted +12 V
    inv.set_duty(100)
    assert _PWM.live[17].u16 == 65535 - 6554


def _wave(high_uv, low_uv, duty, us_per_read=23, noise_uv=25000):
    def sample(i):
        t = (i * us_per_read) % 1000
        v = high_uv if t < duty else low_uv
        return v + (noise_uv if i % 2 else -noise_uv)
    return sample


def test_pilot_adc_levels_through_the_board_calibration(esp32):
    board = load_board(str(ROOT / "boards" / "esp32-devkitc-max485.json"))
    dev = esp32.devices(board)
    adc = dev["pilot_adc"]
    for pilot_high, pilot_low, duty in ((9000, -12000, 266), (6000, -12000, 100),
                                        (3000, -12000, 960), (6000, -6000, 500)):
        _ADC.wave = _wave(board.adc_mv(pilot_high) * 1000, board.adc_mv(pilot_low) * 1000, duty)
        adc.measure()
        assert abs(adc.high_mv - pilot_high) < 150, (pilot_high, adc.high_mv)
        assert abs(adc.low_mv - pilot_low) < 150, (pilot_low, adc.low_mv)
    _ADC.wave = _wave(board.adc_mv(12000) * 1000, 0, 1000)      # steady +12 V
    adc.measure()
    assert abs(adc.high_mv - 12000) < 150 and adc.high_mv == adc.low_mv


def test_pilot_adc_with_an_inverting_front_end(esp32):
    adc = esp32.PilotADC(7, 300, 2700)                          # +12 V reads low at the pin
    _ADC.wave = _wave(600 * 1000, 2700 * 1000, 266)             # +9 V phase reads 600 mV
    adc.measure()
    assert abs(adc.high_mv - 9000) < 150 and abs(adc.low_mv + 12000) < 150


def test_watchdog_and_clock(esp32):
    w = esp32.Watchdog(8000)
    w.feed()
    assert w._wdt.timeout == 8000 and w._wdt.fed == 1
    c = esp32.Clock()
    assert c.status() == "U"
    c.set_time(1767225600)                                      # 2026-01-01T00:00:00Z
    assert _RTC.set_to[:3] == (2026, 1, 1) and _RTC.set_to[3] == 3   # a Thursday
    assert c.status() == "S"
