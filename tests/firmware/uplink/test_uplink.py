# uplink.mqtt against real brokers (amqtt in-process and Mosquitto) through a fault proxy.
# The "validator" here is a second umqtt.simple client that sends authenticated acks.
import json

from support.fwtest import raises
from store.journal import JournalFull
from uplink.outbox import Outbox
from uplink.mqtt import Link
from support.mqttpeer import Peer, control, wait_for, sleep_ms
from support import acking
from uplink.acks import AckChecker

CP = "CP-T1"


def _link(broker, box, **kw):
    args = dict(keepalive_s=4, timeout_ms=800, backoff_min_ms=50, backoff_max_ms=400,
                ack_checker=AckChecker(CP, acking.KEYS))
    args.update(kw)
    return Link(CP, broker["host"], broker["port"], box, **args)


def _validator(broker, name="v1"):
    return Peer(broker, "validator-" + name, [b"cp/+/receipt/+", b"cp/+/checkpoint/+"])


def _seqs(msgs):
    return [int(t.rsplit(b"/", 1)[1]) for t, _ in msgs]


def _ack(peer, box, seq, name="v1"):
    rec = box.get(seq)
    kind, payload = ("receipt", b"never sent") if rec is None else (("receipt", "checkpoint")[rec[0]], rec[1])
    peer.publish(b"cp/%s/ack/%s" % (CP.encode(), name.encode()),
                 acking.ack(CP, name, kind, seq, payload))


def _run(link, *peers):
    def step():
        link.poll()
        for p in peers:
            p.pump()
    return step


def _receipts(box, n, first=0):
    return [box.put("receipt", b"OCMF|{\"n\":%d}|{}" % i) for i in range(first, first + n)]


def test_receipts_go_out_in_order_and_leave_flash_only_when_acked(tmp_path, amqtt_broker):
    b = amqtt_broker
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _receipts(box, 5)
    box.put("checkpoint", b"cp-note")
    v = _validator(b)
    link = _link(b, box)
    got = []
    step = _run(link, v)
    wait_for(lambda: len(got) >= 6 or got.extend(v.take()), step)
    assert _seqs(got) == [1, 2, 3, 4, 5, 6]
    assert got[0] == (b"cp/CP-T1/receipt/1", b"OCMF|{\"n\":0}|{}")
    assert got[5] == (b"cp/CP-T1/checkpoint/6", b"cp-note")
    assert box.pending() == 6                 # QoS 1 reached the broker, not a validator
    _ack(v, box, 1)
    _ack(v, box, 2)
    _ack(v, box, 9)                                # future seq: changes nothing
    v.publish(b"cp/CP-T1/ack/v1", b"garbage")
    wait_for(lambda: box.acked == 2 and link.bad_acks == 2, step)
    assert box.pending() == 4 and Outbox(tmp_path + "/ob2", reserve_bytes=0).pending() == 0
    link.close()
    v.close()


def _resend_after_reconnect(tmp_path, b):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _receipts(box, 3)
    v = _validator(b)
    link = _link(b, box)
    got = []
    step = _run(link, v)
    wait_for(lambda: len(got) >= 3 or got.extend(v.take()), step)
    _ack(v, box, 1)
    wait_for(lambda: box.acked == 1, step)
    control(b, "broker stop")                 # the validator's connection dies with it
    # The charger keeps recording while the broker is gone.
    _receipts(box, 2, first=3)
    wait_for(lambda: not link.connected, link.poll)
    for _ in range(20):
        link.poll()
    assert box.pending() == 4
    control(b, "broker start")
    v2 = _validator(b, "v1b")
    got = []
    wait_for(lambda: len(got) >= 4 or got.extend(v2.take()), _run(link, v2), 15000)
    assert _seqs(got) == [2, 3, 4, 5]         # every unacked record again, in order
    assert link.connects == 2 and link.drops >= 1
    link.close()
    v2.close()


def test_resend_in_order_after_broker_restart_amqtt(tmp_path, amqtt_broker):
    _resend_after_reconnect(tmp_path, amqtt_broker)


def test_resend_in_order_after_broker_restart_mosquitto(tmp_path, mosquitto_broker):
    _resend_after_reconnect(tmp_path, mosquitto_broker)


def test_status_is_retained_and_the_last_will_says_offline(tmp_path, mosquitto_broker):
    b = mosquitto_broker
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    link = _link(b, box)
    wait_for(lambda: link.connected, link.poll)
    late = Peer(b, "observer-1", [b"cp/CP-T1/status"])   # subscribes after the fact
    wait_for(lambda: late.msgs, late.pump)
    assert late.take() == [(b"cp/CP-T1/status", b"online")]
    control(b, "proxy down")                  # link cut: the broker publishes the will
    wait_for(lambda: late.msgs, late.pump)
    assert late.take() == [(b"cp/CP-T1/status", b"offline")]
    control(b, "proxy up")
    wait_for(lambda: late.msgs, _run(link, late), 15000)
    assert late.take() == [(b"cp/CP-T1/status", b"online")]
    link.close()                              # clean shutdown also leaves "offline" retained
    late2 = Peer(b, "observer-2", [b"cp/CP-T1/status"])
    wait_for(lambda: late2.msgs, late2.pump)
    assert late2.take() == [(b"cp/CP-T1/status", b"offline")]
    late.close()
    late2.close()


def test_half_dead_link_is_found_by_silence_and_no_poll_blocks(tmp_path, amqtt_broker):
    b = amqtt_broker
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    link = _link(b, box, keepalive_s=2, timeout_ms=300)
    wait_for(lambda: link.connected, link.poll)
    control(b, "proxy blackhole")             # TCP stays up, nothing gets through
    from hal.clock import ticks_ms, ticks_diff
    worst = 0
    t0 = ticks_ms()
    while link.drops == 0:                    # nothing to send: only the keepalive can tell
        t = ticks_ms()
        link.poll()
        worst = max(worst, ticks_diff(ticks_ms(), t))
        assert ticks_diff(ticks_ms(), t0) < 10000, "dead link not detected"
        sleep_ms(10)
    # Charging goes on: receipts are stored, and every poll returns within the budget.
    _receipts(box, 3)
    for _ in range(30):
        t = ticks_ms()
        link.poll()
        worst = max(worst, ticks_diff(ticks_ms(), t))
        sleep_ms(10)
    assert worst < 300 + 700, worst           # budget + generous slack for a loaded machine
    assert box.pending() == 3
    control(b, "proxy up")
    v = _validator(b)
    got = []
    wait_for(lambda: len(got) >= 3 or got.extend(v.take()), _run(link, v), 15000)
    assert _seqs(got) == [1, 2, 3]
    link.close()
    v.close()


def test_signed_commands_arrive_and_bad_ones_are_answered(tmp_path, amqtt_broker,
                                                          operator_commands):
    from uplink.commands import Verifier
    b = amqtt_broker
    oc = operator_commands
    m = oc["msgs"]
    ver = Verifier(tmp_path + "/cmd_n", oc["operator_spki"], CP, lambda: oc["t0"])
    link = _link(b, Outbox(tmp_path + "/ob", reserve_bytes=0), verifier=ver)
    wait_for(lambda: link.connected, link.poll)
    op = Peer(b, "operator", [b"cp/CP-T1/cmd/result"])
    for name in ("forged", "stop_n10", "stop_n10", "unsigned"):
        op.publish(b"cp/CP-T1/cmd", m[name].encode())
    accepted = []

    def step():
        accepted.extend(link.poll())
        op.pump()
    wait_for(lambda: len(op.msgs) >= 3 and accepted, step)
    assert [(c.name, c.n) for c in accepted] == [("stop", 10)]
    link.reply(accepted[0], "ok")
    wait_for(lambda: len(op.msgs) >= 4, step)
    results = [json.loads(p) for _, p in op.take(b"cp/CP-T1/cmd/result")]
    assert [r["result"] for r in results] == ["bad-signature", "replayed", "unsigned", "ok"]
    assert results[3]["n"] == 10 and results[3]["cmd"] == "stop"
    link.close()
    op.close()


def test_telemetry_follows_its_interval(tmp_path, amqtt_broker):
    b = amqtt_broker
    link = _link(b, Outbox(tmp_path + "/ob", reserve_bytes=0), telemetry_ms=60000)
    assert link.telemetry(7200, 1500, 59) is False      # not connected: dropped, not queued
    wait_for(lambda: link.connected, link.poll)
    obs = Peer(b, "dashboard", [b"cp/CP-T1/telemetry"])
    assert link.telemetry(7200, 1500, 59) is True
    assert link.telemetry(7300, 1510, 60) is False      # inside the interval
    assert link.telemetry(7300, 1512, 60, force=True) is True
    assert link.telemetry(7300, 1513, 60, force=True, register_wh=1001513) is True
    assert link.telemetry(7400, 1520, 61, force=True, register_wh=1001520, t=1768455000) is True
    assert link.telemetry(7400, 1530, 62, force=True, register_wh=1001530,
                          id_json=b'"id":"A6D7DBB77F3545D973D684F3DF2356D7","it":"LOCAL"') is True
    wait_for(lambda: len(obs.msgs) >= 5, obs.pump)
    vals = [json.loads(p) for _, p in obs.take()]
    assert vals == [{"w": 7200, "wh": 1500, "price": 59}, {"w": 7300, "wh": 1512, "price": 60},
                    {"w": 7300, "wh": 1513, "price": 60, "reg": 1001513},
                    {"w": 7400, "wh": 1520, "price": 61, "reg": 1001520, "t": 1768455000},
                    {"w": 7400, "wh": 1530, "price": 62, "reg": 1001530,
                     "id": "A6D7DBB77F3545D973D684F3DF2356D7", "it": "LOCAL"}]
    link.close()
    obs.close()


def test_flash_full_refuses_new_records_but_sends_every_old_one(tmp_path, amqtt_broker):
    from store import atomic
    b = amqtt_broker
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _receipts(box, 2)
    box.put("receipt", b"last-before-full")
    box.journal.reserve_bytes = atomic.free_bytes(tmp_path) + 1     # the flash is now full
    assert not box.has_room(1)
    raises(JournalFull, box.put, "receipt", b"x" * 60)              # new session refused
    assert box.last_seq == 3
    v = _validator(b)
    link = _link(b, box)
    got = []
    wait_for(lambda: len(got) >= 3 or got.extend(v.take()), _run(link, v))
    assert _seqs(got) == [1, 2, 3] and got[2][1] == b"last-before-full"
    for seq in (1, 2, 3):
        _ack(v, box, seq)
    wait_for(lambda: box.pending() == 0, _run(link, v))
    link.close()
    v.close()


def test_reconnect_backs_off_exponentially_with_a_cap(tmp_path, amqtt_broker):
    b = amqtt_broker
    control(b, "broker stop")
    link = _link(b, Outbox(tmp_path + "/ob", reserve_bytes=0), backoff_min_ms=40,
                 backoff_max_ms=320)
    waits = []
    while len(waits) < 6:
        before = link.attempts
        link.poll()
        if link.attempts != before:           # one refused attempt per due poll, no more
            assert not link.connected
            waits.append(link.retry_in_ms())
        sleep_ms(2)
    # 40, 80, 160, 320, 320, 320 ms, each plus up to 25 % jitter (minus the time since).
    for got, base in zip(waits, (40, 80, 160, 320, 320, 320)):
        assert base - 20 <= got <= base * 5 // 4, (waits, base)
    control(b, "broker start")
    wait_for(lambda: link.connected, link.poll)
    assert link.connects == 1
    link.close()
