# The simulated hal: the devices behave as the hardware they stand in for.
from support.fwtest import raises
from hal.clock import RealClock
from hal.sim import (EnergyFlow, SimClock, SimRelay, SimEV, SimPilot, SimWatchdog,
                     SimOutputPin, SimError, TICKS_PERIOD)


def test_clock_moves_only_when_told_and_keeps_wall_and_ticks_apart():
    c = SimClock(epoch=1767225600, ticks=5)
    assert c.time() == 1767225600 and c.ticks_ms() == 5 and c.status() == "S"
    c.advance(1500)
    assert c.time() == 1767225601 and c.ticks_ms() == 1505
    c.set_time(1800000000, status="U")           # NTP step: ticks do not jump
    assert c.time() == 1800000000 and c.status() == "U" and c.ticks_ms() == 1505
    c.sleep_ms(500)
    assert c.time_ms() == 1800000000500
    raises(SimError, c.advance, -1)


def test_ticks_wrap_like_micropython():
    c = SimClock(ticks=TICKS_PERIOD - 10)
    t0 = c.ticks_ms()
    c.advance(25)
    t1 = c.ticks_ms()
    assert t1 == 15                               # wrapped
    assert c.ticks_diff(t1, t0) == 25 and c.ticks_diff(t0, t1) == -25
    assert c.ticks_add(t0, 25) == t1
    assert c.ticks_add(t1, -25) == t0


def test_real_clock_interface_on_this_interpreter():
    c = RealClock()
    a = c.ticks_ms()
    c.sleep_ms(2)
    b = c.ticks_ms()
    assert c.ticks_diff(b, a) >= 0 and c.ticks_diff(c.ticks_add(a, 7), a) == 7
    assert c.time() > 1600000000 and isinstance(c.time(), int)


def test_relay_contacts_follow_the_coil_after_the_delay():
    clock = SimClock()
    r = SimRelay(clock, delay_ms=30)
    r.on()
    assert r.value() == 1 and r.feedback.value() == 0
    clock.advance(29)
    assert not r.contacts_closed()
    clock.advance(1)
    assert r.contacts_closed() and r.feedback.value() == 1
    r.off()
    clock.advance(10)
    assert r.contacts_closed()                    # drop-out takes time too
    clock.advance(20)
    assert not r.contacts_closed()
    assert r.operations == 2


def test_relay_faults():
    clock = SimClock()
    r = SimRelay(clock, delay_ms=10)
    r.fault = "stuck_open"
    r.on()
    clock.advance(100)
    assert r.feedback.value() == 0
    r.fault = "welded"
    r.off()
    clock.advance(100)
    assert r.feedback.value() == 1


def test_output_pin():
    p = SimOutputPin()
    p.on()
    assert p.value() == 1
    p.value(0)
    assert p.value() == 0


def test_ev_levels_per_state_with_and_without_diode():
    line = SimPilot(SimEV("A"))
    expect = {"A": 12000, "B": 9000, "C": 6000, "D": 3000}
    for s in ("A", "B", "C", "D"):
        line.ev.set_state(s)
        line.set_duty(1000)                       # steady +12 V: no low phase
        line.measure()
        assert (line.high_mv, line.low_mv) == (expect[s], expect[s])
        line.set_duty(266)
        line.measure()
        assert (line.high_mv, line.low_mv) == (expect[s], -12000)
    line.ev.diode = False
    line.ev.set_state("C")
    line.measure()
    assert (line.high_mv, line.low_mv) == (6000, -6000)
    line.ev.set_state("E")
    line.measure()
    assert (line.high_mv, line.low_mv) == (0, 0)
    line.ev.set_state("B")
    line.set_duty(0)                              # charger holds -12 V
    line.measure()
    assert line.high_mv == -12000
    raises(SimError, line.ev.set_state, "X")
    raises(SimError, line.set_duty, 1001)


def test_ev_reading_of_the_duty_table_a8():
    ev = SimEV("C", max_ma=16000)
    assert ev.offered_ma(50) == 0                 # 5 %: digital communication only
    assert ev.offered_ma(90) == 6000              # 8..10 %: 6 A
    assert ev.offered_ma(500) == 30000            # 50 % * 0.6
    assert ev.offered_ma(900) == 65000            # (90 - 64) * 2.5
    assert ev.offered_ma(965) == 80000
    assert ev.offered_ma(980) == 0 and ev.offered_ma(1000) == 0
    assert ev.draw_ma(500) == 16000               # limited by the car
    assert ev.draw_ma(166) == 9960
    ev.set_state("B")
    assert ev.draw_ma(500) == 0                   # B: not asking


def test_forced_levels_override_the_ev():
    line = SimPilot(SimEV("B"))
    line.force_mv(7500, -12000)
    line.measure()
    assert (line.high_mv, line.low_mv) == (7500, -12000)
    line.force_mv()
    line.measure()
    assert line.high_mv == 9000


def test_watchdog_expires_without_feeding():
    clock = SimClock()
    w = SimWatchdog(clock, timeout_ms=1000)
    clock.advance(900)
    w.feed()
    clock.advance(1000)
    assert not w.expired()
    clock.advance(1)
    assert w.expired() and w.feeds == 1


def _burst(high, low, duty, n, period, noise=0, edge=0):
    # n samples of a PWM waveform read every period us with a 1000 us cycle, starting at phase 0;
    # noise: alternating +-noise (zero mean); edge: samples within edge us of a switch read midway.
    from array import array
    buf = array("i", [0] * n)
    on_us = duty * 1000 // 1000
    for i in range(n):
        t = (i * period + 7) % 1000
        if edge and (abs(t - on_us) < edge or t < edge):
            v = (high + low) // 2
        else:
            v = high if t < on_us else low
        buf[i] = v + (noise if i % 2 else -noise)
    return buf


def test_pilot_levels_from_an_unsynchronised_burst():
    from array import array
    from hal.pilot_levels import levels
    out = array("i", [0, 0])
    # 10 % duty (shortest high phase) and 96 % (shortest low phase), 25 us per read.
    for duty in (100, 266, 533, 960):
        buf = _burst(2100000, 250000, duty, 64, 25, noise=30000, edge=3)
        levels(buf, 64, 150000, out)
        assert abs(out[0] - 2100000) <= 30000 and abs(out[1] - 250000) <= 30000, (duty, out)
    # A steady line (no PWM): both levels are its mean, noise averaged out.
    buf = _burst(2100000, 2100000, 500, 64, 25, noise=30000)
    levels(buf, 64, 150000, out)
    assert out[0] == out[1] and abs(out[0] - 2100000) <= 5000
    raises(ValueError, levels, buf, 0, 1, out)


def test_ev_model_asks_charges_and_stops_when_full():
    ev = SimEV(max_ma=16000, phases=3, volts=230)
    assert ev.step(266, 1000, False) == 0 and ev.state == "A"
    ev.plug(need_wh=11)
    ev.step(1000, 100, False)
    assert ev.state == "B"                        # no PWM: nothing offered, it waits
    ev.step(533, 100, False)
    assert ev.state == "C"                        # 32 A offered: it asks
    w = ev.step(533, 3600, True)                  # the car takes its own 16 A
    assert w == 16000 * 230 * 3 // 1000 == 11040
    assert ev.delivered_wh() == 11                # 11040 W for 3.6 s
    ev.step(533, 10, True)
    assert ev.state == "B"                        # full
    assert ev.step(533, 1000, True) == 0          # B draws nothing
    ev.plug(need_wh=100)
    ev.step(533, 10, False)
    assert ev.state == "C"
    ev.step(1000, 10, True)                       # offer withdrawn (PWM off)
    assert ev.state == "B"
    ev.unplug()
    assert ev.state == "A"


def test_clock_passes_allocate_nothing_on_32_bit():
    # An epoch in seconds (let alone ms) is a big integer on the ESP32's 31-bit small ints: the
    # clock moves only small parts, and time() makes its value once per second, not per pass.
    import sys
    if sys.implementation.name != "micropython":
        return
    import gc
    c = SimClock(epoch=1800000000)
    c.advance(20)
    c.time()
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(48):                       # within the first second: nothing at all
            c.advance(20)
            c.ticks_diff(c.ticks_ms(), 0)
            c.time()
        within = gc.mem_alloc() - before
        before = gc.mem_alloc()
        for _ in range(500):                      # ten seconds of 20 ms passes
            c.advance(20)
            c.ticks_diff(c.ticks_ms(), 0)
            c.time()
        ten_s = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert within == 0, within
    assert ten_s <= 10 * 32, ten_s                # one epoch value per second at most
    assert c.time() == 1800000000 + 10


def test_energy_flow_counts_whole_wh_and_loses_no_remainder():
    flow = EnergyFlow()
    gained = [flow.add(11000, 100) for _ in range(36)]   # 11 kW for 3.6 s = 11 Wh
    assert sum(gained) == 11 and max(gained) == 1         # whole Wh, as soon as each is due
    assert flow.add(0, 100000) == 0                       # no power, no energy
    assert sum(flow.add(7, 1000) for _ in range(3600)) == 7   # 7 W for an hour, in 1 s steps
