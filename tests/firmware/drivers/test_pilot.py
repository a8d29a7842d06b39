# Control pilot driver (IEC 61851-1 Annex A) against the simulated EV and pilot line.
from support.fwtest import raises
from hal.sim import SimClock, SimEV, SimPilot
from drivers.pilot import (Pilot, PilotFault, PilotError, classify, duty_from_current,
                           current_from_duty)


def _rig(state="A", diode=True, max_ma=80000, debounce_ms=30, polls=3):
    clock = SimClock()
    ev = SimEV(state, diode=diode)
    line = SimPilot(ev)
    return clock, ev, line, Pilot(line, line, clock, max_ma=max_ma, debounce_ms=debounce_ms,
                                  debounce_polls=polls)


def _settle(clock, p, n=6, step=10):
    s = None
    for _ in range(n):
        clock.advance(step)
        s = p.poll()
    return s


def test_every_state_a_to_d_is_read_from_the_ev():
    clock, ev, line, p = _rig()
    assert _settle(clock, p) == "A"
    p.set_current_limit(16000)
    for s in ("B", "C", "D", "B", "A"):
        ev.set_state(s)
        assert _settle(clock, p) == s
        assert p.fault is None


def test_no_state_before_debounce_and_glitch_is_ignored():
    clock, ev, line, p = _rig()
    assert p.poll() is None           # nothing settled yet
    _settle(clock, p)
    ev.set_state("B")
    clock.advance(10)
    assert p.poll() == "A"            # one reading is not a state
    ev.set_state("A")                 # it was a glitch
    assert _settle(clock, p) == "A"
    ev.set_state("B")
    # Three polls inside 30 ms are not enough: both the count and the time must be met.
    for _ in range(3):
        clock.advance(5)
        assert p.poll() == "A"
    clock.advance(20)
    assert p.poll() == "B"


def test_band_edges_of_the_standard():
    # IEC 61851-1 Annex A: nominal +-1 V; levels in the gaps are no state.
    cases = [(13000, "A"), (11000, "A"), (10999, "?"), (10000, "B"), (8000, "B"),
             (7999, "?"), (7000, "C"), (5000, "C"), (4999, "?"), (4000, "D"), (2000, "D"),
             (1999, "?"), (1000, "E"), (-1000, "E"), (-1001, "?"), (-11000, "F"),
             (-13000, "F"), (-13001, "?"), (13001, "?")]
    for mv, want in cases:
        assert classify(mv) == want, (mv, classify(mv), want)


def test_band_edges_through_the_driver():
    clock, ev, line, p = _rig()
    p.set_current_limit(10000)
    line.force_mv(8000, -11000)       # lowest B, highest acceptable low level
    assert _settle(clock, p) == "B"
    line.force_mv(7000, -13000)
    assert _settle(clock, p) == "C"
    line.force_mv(7500, -12000)       # between C and B
    exc = raises(PilotFault, _settle, clock, p)
    assert exc.reason == "invalid-level"


def test_duty_for_the_current_limits_of_table_a7():
    assert duty_from_current(6000) == 100        # 10 %
    assert duty_from_current(10000) == 166       # 16.6 %
    assert duty_from_current(16000) == 266       # 26.6 % (rounded down: 15.96 A)
    assert duty_from_current(32000) == 533       # 53.3 %
    assert duty_from_current(51000) == 850       # 85 %
    assert duty_from_current(63000) == 892       # 89.2 %
    assert duty_from_current(80000) == 960       # 96 %
    for bad in (5999, 80001, -1, 16.0, None):
        raises(PilotError, duty_from_current, bad)


def test_duty_current_round_trip_over_the_whole_range():
    for duty in range(100, 961):
        assert duty_from_current(current_from_duty(duty)) == duty
    ma = 6000
    while ma <= 80000:
        d = duty_from_current(ma)
        got = current_from_duty(d)
        assert got <= ma, (ma, d, got)                 # never offer more than the limit
        assert ma - got < (60 if ma <= 51000 else 1750), (ma, got)   # and not much less
        ma += 17
    for bad in (99, 961, 0, 1000, 50):
        raises(PilotError, current_from_duty, bad)


def test_ev_reads_what_the_charger_offers():
    # The simulated EV's own reading of the duty (Table A.8) agrees with the driver.
    clock, ev, line, p = _rig("C")
    for ma in (6000, 13000, 16000, 20000, 32000, 51000, 52000, 63000, 80000):
        p.set_current_limit(ma)
        assert ev.offered_ma(line.duty()) == p.offered_ma()
        assert p.offered_ma() <= ma


def test_set_current_limit_clamps_to_rating_and_stops_below_6a():
    clock, ev, line, p = _rig(max_ma=32000)
    assert p.set_current_limit(63000) == 533     # clamped to the rated 32 A
    assert p.offered_ma() == 31980
    assert p.set_current_limit(5000) == 1000     # no PWM: nothing offered
    assert p.offered_ma() == 0
    raises(PilotError, p.set_current_limit, -1)
    raises(PilotError, p.set_current_limit, 16.5)
    assert line.duty() == 1000                   # bad input changed nothing
    raises(PilotError, Pilot, line, line, clock, 5000)


def test_missing_diode_is_a_fault_only_with_pwm():
    clock, ev, line, p = _rig("B", diode=False)
    assert _settle(clock, p) == "B"              # steady +12 V: no low phase to check
    p.set_current_limit(16000)
    exc = raises(PilotFault, _settle, clock, p)
    assert exc.reason == "diode" and p.fault == "diode"
    assert _settle(clock, p) == "F"              # reported once, then a steady "F"
    p.set_idle()
    assert _settle(clock, p) == "B" and p.fault is None


def test_state_e_and_f_are_faults():
    clock, ev, line, p = _rig("B")
    _settle(clock, p)
    ev.set_state("E")
    exc = raises(PilotFault, _settle, clock, p)
    assert exc.reason == "state-E" and p.state == "E"
    ev.set_state("F")
    exc = raises(PilotFault, _settle, clock, p)
    assert exc.reason == "state-F"
    ev.set_state("B")
    assert _settle(clock, p) == "B"


def test_own_error_signal_is_not_a_fault_but_a_short_is():
    clock, ev, line, p = _rig("C")
    p.set_current_limit(16000)
    _settle(clock, p)
    p.signal_error()
    assert line.duty() == 0
    assert _settle(clock, p) == "F" and p.fault is None
    ev.set_state("E")
    assert raises(PilotFault, _settle, clock, p).reason == "state-E"


def test_unplug_after_error_is_seen_once_idle():
    clock, ev, line, p = _rig("C")
    p.set_current_limit(16000)
    _settle(clock, p)
    p.signal_error()
    _settle(clock, p)
    ev.set_state("A")
    assert _settle(clock, p) == "F"              # the EV is invisible under -12 V
    p.set_idle()
    assert _settle(clock, p) == "A"


def test_debounce_survives_ticks_wrap():
    clock = SimClock(ticks=(1 << 30) - 15)
    ev = SimEV("A")
    line = SimPilot(ev)
    p = Pilot(line, line, clock)
    assert _settle(clock, p) == "A"
    ev.set_state("B")
    assert _settle(clock, p) == "B"


def test_poll_allocates_nothing_on_micropython():
    # The control loop polls the pilot every few ms for hours: no garbage per poll.
    from support.fwtest import is_micropython
    if not is_micropython():
        return                                   # CPython has no gc.mem_alloc

    class SteadyC:                               # a line in state C, allocating nothing
        high_mv = 6000
        low_mv = -12000

        def measure(self):
            pass
    import gc
    clock = SimClock()
    line = SimPilot(SimEV("C"))
    p = Pilot(line, SteadyC(), clock)
    p.set_current_limit(16000)

    def polls(n):
        for _ in range(n):
            clock.advance(10)
            p.poll()
    polls(10)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        polls(500)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert p.state == "C"
    assert used == 0, used


def test_a_flickering_line_becomes_a_fault():
    # A loose contact: the level jumps between B and C faster than the debounce; the last
    # stable state (C) must not stand for ever.
    clock, ev, line, p = _rig("C")
    p.set_current_limit(16000)
    assert _settle(clock, p) == "C"
    seen = []
    exc = None
    for i in range(100):
        ev.set_state("B" if i % 2 else "C")
        clock.advance(10)
        try:
            seen.append(p.poll())
        except PilotFault as e:
            exc = e
            break
    assert exc is not None and exc.reason == "unstable", seen
    assert 45 <= len(seen) <= 55                  # after about unstable_ms (500 ms)
    assert set(seen) == {"C"}                     # never a flicker reported as a state
    ev.set_state("B")
    clock.advance(10)
    assert p.poll() == "F"                        # reported once, then "F" until it settles
    assert _settle(clock, p) == "B" and p.fault is None


def test_a_pause_in_polling_is_not_instability():
    # The loop stalls 600 ms (a slow meter read) while the EV goes from B to C: that is one
    # state change seen late, not a line that keeps changing.
    clock, ev, line, p = _rig("B")
    p.set_current_limit(16000)
    assert _settle(clock, p) == "B"
    ev.set_state("C")
    clock.advance(600)
    assert p.poll() == "B"                        # not yet debounced, and no fault
    assert _settle(clock, p) == "C" and p.fault is None
