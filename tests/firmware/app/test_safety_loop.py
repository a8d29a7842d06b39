# The safety loop nothing blocks (docs/firmware.md): while the charger signs, or waits on an
# MQTT broker that accepted TCP and never answers, its safety watch keeps polling the pilot,
# and an EV that leaves state C has the contactor opened before the operation returns. The
# assertions are on the order of events and the number of polls, never on wall-clock time:
# each poll advances the simulated clock by 10 ms, a stand-in for ESP32 time passing while
# the operation works. Runs on both interpreters; the collection's tests need gcsplit, the
# firmware image's C module (the frozen 32-bit build has it), and pass without it elsewhere.
import gc

from support.mqttpeer import control, sleep_ms
from support.rig import Rig


def _watch(rig, leave_at):
    """Record the safety polls; the EV goes from C to B at poll number leave_at."""
    events = []
    watch = rig.app.safety
    inner = watch.poll
    contactor = rig.charger.contactor

    def poll():
        events.append("poll")
        if events.count("poll") == leave_at:
            rig.ev.set_state("B")
            events.append("ev-left-C")
        rig.clock.advance(10)
        inner()
        if not contactor.closed and "open" not in events:
            events.append("open")
    watch.poll = poll
    return events


def _charging(rig):
    rig.plug_and_charge(seconds=10, power_w=7000)
    assert rig.charger.contactor.closed and rig.relay.contacts_closed()


def test_contactor_opens_in_the_middle_of_a_signature(charger_env):
    rig = Rig(charger_env, safety_poll_us=0)
    try:
        _charging(rig)
        events = _watch(rig, leave_at=5)
        sig = rig.app.keys.sign(b"a receipt")
        events.append("signed")
        assert rig.app.keys.verify(b"a receipt", sig)
        left, opened, signed = (events.index("ev-left-C"), events.index("open"),
                                events.index("signed"))
        assert left < opened < signed, events
        # The pilot debounce (3 polls, 30 ms) and no more: the signer did not hold the loop.
        assert events[left:opened].count("poll") <= 5
        assert events.count("poll") >= 20           # it yielded all the way through
        rig.run(1)
        assert rig.charger.state == "suspended" and not rig.relay.contacts_closed()
    finally:
        rig.close()


def test_contactor_opens_during_a_stalled_mqtt_connect(charger_env, amqtt_broker):
    env = dict(charger_env)
    env["broker"] = amqtt_broker
    control(amqtt_broker, "proxy blackhole")        # TCP accepted, nothing ever answered
    rig = Rig(env, safety_poll_us=0, mqtt_budget_ms=500)
    try:
        link = rig.app.link
        _charging(rig)
        assert not link.connected and link.attempts >= 1
        for _ in range(200):                         # the reconnect backoff (real time)
            if link.retry_in_ms() == 0:
                break
            sleep_ms(50)
        attempts = link.attempts
        events = _watch(rig, leave_at=3)
        link.poll()
        events.append("poll-returned")
        assert link.attempts == attempts + 1 and not link.connected
        left, opened, back = (events.index("ev-left-C"), events.index("open"),
                              events.index("poll-returned"))
        assert left < opened < back, events
        assert events[left:opened].count("poll") <= 5
        assert events.count("poll") >= 10            # the CONNACK wait polled all along
    finally:
        control(amqtt_broker, "proxy up")
        rig.close()


def _gcsplit():
    """The firmware image's C module that polls in the middle of a collection, or None
    (CPython, a stock MicroPython image: there a collection is one gap)."""
    try:
        import gcsplit
    except ImportError:
        return None
    return gcsplit


def _watch_collections(rig):
    """What the polls made from inside a collection saw, recorded without allocating (the
    heap is locked there): [polls inside, contactor closed after the last of them]."""
    seen = [0, True]
    watch = rig.app.safety
    inner = watch.poll
    contactor = rig.charger.contactor

    def poll():
        inner()
        if watch.in_collection:
            seen[0] += 1
            seen[1] = contactor.closed
    watch.poll = poll
    return seen


def _one_poll_from_leaving(rig, state):
    """A collection by the watch (which leaves a sentinel for the next one), then the EV goes
    from C to state and two polls 20 ms apart see it: the pilot's debounce (3 polls over
    30 ms) settles on the third."""
    watch = rig.app.safety
    watch.collect()
    rig.ev.set_state(state)
    for _ in range(2):
        rig.clock.advance(20)
        watch.force()
    assert rig.charger.contactor.closed
    rig.clock.advance(20)


def _collected_after_leaving(rig, split, state):
    """The EV goes from C to state, one poll short of the pilot settling; then the heap's own
    collection (as when it is full, not the watch's): its poll between the mark and the sweep
    must open the contactor before it returns. Returns the callbacks that raised in there."""
    _charging(rig)
    _one_poll_from_leaving(rig, state)
    seen = _watch_collections(rig)
    fired, failed = split.fired(), split.failures()
    gc.collect()
    assert seen == [1, False], seen
    assert split.fired() == fired + 1
    return split.failures() - failed


def test_contactor_opens_in_the_middle_of_a_collection(charger_env):
    # The sentinel the watch left is finalised between the mark and the sweep, and the poll
    # it makes there opens the contactor.
    split = _gcsplit()
    if split is None:
        return
    rig = Rig(charger_env, safety_poll_us=0)
    try:
        assert _collected_after_leaving(rig, split, "B") == 0
        rig.run(1)
        assert rig.charger.state == "suspended" and not rig.relay.contacts_closed()
    finally:
        rig.close()


def test_a_pilot_fault_seen_inside_a_collection_opens_and_is_reported(charger_env):
    # A fault the pilot sees from inside a collection cannot be raised as a PilotFault (the
    # heap is locked: MemoryError instead): session.safety opens the contactor anyway (the
    # fault handled there, not swallowed by gcsplit) and the next pass reports it under its
    # own code.
    split = _gcsplit()
    if split is None:
        return
    rig = Rig(charger_env, safety_poll_us=0)
    try:
        assert _collected_after_leaving(rig, split, "E") == 0
        rig.run(1)
        assert rig.charger.state == "fault" and rig.charger.fault["code"] == "pilot-state-E"
        assert not rig.relay.contacts_closed()
    finally:
        rig.close()


def test_contactor_opens_in_the_middle_of_a_collections_marking(charger_env):
    # With slices (every gc_slice_us of the collector's work, here every tick of its loop
    # hook) the poll that opens comes while the collector is still marking: before the
    # sentinel's poll between the mark and the sweep.
    split = _gcsplit()
    if split is None:
        return
    rig = Rig(charger_env, safety_poll_us=0, gc_slice_us=1)
    try:
        _charging(rig)
        _one_poll_from_leaving(rig, "B")
        watch = rig.app.safety
        at_open = [-1, -1]                  # the watch's slices and splits when it opened
        inner = watch.poll
        contactor = rig.charger.contactor

        def poll():
            inner()
            if not contactor.closed and at_open[0] < 0:
                at_open[0] = watch.slices
                at_open[1] = watch.splits
        watch.poll = poll
        slices, splits = watch.slices, watch.splits
        gc.collect()
        assert at_open[0] == slices + 1 and at_open[1] == splits, (at_open, slices, splits)
        assert watch.splits == splits + 1   # and the sentinel's poll still came after
        rig.run(1)
        assert rig.charger.state == "suspended" and not rig.relay.contacts_closed()
    finally:
        split.slices(None, 0)
        rig.close()
