# uplink.outbox: receipts stay on flash, in order, until the required validators ack them.
import hashlib
from binascii import hexlify

from support.fwtest import allocated, raises
from store import atomic
from store.journal import JournalFull
from uplink.outbox import Outbox, BadAck


def _hex(data):
    return hexlify(hashlib.sha256(data).digest()).decode()


def _d(box, seq):
    """The digest a validator names when it acks seq (the record's bytes; zeros if none)."""
    rec = box.get(seq)
    return _hex(rec[1]) if rec else "00" * 32


def _fill(box, n):
    return [box.put("receipt" if i % 2 == 0 else "checkpoint", b"rec-%d" % i) for i in range(n)]


def test_put_returns_increasing_seqs_and_items_replay_in_order(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    assert _fill(box, 5) == [1, 2, 3, 4, 5]
    got = box.items(limit=10)
    assert [(s, t, p) for s, t, p in got] == [
        (1, 0, b"rec-0"), (2, 1, b"rec-1"), (3, 0, b"rec-2"), (4, 1, b"rec-3"), (5, 0, b"rec-4")]
    assert [s for s, _, _ in box.items(after=2, limit=2)] == [3, 4]
    assert box.pending() == 5


def test_records_survive_reboot_until_acked(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _fill(box, 4)
    assert box.ack(1, "v1", _d(box, 1)) and box.ack(2, "v1", _d(box, 2))
    box.sync()
    box2 = Outbox(tmp_path + "/ob", reserve_bytes=0)       # power cycle
    assert box2.acked == 2 and box2.pending() == 2
    assert [p for _, _, p in box2.items()] == [b"rec-2", b"rec-3"]
    assert box2.put("receipt", b"after-boot") == 5


def test_nothing_leaves_without_an_ack_and_out_of_order_acks_wait(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _fill(box, 3)
    assert box.ack(3, "v1", _d(box, 3)) is True
    assert box.ack(2, "v1", _d(box, 2)) is True
    assert box.acked == 0                 # seq 1 still missing: nothing leaves the flash
    assert [s for s, _, _ in box.items()] == [1]   # 2 and 3 are not resent
    assert box.ack(1, "v1", _d(box, 1)) is True
    assert box.acked == 3 and box.pending() == 0 and box.items() == []


def test_duplicate_stale_and_future_acks_change_nothing(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _fill(box, 2)
    assert box.ack(1, "v1", _d(box, 1)) is True
    assert box.ack(1, "v1", _d(box, 1)) is False      # duplicate after a resend
    raises(BadAck, box.ack, 3, "v1", _d(box, 3))      # never written
    raises(BadAck, box.ack, 99, "v1", _d(box, 99))
    box.sync()
    assert box.acked == 1 and box.last_seq == 2
    assert Outbox(tmp_path + "/ob", reserve_bytes=0).acked == 1


def test_unsynced_acks_mean_resends_after_a_power_cut_never_loss(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0, persist_every=3)
    _fill(box, 5)
    box.ack(1, "v1", _d(box, 1))
    box.ack(2, "v1", _d(box, 2))
    assert box.acked == 2 and box.items(limit=1)[0][0] == 3
    rebooted = Outbox(tmp_path + "/ob", reserve_bytes=0)    # mark not yet on flash
    assert rebooted.acked == 0 and rebooted.pending() == 5  # 1 and 2 go out again: duplicates
    box.ack(3, "v1", _d(box, 3))                                        # third ack: written by itself
    assert Outbox(tmp_path + "/ob", reserve_bytes=0).acked == 3


def test_ack_digest_must_name_the_stored_bytes(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    box.put("receipt", b"OCMF|{...}|{...}")
    raises(BadAck, box.ack, 1, "v1", _hex(b"something else"))
    assert box.acked == 0
    assert box.ack(1, "v1", _hex(b"OCMF|{...}|{...}").upper()) is True
    assert box.acked == 1


def test_required_validators_must_all_ack(tmp_path):
    box = Outbox(tmp_path + "/ob", validators=("va", "vb"), reserve_bytes=0)
    _fill(box, 2)
    raises(BadAck, box.ack, 1, "intruder", _d(box, 1))
    assert box.ack(1, "va", _d(box, 1)) is True
    assert box.acked == 0 and [s for s, _, _ in box.items()] == [1, 2]
    assert box.ack(1, "va", _d(box, 1)) is False
    assert box.ack(1, "vb", _d(box, 1)) is True
    assert box.acked == 1


def test_flash_full_refuses_new_records_and_keeps_old(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    box.put("receipt", b"billed-1")
    assert box.has_room(200)
    # Pretend only ~1 MB is left (wide margins: other processes share this disk).
    box.journal.reserve_bytes = atomic.free_bytes(tmp_path) - 1000000
    assert box.has_room(20000) and not box.has_room(5000000)
    box.journal.reserve_bytes = atomic.free_bytes(tmp_path) + 1    # now full
    assert not box.has_room(1)
    raises(JournalFull, box.put, "receipt", b"x" * 200)
    assert box.last_seq == 1
    box.journal.reserve_bytes = 0
    assert [p for _, _, p in Outbox(tmp_path + "/ob", reserve_bytes=0).items()] == [b"billed-1"]


def test_bad_kind_and_payload_rejected(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    raises(ValueError, box.put, "telemetry", b"x")
    raises(TypeError, box.put, "receipt", "not bytes")
    assert box.last_seq == 0


def test_an_ack_without_a_digest_or_of_another_kind_deletes_nothing(tmp_path):
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    _fill(box, 2)                                  # 1 receipt, 2 checkpoint
    raises(BadAck, box.ack, 1, "v1", None)
    raises(BadAck, box.ack, 1, "v1", _d(box, 1), 1)        # says checkpoint, holds a receipt
    raises(BadAck, box.ack, 2, "v1", _d(box, 1), 1)        # digest of another record
    assert box.acked == 0 and box.pending() == 2
    assert box.ack(1, "v1", _d(box, 1), 0) and box.ack(2, "v1", _d(box, 2), 1)
    assert box.acked == 2


def test_k_of_n_validators_release_a_record(tmp_path):
    box = Outbox(tmp_path + "/ob", validators=("va", "vb", "vc"), quorum=2, reserve_bytes=0)
    _fill(box, 1)
    assert box.ack(1, "vb", _d(box, 1)) and box.acked == 0
    assert box.ack(1, "vb", _d(box, 1)) is False and box.acked == 0     # the same one twice
    assert box.ack(1, "vc", _d(box, 1)) and box.acked == 1
    raises(ValueError, Outbox, tmp_path + "/o2", validators=("va",), quorum=2)


def test_an_ack_is_checked_against_the_record_where_it_lies(tmp_path):
    # Checking an ack reads the record once and hashes it in place: each copy of a 1.2 KB
    # receipt (a CRC over header + data, a payload slice) was one more block that a fragmented
    # 32-bit heap could refuse, and an ack that raises MemoryError drops the MQTT connection
    # (the acks in flight with it).
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    receipt = bytes(range(256)) * 5                 # 1280 bytes, a receipt's size
    seq = box.put("receipt", receipt)
    digest = _d(box, seq)
    counted = []
    used = allocated(lambda: counted.append(box.ack(seq, "v1", digest)))
    assert counted == [True]
    assert used is None or used < 2 * len(receipt), used    # None: CPython


def test_records_leave_for_the_broker_without_a_copy(tmp_path):
    # The link publishes each record from a view of the bytes as read: a receipt costs one
    # block of its size, not two (the payload's copy was a second 1.2 KB block to find).
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    receipt = bytes(range(256)) * 5
    box.put("receipt", receipt)
    (seq, tag, payload), = box.items(view=True)
    assert (seq, tag, bytes(payload)) == (1, 0, receipt)
    used = allocated(lambda: box.items(view=True))
    assert used is None or used < 2 * len(receipt), used
