# Contactor driver against the simulated relay and its auxiliary contact.
from support.fwtest import raises
from hal.sim import SimClock, SimRelay, SimOutputPin, SimInputPin
from drivers.contactor import Contactor, ContactorFault, ContactorError


def _rig(delay_ms=30, settle_ms=100):
    clock = SimClock()
    relay = SimRelay(clock, delay_ms=delay_ms)
    return clock, relay, Contactor(relay, relay.feedback, clock, settle_ms=settle_ms)


def _run(clock, c, ms, step=10):
    for _ in range(ms // step):
        clock.advance(step)
        c.check()


def test_close_and_open_follow_feedback_without_fault():
    clock, relay, c = _rig()
    c.close()
    assert c.closed and relay.value() == 1
    _run(clock, c, 300)
    assert c.feedback_closed() and relay.contacts_closed()
    c.open()
    assert not c.closed and relay.value() == 0
    _run(clock, c, 300)
    assert not c.feedback_closed() and c.fault is None


def test_slow_contact_within_settle_time_is_not_a_fault():
    clock, relay, c = _rig(delay_ms=90, settle_ms=100)
    c.close()
    _run(clock, c, 80)               # still open, but inside the settle time
    assert not c.feedback_closed()
    _run(clock, c, 200)
    assert c.feedback_closed() and c.fault is None


def test_stuck_open_contact_is_did_not_close_and_coil_dropped():
    clock, relay, c = _rig()
    relay.fault = "stuck_open"
    c.close()
    clock.advance(99)
    assert c.check() is False        # not yet: settle time not over
    clock.advance(1)
    exc = raises(ContactorFault, c.check)
    assert exc.reason == "did-not-close"
    assert relay.value() == 0 and not c.closed and c.fault == "did-not-close"
    assert c.check() is False        # reported once, not on every pass
    assert raises(ContactorFault, c.close).reason == "did-not-close"
    assert relay.value() == 0


def test_contact_dropping_out_while_closed_is_a_fault():
    clock, relay, c = _rig()
    c.close()
    _run(clock, c, 200)
    relay.fault = "stuck_open"       # coil supply lost / contact fell open
    _run(clock, c, 90)
    exc = raises(ContactorFault, _run, clock, c, 50)
    assert exc.reason == "did-not-close" and relay.value() == 0


def test_welding_at_open_is_did_not_open():
    clock, relay, c = _rig()
    c.close()
    _run(clock, c, 200)
    relay.fault = "welded"           # welded by the load current
    c.open()
    assert relay.value() == 0        # coil off first, whatever follows
    exc = raises(ContactorFault, _run, clock, c, 200)
    assert exc.reason == "did-not-open"
    assert raises(ContactorFault, c.close).reason == "did-not-open"
    assert relay.value() == 0


def test_welded_contact_found_idle_and_before_closing():
    clock, relay, c = _rig()
    relay.fault = "welded"
    exc = raises(ContactorFault, _run, clock, c, 200)
    assert exc.reason == "welded"
    # A fresh driver (after a reboot) refuses to energise onto a closed contact.
    c2 = Contactor(relay, relay.feedback, clock, settle_ms=100)
    assert raises(ContactorFault, c2.close).reason == "welded"
    assert relay.value() == 0 and not c2.closed


def test_feedback_glitch_shorter_than_settle_is_ignored():
    clock = SimClock()
    relay = SimOutputPin()
    fb = SimInputPin(0)
    c = Contactor(relay, fb, clock, settle_ms=50)
    fb.level = 1                     # a 40 ms bounce while idle
    _run(clock, c, 40)
    fb.level = 0
    _run(clock, c, 200)
    assert c.fault is None


def test_reset_needs_the_contact_open():
    clock, relay, c = _rig()
    relay.fault = "welded"
    raises(ContactorFault, c.close)
    assert raises(ContactorFault, c.reset).reason == "welded"
    relay.fault = None               # repaired
    clock.advance(100)
    c.reset()
    assert c.fault is None
    c.close()
    _run(clock, c, 200)
    assert c.feedback_closed()


def test_open_never_raises_and_is_idempotent():
    clock, relay, c = _rig()
    relay.fault = "welded"
    c.open()
    c.open()
    assert relay.value() == 0


def test_ticks_wrap_does_not_fake_or_hide_a_fault():
    clock = SimClock(ticks=(1 << 30) - 40)    # ticks wrap 40 ms after the close command
    relay = SimRelay(clock, delay_ms=20)
    c = Contactor(relay, relay.feedback, clock, settle_ms=100)
    c.close()
    _run(clock, c, 300)
    assert c.fault is None and c.feedback_closed()
    relay.fault = "stuck_open"
    exc = raises(ContactorFault, _run, clock, c, 200)
    assert exc.reason == "did-not-close"


def test_bad_settle_time_is_refused():
    clock = SimClock()
    relay = SimRelay(clock)
    raises(ContactorError, Contactor, relay, relay.feedback, clock, 0)


def test_reclosing_during_drop_out_is_not_welding():
    # The EV pauses (C -> B) and asks again (B -> C) before the contact has dropped out.
    clock, relay, c = _rig(delay_ms=30, settle_ms=100)
    c.close()
    _run(clock, c, 200)
    c.open()
    clock.advance(10)
    assert c.feedback_closed()          # still dropping out
    c.close()
    assert relay.value() == 1 and c.fault is None
    _run(clock, c, 300)
    assert c.feedback_closed() and c.fault is None
    # But once the settle time is over, a closed contact under an open command is welded.
    relay.fault = "welded"
    c.open()
    clock.advance(150)
    assert raises(ContactorFault, c.close).reason == "welded"
