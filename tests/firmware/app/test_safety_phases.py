# The safety watch is called all through every long phase of a whole session (docs/firmware.md,
# "Safety loop"): the polls are counted per operation, never timed, so a change that takes a
# hook out of the signer, the verifier, a flash write, the Modbus wait or the MQTT read loop
# fails here. Runs on both interpreters.
import gc
import json

from hal.sim import SimClock
from session import charger as ch
from store import atomic
from store.journal import Journal
from support.mqttpeer import Peer, wait_for
from support.rig import Rig

SLICE_US = 50           # the bench's wait slice: the Modbus frame gap is waited in such slices


def _counting(rig):
    """Count the watch's polls by the labelled operation running (else the loop's phase)."""
    watch = rig.app.safety
    counts = {}
    running = [None]
    inner = watch.poll

    def poll():
        key = running[0] or watch.phase
        counts[key] = counts.get(key, 0) + 1
        inner()
    watch.poll = poll

    def during(obj, name, label, calls=None):
        f = getattr(obj, name)

        def g(*a, **k):
            outer = running[0]
            running[0] = label
            if calls is not None:
                calls[label] = calls.get(label, 0) + 1
            try:
                return f(*a, **k)
            finally:
                running[0] = outer
        setattr(obj, name, g)
    return counts, during


def _command(rig, peer, raw):
    peer.publish(b"cp/CP-TEST-1/cmd", raw.encode())
    got = []

    def step():
        rig.run(0.1)
        peer.pump()
        got.extend(peer.take(b"cp/CP-TEST-1/cmd/result"))
    wait_for(lambda: got, step)
    return json.loads(got[0][1])


def test_every_long_phase_of_a_session_polls_the_watch(charger_env, amqtt_broker, app_commands):
    env = dict(charger_env)
    env["broker"] = amqtt_broker
    rig = Rig(env, clock=SimClock(epoch=app_commands["t0"]),
              operator_key=app_commands["operator_spki"], telemetry_interval_s=1,
              safety_poll_us=0, wait_slice_us=SLICE_US)
    peer = Peer(amqtt_broker, "operator", [b"cp/CP-TEST-1/cmd/result"])
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        counts, during = _counting(rig)
        calls = {}
        app = rig.app
        during(app.link.verifier, "verify", "verify", calls)
        during(app.keys, "sign", "sign", calls)
        during(app.records, "_queue", "queue", calls)
        during(app.charger.meter, "read", "meter", calls)
        during(app.link, "_receive", "receive", calls)
        msgs = app_commands["msgs"]
        rig.ev.set_state("B")
        rig.run(1)
        assert _command(rig, peer, msgs["start"])["result"] == "ok"
        rig.ev.set_state("C")
        rig.run(5, power_w=7000)
        assert rig.relay.contacts_closed()
        assert _command(rig, peer, msgs["tariff"])["result"] == "ok"
        # Twenty acks nobody can check, queued at the broker: the read loop polls per packet.
        bad = app.link.bad_acks
        for i in range(20):
            peer.publish(b"cp/CP-TEST-1/ack/v9", b'{"seq":%d,"sha256":"00"}' % i)
        wait_for(lambda: app.link.bad_acks >= bad + 20, lambda: rig.run(0.1))
        rig.unplug()
        assert rig.charger.state == ch.IDLE and len(rig.receipts()) == 1

        # A command's signature: a hook per doubling and per addition (170 for the comb; 113
        # with one hook per doubling-and-addition step).
        assert counts["verify"] >= 160 * calls["verify"], (counts, calls)
        # The receipt's three signatures: 109 hooks each (94 with one per comb step).
        assert calls["sign"] >= 3 and counts["sign"] >= 105 * calls["sign"], (counts, calls)
        # The receipt and checkpoint into the outbox: around each flash write and between
        # each 512 bytes of the receipt.
        receipt_len = len(app.outbox.get(app.outbox.last_seq - 1)[1])
        assert counts["queue"] >= 4 + receipt_len // atomic.CHUNK, (counts, receipt_len)
        # Each meter read polls while its reply is awaited...
        assert counts["meter"] >= calls["meter"], (counts, calls)
        # ...and while it waits the line's inter-frame gap (here made 20 ms long, the last
        # frame just ended): in slices, with the watch between them.
        master = app.charger.meter.master
        master.gap_us = 20000
        before = counts["meter"]
        master._last_us = master.clock.ticks_us()
        app.charger.meter.read()
        assert counts["meter"] - before >= 20000 // SLICE_US // 2, counts["meter"] - before
        # The MQTT read loop: the watch before every packet read.
        assert counts["receive"] >= 20, counts
        # Collections run by the watch between two polls (MicroPython), not inside the signer.
        if hasattr(gc, "threshold"):
            assert app.safety.collects >= 3 * calls["sign"], app.safety.collects
    finally:
        peer.close()
        rig.close()


def test_journal_reads_poll_between_records(tmp_path):
    """Finding a record (an ack's outbox look-up) reads and checks each one before it: the
    hook between them."""
    j = Journal(str(tmp_path) + "/j", segment_bytes=65536)
    for i in range(6):
        j.append((bytes(range(256)) * 4,))
    calls = []
    prev = atomic.set_idle(lambda: calls.append(1))
    try:
        got = [s for s, _ in j.records(4)]
        assert got == [5, 6] and len(calls) >= 5, (got, len(calls))
    finally:
        atomic.set_idle(prev)


def test_flash_writes_poll_between_every_chunk(tmp_path):
    """A record written whole or appended to a journal: the hook between every CHUNK bytes."""
    calls = []
    prev = atomic.set_idle(lambda: calls.append(1))
    try:
        data = bytes(range(256)) * 16                       # 4 KiB
        atomic.write(str(tmp_path) + "/rec", data)
        assert atomic.read(str(tmp_path) + "/rec") == data
        assert len(calls) >= len(data) // atomic.CHUNK + 2, len(calls)
        del calls[:]
        j = Journal(str(tmp_path) + "/j", segment_bytes=8192)
        j.append((data[:2000], data[2000:3500]))
        assert len(calls) >= 3500 // atomic.CHUNK + 1, len(calls)
        assert [bytes(d) for _, d in j.records(0)] == [data[:3500]]
    finally:
        atomic.set_idle(prev)


class _Trace:
    """Watches the app's polls and the entries ("name<") and exits ("name>") of the calls
    marked with mark(obj, name); for each pair (first, then, within) it counts how often the
    trace went from event first to the next event then (inside a call to within, if given)
    and the fewest polls seen in between. Kept as counters, not a log: the 32-bit heap."""

    def __init__(self, rig, pairs):
        self.pairs = {}
        for p in pairs:
            self.pairs[p] = [0, 1 << 30, None]      # seen, fewest polls, polls since first
        self.depth = {}
        watch = rig.app.safety
        inner = watch.poll

        def poll():
            self.note("poll")
            inner()
        watch.poll = poll

    def mark(self, obj, name):
        f = getattr(obj, name)
        enter, leave = name + "<", name + ">"

        def g(*a, **k):
            self.depth[name] = self.depth.get(name, 0) + 1
            self.note(enter)
            try:
                return f(*a, **k)
            finally:
                self.note(leave)
                self.depth[name] -= 1
        setattr(obj, name, g)

    def note(self, e):
        for (first, then, within), st in self.pairs.items():
            if within is not None and not self.depth.get(within):
                continue
            if e == "poll":
                if st[2] is not None:
                    st[2] += 1
            elif e == first:
                st[2] = 0
            elif e == then and st[2] is not None:
                st[0] += 1
                if st[2] < st[1]:
                    st[1] = st[2]
                st[2] = None

    def __call__(self, first, then, within=None):
        """(times seen, fewest polls between)"""
        seen, fewest, _ = self.pairs[(first, then, within)]
        return seen, fewest


# The pieces of a pass that must have a poll between them: (event first, event then, inside a
# call to (or None), fewest times seen in the scenario, fewest polls between).
PASS_PIECES = (
    # The meter: its reply in, then polled before the decoding, and after the decoding before
    # the reading is booked and the session's step runs.
    ("read_registers>", "decode<", None, 3, 1),
    ("decode>", "read>", None, 3, 1),
    ("read>", "_step_session<", None, 3, 1),
    # Telemetry: the price so far, then the message; and the message before the OTA step.
    ("status>", "telemetry<", None, 3, 1),
    ("telemetry>", "step<", None, 3, 1),
    # The telemetry message made (its values, the session's id as JSON), then framed.
    ("telemetry<", "_publish<", "telemetry", 3, 1),
    # The health message sent, then the pass's end.
    ("health>", "tidy<", None, 1, 1),
    # Every QoS 0 message (telemetry, health, status, results) framed, then sent.
    ("publish>", "flush<", "_publish", 5, 1),
    # A packet is read in pieces (length, topic, packet id, payload), the watch between.
    ("check_msg<", "cb<", None, 4, 3),
    # A command packet read, then its MAC screened.
    ("cb<", "offer<", None, 2, 1),
    # Acks: the packet read, then the MAC; the MAC, then the outbox's update.
    ("cb<", "check<", None, 2, 1),
    ("check>", "ack<", None, 2, 1),
    # A tariff command: its JSON, its checks, its canonical form and hash are pieces.
    ("set_tariff<", "write<", None, 1, 3),
)


def test_the_pieces_of_each_pass_are_apart(charger_env, amqtt_broker, app_commands):
    """A pass of the main loop that does several things polls between them (docs/firmware.md,
    "Safety loop"): the meter's reply and its decoding, the reading and the session's step,
    the telemetry's price and its message, the message made and framed, a message framed and its send, a packet read and
    its MAC check, an ack's check and the outbox's update, a tariff's JSON, checks and hash."""
    from drivers import meter as meter_mod
    from support import acking
    from uplink.acks import AckChecker
    env = dict(charger_env)
    env["broker"] = amqtt_broker
    rig = Rig(env, clock=SimClock(epoch=app_commands["t0"]),
              operator_key=app_commands["operator_spki"], telemetry_interval_s=1, health_interval_s=1,
              safety_poll_us=0, wait_slice_us=SLICE_US)
    peer = Peer(amqtt_broker, "operator", [b"cp/CP-TEST-1/cmd/result"])
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        app = rig.app
        link = app.link
        link.ack_checker = AckChecker("CP-TEST-1", acking.KEYS)
        pairs = tuple(piece[:3] for piece in PASS_PIECES)
        trace = _Trace(rig, pairs)
        mark = trace.mark
        meter = app.charger.meter
        mark(meter.master, "read_registers")
        mark(meter, "read")
        mark(meter_mod, "decode")                 # a module function: Meter.read looks it up
        mark(app.charger, "_step_session")
        mark(app.charger, "status")
        mark(link, "telemetry")
        mark(link, "health")
        mark(app.safety, "tidy")
        mark(app.ota, "step")
        mark(link, "_publish")
        mark(link.client, "publish")
        mark(link.client.sock, "flush")
        mark(link.inbox, "offer")
        mark(link.client, "cb")                   # umqtt.simple's callback: link._on_message
        mark(link.client, "check_msg")
        mark(link.ack_checker, "check")
        mark(app.outbox, "ack")
        mark(app.billing, "set_tariff")
        mark(atomic, "write")
        msgs = app_commands["msgs"]
        rig.ev.set_state("B")
        rig.run(1)
        assert _command(rig, peer, msgs["start"])["result"] == "ok"
        rig.ev.set_state("C")
        rig.run(5, power_w=7000)
        assert _command(rig, peer, msgs["tariff"])["result"] == "ok"
        rig.unplug()
        assert app.outbox.pending() >= 2          # the receipt and its checkpoint
        for s in range(1, app.outbox.last_seq + 1):
            rec = app.outbox.get(s)
            peer.publish(b"cp/CP-TEST-1/ack/v1", acking.ack(
                "CP-TEST-1", "v1", ("receipt", "checkpoint")[rec[0]], s, rec[1]))
        wait_for(lambda: app.outbox.pending() == 0, lambda: rig.run(0.1))

        for first, then, within, times, polls_between in PASS_PIECES:
            seen, polls = trace(first, then, within)
            assert seen >= times and polls >= polls_between, (first, then, seen, polls)
    finally:
        peer.close()
        rig.close()
