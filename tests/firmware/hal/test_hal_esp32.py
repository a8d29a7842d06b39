# hal/esp32.py against tests/firmware/support/machine_stub.py (MicroPython's documented machine API):
# pin polarity, pilot PWM duty and steady levels, pilot ADC levels through a board's
# calibration, watchdog and RTC. Runs on both interpreters.
import sys

from support import machine_stub as m
from support.fwtest import allocated
from app.board import load_board


def _esp32():
    m.reset()
    sys.modules["machine"] = m
    sys.modules.pop("hal.esp32", None)
    import hal.esp32
    return hal.esp32


def _done():
    sys.modules.pop("machine", None)
    sys.modules.pop("hal.esp32", None)


def test_output_pin_starts_inactive_and_honours_active_low():
    try:
        esp32 = _esp32()
        relay = esp32.OutputPin(26, active_low=True)
        assert m.log[0] == ("Pin", 26, m.Pin.OUT, None, 1)   # inactive level set with the mode
        relay.on()
        assert m.levels[26] == 0 and relay.value() == 1
        relay.off()
        assert m.levels[26] == 1 and relay.value() == 0
    finally:
        _done()


def test_input_pin_pull_and_polarity():
    try:
        esp32 = _esp32()
        fb = esp32.InputPin(27, active_low=True, pull="up")
        assert m.log[-1][3] == m.Pin.PULL_UP
        m.levels[27] = 0                                     # aux contact closes to GND
        assert fb.value() == 1
        try:
            esp32.InputPin(27, pull="sideways")
            raise AssertionError("bad pull accepted")
        except esp32.HalError:
            pass
    finally:
        _done()


def test_pilot_pwm_duty_and_steady_levels():
    try:
        esp32 = _esp32()
        pwm = esp32.PilotPWM(25)
        assert m.levels[25] == 1 and 25 not in m.pwms        # +12 V steady, no PWM
        pwm.set_duty(266)                                    # 16 A
        p = m.pwms[25]
        assert p.freq == 1000 and p.u16 == 17432             # 26.6 % of 65535
        pwm.set_duty(960)
        assert p.u16 == 62914
        pwm.set_duty(0)                                      # state F: -12 V steady
        assert 25 not in m.pwms and m.levels[25] == 0 and pwm.duty() == 0
        try:
            pwm.set_duty(1001)
            raise AssertionError("duty 1001 accepted")
        except esp32.HalError:
            pass
        assert pwm.duty() == 0
        inv = esp32.PilotPWM(17, inverted=True)
        assert m.levels[17] == 0                             # inverted +12 V
        inv.set_duty(100)
        assert m.pwms[17].u16 == 65535 - 6554
    finally:
        _done()


def _wave(high_uv, low_uv, duty, us_per_read=23, noise_uv=25000):
    def sample(i):
        t = (i * us_per_read) % 1000
        v = high_uv if t < duty else low_uv
        return v + (noise_uv if i % 2 else -noise_uv)
    return sample


def test_pilot_adc_levels_through_the_board_calibration(boards_dir):
    try:
        esp32 = _esp32()
        board = load_board(boards_dir + "/esp32-devkitc-max485.json")
        hw = esp32.devices(board)
        adc = hw["pilot_adc"]
        assert m.levels[33] == 0 and hw["rcd_test"].value() == 0   # RCD test input idle
        m.levels[34] = 0                                    # open collector pulls low: fault
        assert hw["rcd_fault"].value() == 1
        for pilot_high, pilot_low, duty in ((9000, -12000, 266), (6000, -12000, 100),
                                            (3000, -12000, 960), (6000, -6000, 500)):
            m.wave[0] = _wave(board.adc_mv(pilot_high) * 1000, board.adc_mv(pilot_low) * 1000,
                              duty)
            adc.measure()
            assert abs(adc.high_mv - pilot_high) < 150, (pilot_high, adc.high_mv)
            assert abs(adc.low_mv - pilot_low) < 150, (pilot_low, adc.low_mv)
            assert adc.burst_us >= 0
        m.wave[0] = _wave(board.adc_mv(12000) * 1000, 0, 1000)   # steady +12 V
        adc.measure()
        assert abs(adc.high_mv - 12000) < 150 and adc.high_mv == adc.low_mv
    finally:
        _done()


def test_a_pilot_burst_allocates_nothing():
    # measure() runs in every safety poll, one of them inside each collection (app/safety.py,
    # gcsplit) where the heap is locked: the ADC's read method is bound once, not per burst
    # (a bound method made per burst was 16 bytes, and a MemoryError in there).
    try:
        esp32 = _esp32()
        adc = esp32.PilotADC(36, 2300, 250)
        m.wave[0] = _wave(2043 * 1000, 250 * 1000, 500)
        adc.measure()
        n = allocated(adc.measure)
        assert n in (0, None), n                               # None: CPython
        assert abs(adc.high_mv - 9000) < 150
        # And the pilot driver's poll on it, as the safety poll makes it.
        from hal.sim import SimClock
        from drivers.pilot import Pilot
        clock = SimClock()
        p = Pilot(esp32.PilotPWM(25), adc, clock)
        for _ in range(5):
            clock.advance(10)
            p.poll()
        assert p.state == "B"
        clock.advance(10)
        n = allocated(p.poll)
        assert n in (0, None), n
    finally:
        _done()


def test_pilot_adc_with_an_inverting_front_end():
    try:
        esp32 = _esp32()
        adc = esp32.PilotADC(7, 300, 2700)                    # +12 V reads low at the pin
        m.wave[0] = _wave(600 * 1000, 2700 * 1000, 266)       # +9 V phase reads 600 mV
        adc.measure()
        assert abs(adc.high_mv - 9000) < 150 and abs(adc.low_mv + 12000) < 150
    finally:
        _done()


def test_drivers_run_on_the_esp32_hal():
    # The pilot driver on the ESP32 classes: PWM output and ADC input through the same
    # objects the board wires up.
    from hal.sim import SimClock
    from drivers.pilot import Pilot
    try:
        esp32 = _esp32()
        clock = SimClock()
        pwm = esp32.PilotPWM(25)
        adc = esp32.PilotADC(36, 2300, 250)
        p = Pilot(pwm, adc, clock)

        def ev_b(i):                                          # EV in B: +9 V / -12 V
            if 25 in m.pwms and (i * 23) % 1000 >= pwm.duty():
                return 250000                                 # low phase: -12 V
            return 2043000                                    # +9 V (2043 mV at the pin)
        m.wave[0] = ev_b
        for _ in range(5):
            clock.advance(10)
            p.poll()
        assert p.state == "B"
        p.set_current_limit(16000)
        assert m.pwms[25].u16 == 17432
        for _ in range(5):
            clock.advance(10)
            p.poll()
        assert p.state == "B" and p.fault is None and p.low_mv < -11000
    finally:
        _done()


def test_watchdog_and_clock():
    try:
        esp32 = _esp32()
        w = esp32.Watchdog(8000)
        w.feed()
        assert w._wdt.timeout == 8000 and w._wdt.fed == 1
        c = esp32.Clock()
        assert c.status() == "U"
        c.set_time(1767225600)                                # 2026-01-01T00:00:00Z
        assert m.rtc_set[0][:3] == (2026, 1, 1) and m.rtc_set[0][3] == 3   # a Thursday
        assert c.status() == "S"
        t = c.ticks_ms()
        assert c.ticks_diff(c.ticks_add(t, 5), t) == 5
        assert c.ticks_diff(t, c.ticks_add(t, 5)) == -5
    finally:
        _done()
