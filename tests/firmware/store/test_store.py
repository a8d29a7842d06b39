# store layer: atomic replace and the append-only journal survive torn writes.
import os

from support.fwtest import raises
from store import atomic
from store.journal import Journal, JournalFull


def test_atomic_write_replaces_whole_record(tmp_path):
    path = tmp_path + "/state"
    assert atomic.read(path) is None
    atomic.write(path, b"first")
    atomic.write(path, b"second")
    assert atomic.read(path) == b"second"


def test_atomic_falls_back_to_complete_temp_copy(tmp_path):
    # Power cut on FAT between remove and rename: only the temp copy exists.
    path = tmp_path + "/state"
    atomic.write(path, b"new value")
    os.rename(path, path + ".tmp")
    assert atomic.read(path) == b"new value"


def test_atomic_damaged_file_is_an_error_not_a_default(tmp_path):
    path = tmp_path + "/state"
    atomic.write(path, b"0123456789")
    with open(path, "r+b") as f:
        f.seek(14)
        f.write(b"X")
    raises(atomic.CorruptFile, atomic.read, path)


def test_journal_replays_in_order_and_acks_drop_segments(tmp_path):
    j = Journal(tmp_path + "/j", segment_bytes=64, reserve_bytes=0)
    for i in range(20):
        assert j.append(b"record-%d" % i) == i + 1
    j.ack(15)
    j2 = Journal(tmp_path + "/j", segment_bytes=64, reserve_bytes=0)
    assert [d for _, d in j2.records()] == [b"record-%d" % i for i in range(15, 20)]
    assert j2.last_seq == 20 and j2.pending() == 5
    assert len(os.listdir(tmp_path + "/j")) < 8   # acked segments removed


def test_journal_torn_tail_is_skipped_and_appends_continue(tmp_path):
    j = Journal(tmp_path + "/j", segment_bytes=4096, reserve_bytes=0)
    j.append(b"kept-1")
    j.append(b"kept-2")
    seg = tmp_path + "/j/" + [n for n in os.listdir(tmp_path + "/j") if n.endswith(".log")][0]
    with open(seg, "ab") as f:
        f.write(b"\xde\xc0\x20\x00\x03")   # power cut inside the next record's header
    j2 = Journal(tmp_path + "/j", segment_bytes=4096, reserve_bytes=0)
    assert j2.torn_records == 1
    assert j2.append(b"after-cut") == 3
    j3 = Journal(tmp_path + "/j", segment_bytes=4096, reserve_bytes=0)
    assert [d for _, d in j3.records()] == [b"kept-1", b"kept-2", b"after-cut"]


def test_journal_corrupt_record_is_not_replayed(tmp_path):
    j = Journal(tmp_path + "/j", reserve_bytes=0)
    j.append(b"good")
    j.append(b"flipped")
    seg = tmp_path + "/j/" + [n for n in os.listdir(tmp_path + "/j") if n.endswith(".log")][0]
    with open(seg, "r+b") as f:
        f.seek(12 + 4 + 12 + 2)
        f.write(b"Z")
    j2 = Journal(tmp_path + "/j", reserve_bytes=0)
    assert [d for _, d in j2.records()] == [b"good"]


def test_journal_full_refuses_and_keeps_old_records(tmp_path):
    j = Journal(tmp_path + "/j", reserve_bytes=0)
    j.append(b"billed")
    j.reserve_bytes = atomic.free_bytes(tmp_path) + 1   # pretend the flash is full
    raises(JournalFull, j.append, b"new")
    assert [d for _, d in Journal(tmp_path + "/j", reserve_bytes=0).records()] == [b"billed"]
