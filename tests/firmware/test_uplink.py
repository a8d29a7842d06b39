# uplink.mqtt against real brokers (amqtt in-process and Mosquitto) through a fault proxy.
# The "validator" here is a second umqtt.simple client that acks by seq.
import json

from fwtest import raises
from store.journal import JournalFull
from uplink.outbox import Outbox
from uplink.mqtt import Link
from mqttpeer import Peer, control, wait_for, sleep_ms

CP = "CP-T1"


def _link(broker, box, **kw):
    args = dict(keepalive_s=4, timeout_ms=800, backoff_min_ms=50, backoff_max_ms=400)
    args.update(kw)
    return Link(CP, broker["host"], broker["port"], box, **args)


def _validator(broker, name="v1"):
    return Peer(broker, "validator-" + name, [b"cp/+/receipt/+", b"cp/+/checkpoint/+"])


def _seqs(msgs):
    return [int(t.rsplit(b"/", 1)[1]) for t, _ in msgs]


def _ack(peer, seq, name="v1"):
    peer.publish(b"cp/%s/ack/%s" % (CP.encode(), name.encode()), b'{"seq": %d}' % seq)


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
    _ack(v, 1)
    _ack(v, 2)
    _ack(v, 9)                                # future seq: changes nothing
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
    _ack(v, 1)
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
