# app.records: a committed receipt always reaches the flash outbox, in order with its checkpoint,
# even when the power goes between the log's commit and the outbox.
import os

from app.records import Records
from support.fwtest import raises
from ledger import checkpoint
from ledger.keys import KeyStore
from ledger.log import ChargerLog
from ledgerdata import FixedClock, session
from uplink.outbox import Outbox

ORIGIN = "chargeproof.example/CP-0001"
RECEIPT, CHECKPOINT = 0, 1        # outbox tags (uplink/topics.py KINDS)


def _open(d, key=None):
    key = key or KeyStore(d + "/key", urandom=os.urandom)
    log = ChargerLog(d + "/log", key, "CP-0001", ORIGIN, FixedClock())
    return Records(log, Outbox(d + "/outbox", reserve_bytes=0), d), key


def _outbox(records):
    return [(tag, payload) for _, tag, payload in records.outbox.items(limit=100)]


def test_each_receipt_then_its_checkpoint_in_the_outbox(tmp_path):
    rec, _ = _open(tmp_path)
    assert rec.next_seq() == 1 and not rec.recorded(1) and rec.has_room()
    rec.record(session(seq=1))
    rec.record(session(seq=2))
    assert rec.recorded(2) and rec.next_seq() == 3
    out = _outbox(rec)
    assert [tag for tag, _ in out] == [RECEIPT, CHECKPOINT, RECEIPT, CHECKPOINT]
    assert out[2][1] == rec.log.last_receipt
    assert checkpoint.parse(out[3][1].decode())[1] == 2          # the note covers both receipts


def test_power_cut_between_log_commit_and_outbox_is_repaired_at_boot(tmp_path):
    rec, key = _open(tmp_path)
    rec.record(session(seq=1))

    def cut(kind, payload):
        raise OSError("power cut")
    rec.outbox.put = cut
    raises(OSError, rec.record, session(seq=2))   # committed to the log, not yet in the outbox
    rec2, _ = _open(tmp_path, key)
    out = _outbox(rec2)
    assert [tag for tag, _ in out] == [RECEIPT, CHECKPOINT, RECEIPT, CHECKPOINT]
    assert out[2][1] == rec2.log.last_receipt and rec2.log.size == 2
    rec3, _ = _open(tmp_path, key)                   # and only once
    assert len(_outbox(rec3)) == 4


def test_full_outbox_refuses_before_the_session_starts(tmp_path):
    rec, _ = _open(tmp_path)
    rec.record(session(seq=1))
    rec.outbox.journal.reserve_bytes = 1 << 60
    assert not rec.has_room()
    assert len(_outbox(rec)) == 2                    # nothing already recorded is touched


def test_outbox_failure_without_reboot_is_retried_not_lost(tmp_path):
    # The outbox refuses once (flash error) after the log committed session 2: the session
    # layer's retry must queue that receipt, and session 3 must follow it.
    rec, _ = _open(tmp_path)
    rec.record(session(seq=1))
    real_put = rec.outbox.put

    def failing(kind, payload):
        raise OSError("flash error")
    rec.outbox.put = failing
    raises(OSError, rec.record, session(seq=2))
    assert not rec.recorded(2)                   # in the log, but not yet where it is sent from
    rec.outbox.put = real_put
    rec.record(session(seq=2))                   # the retry
    assert rec.recorded(2) and rec.log.size == 2
    rec.record(session(seq=3))
    receipts = [p for tag, p in _outbox(rec) if tag == RECEIPT]
    assert len(receipts) == 3 and receipts[2] == rec.log.last_receipt
