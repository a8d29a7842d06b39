# Attacks on the ack topic (issue 8) against the charger's uplink on a real Mosquitto: anyone on
# the broker can publish on cp/<charger>/ack/<validator>; only an authentic ack of the exact bytes
# held, live (not retained), deletes anything.
import hashlib
import json
from binascii import hexlify

from support import acking
from support.mqttpeer import Peer, wait_for
from uplink.acks import AckChecker
from uplink.mqtt import Link
from uplink.outbox import Outbox

CP = "CP-X1"
TOPIC = b"cp/CP-X1/ack/v1"


def _link(b, box):
    return Link(CP, b["host"], b["port"], box, keepalive_s=4, timeout_ms=800, backoff_min_ms=50,
                backoff_max_ms=400, ack_checker=AckChecker(CP, acking.KEYS))


def _box(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    for i in range(3):
        box.put("receipt", b"OCMF|{\"n\":%d}|{}" % i)
    return box


def _pump(link, peers, n=40):
    for _ in range(n):
        link.poll()
        for p in peers:
            p.pump()


def _hex(data):
    return hexlify(hashlib.sha256(data).digest()).decode()


def test_forged_live_acks_delete_nothing(tmp_path, mosquitto_broker):
    b = mosquitto_broker
    box = _box(tmp_path)
    spy = Peer(b, "spy", [b"cp/+/receipt/+"])             # sees every receipt, as anyone can
    link = _link(b, box)
    got = []
    wait_for(lambda: len(got) >= 3 or got.extend(spy.take()), lambda: _pump(link, [spy], 1))
    for topic, payload in got:
        seq = int(topic.rsplit(b"/", 1)[1])
        # The old unauthenticated form, a MAC made with a guessed key, a MAC over other fields.
        spy.publish(TOPIC, b'{"seq": %d, "sha256": "%s"}' % (seq, _hex(payload).encode()))
        spy.publish(TOPIC, acking.ack(CP, "v1", "receipt", seq, payload, key_hex="00" * 32))
        forged = json.loads(acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"n\":0}|{}"))
        forged["seq"] = seq + 1
        spy.publish(TOPIC, json.dumps(forged).encode())
    wait_for(lambda: link.bad_acks >= 9, lambda: _pump(link, [spy], 1))
    assert box.acked == 0 and box.pending() == 3
    # The genuine validator still gets every receipt acked.
    spy.publish(TOPIC, acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"n\":0}|{}"))
    wait_for(lambda: box.acked == 1, lambda: _pump(link, [spy], 1))
    link.close()
    spy.close()


def test_a_retained_ack_left_while_the_charger_was_offline_deletes_nothing(tmp_path, mosquitto_broker):
    b = mosquitto_broker
    box = _box(tmp_path)
    attacker = Peer(b, "attacker")
    # Even an ack that would verify (captured, or leaked) counts for nothing when retained: a
    # validator never retains acks, so a retained one is stale or planted.
    attacker.publish(TOPIC, acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"n\":0}|{}"), retain=True)
    attacker.publish(b"cp/CP-X1/ack/v2", b'{"seq": 2}', retain=True)
    link = _link(b, box)                                  # the charger comes online
    wait_for(lambda: link.retained_acks >= 2, lambda: _pump(link, [attacker], 1))
    _pump(link, [attacker])
    assert box.acked == 0 and box.pending() == 3 and link.bad_acks == 0
    attacker.publish(TOPIC, acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"n\":0}|{}"))   # live
    wait_for(lambda: box.acked == 1, lambda: _pump(link, [attacker], 1))
    attacker.publish(TOPIC, b"", retain=True)              # clear the retained messages
    attacker.publish(b"cp/CP-X1/ack/v2", b"", retain=True)
    link.close()
    attacker.close()


def test_authentic_acks_of_other_bytes_kinds_or_chargers_delete_nothing(tmp_path, mosquitto_broker):
    b = mosquitto_broker
    box = _box(tmp_path)
    v = Peer(b, "v1", [b"cp/+/receipt/+"])
    link = _link(b, box)
    got = []
    wait_for(lambda: len(got) >= 3 or got.extend(v.take()), lambda: _pump(link, [v], 1))
    for raw in (acking.ack(CP, "v1", "receipt", 1, b"OCMF|{\"n\":9}|{}"),         # wrong digest
                acking.ack(CP, "v1", "checkpoint", 1, b"OCMF|{\"n\":0}|{}"),       # wrong kind
                acking.ack("CP-OTHER", "v1", "receipt", 1, b"OCMF|{\"n\":0}|{}"),  # wrong charger
                acking.ack(CP, "v1", "receipt", 2, b"OCMF|{\"n\":0}|{}")):         # wrong seq
        v.publish(TOPIC, raw)
    wait_for(lambda: link.bad_acks >= 4, lambda: _pump(link, [v], 1))
    assert box.acked == 0 and box.pending() == 3
    link.close()
    v.close()
