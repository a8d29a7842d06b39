# ChargerLog with the real KeyStore: every append signs OCMF, receipt and checkpoint, commits
# atomically, survives reopening and power cuts on either side of the commit, and refuses
# bad sessions without changing anything.
import json
import os
from binascii import unhexlify
from hashlib import sha256

from support.fwtest import raises
from ledger import checkpoint, der, merkle, ocmf, p256, receipt
from ledger.keys import KeyStore
from ledger.log import ChargerLog, LogError
from ledgerdata import FixedClock, session
from store import atomic

ORIGIN = "chargeproof.example/CP-0001"


def _open(d, key=None):
    key = key or KeyStore(d + "/key", urandom=os.urandom)
    return ChargerLog(d + "/log", key, "CP-0001", ORIGIN, FixedClock()), key


def _leaf_root(records):
    f = merkle.Frontier()
    for r in records:
        f.append(r)
    return f.root()


def test_append_signs_everything_and_checkpoint_commits_to_receipts(tmp_path):
    log, key = _open(tmp_path)
    records = []
    for i in range(8):
        rec, cp, index = log.append_session(session(end_wh=1245678 + i, segments=None))
        assert index == i
        records.append(rec)
        body, sig = receipt.split(rec)
        assert key.verify(body, sig)
        assert der.decode_sig(sig)[1] <= p256.N // 2          # low S: one encoding per receipt
        r = json.loads(body)
        assert r["seq"] == i + 1 and r["index"] == i and r["energy_wh"] == 11111 + i
        payload, sig_section = ocmf.split(r["ocmf"])
        assert '"PG":"T%d"' % (i + 1) in payload
        assert key.verify(payload.encode(), unhexlify(json.loads(sig_section)["SD"]))
        origin, size, root, t, text, sigs = checkpoint.parse(cp)
        assert (origin, size) == (ORIGIN, i + 1) and t is not None
        assert root == _leaf_root(records) == log.root()
        name, kid, csig = sigs[0]
        assert name == ORIGIN and kid == key.key_id() == sha256(key.public_key_der()).digest()[:4]
        assert key.verify(text.encode(), csig)
        assert text.startswith("%s\n%d\n" % (ORIGIN, i + 1))
    assert log.last_receipt == records[7]


def test_reopen_continues_the_same_log(tmp_path):
    log, key = _open(tmp_path)
    recs = [log.append_session(session())[0] for _ in range(5)]
    log2, _ = _open(tmp_path, key)
    assert (log2.size, log2.seq, log2.root()) == (5, 5, log.root())
    rec, cp, index = log2.append_session(session())
    assert index == 5 and checkpoint.parse(cp)[2] == _leaf_root(recs + [rec])


def test_power_cut_before_commit_leaves_log_unchanged(tmp_path):
    log, key = _open(tmp_path)
    log.append_session(session())
    before = atomic.read(tmp_path + "/log/state")
    real = atomic.write

    def cut(path, data):
        with open(path + ".tmp", "wb") as f:      # half of the new record reached flash
            f.write(b"CPa1" + data[:20])
        raise OSError("power cut")
    atomic.write = cut
    try:
        raises(OSError, log.append_session, session())
    finally:
        atomic.write = real
    assert atomic.read(tmp_path + "/log/state") == before
    log2, _ = _open(tmp_path, key)
    assert (log2.size, log2.seq) == (1, 1)
    rec, cp, index = log2.append_session(session())
    assert index == 1 and '"PG":"T2"' in json.loads(receipt.split(rec)[0])["ocmf"]


def test_committed_state_keeps_the_last_receipt_and_checkpoint(tmp_path):
    # What a power cut right after the commit leaves for the outbox to be refilled from.
    log, key = _open(tmp_path)
    log.append_session(session())
    rec, cp, _ = log.append_session(session())
    log2, _ = _open(tmp_path, key)
    assert (log2.size, log2.seq) == (2, 2)
    assert log2.last_receipt == rec and log2.last_checkpoint == cp
    assert checkpoint.parse(cp)[2] == log2.root()


def test_bad_sessions_are_refused_and_change_nothing(tmp_path):
    log, key = _open(tmp_path)
    log.append_session(session())
    before = (atomic.read(tmp_path + "/log/state"), log.size, log.seq, log.root())
    bad = [session(charger_id="CP-9999"),
           session(end_wh=1000),                              # end below begin
           session(segments=[[1768455000, 1]]),               # energy not the readings'
           session(price_minor=1),                            # price != net + tax
           session(tariff="xyz"),
           session(meter_serial="A|B"),
           session(charge_end_time=1)]
    s = session()
    del s["end_wh"]
    bad.append(s)
    for s in bad:
        raises(LogError, log.append_session, s)
    assert (atomic.read(tmp_path + "/log/state"), log.size, log.seq, log.root()) == before


def test_damaged_state_is_an_error_not_an_empty_log(tmp_path):
    log, key = _open(tmp_path)
    log.append_session(session())
    with open(tmp_path + "/log/state", "r+b") as f:
        f.seek(30)
        f.write(b"\xff\xff")
    raises(atomic.CorruptFile, _open, tmp_path, key)


def test_the_receipt_body_is_made_in_pieces_with_the_safety_watch_between():
    # Its checks, the OCMF record as a JSON string (~50 us on the 32-bit build) and the join
    # are pieces of their own: store.atomic's hook (the app's safety watch) between them.
    calls = []
    prev = atomic.set_idle(lambda: calls.append(1))
    try:
        body = receipt.body("CP-0001", 1, 0, session(), "OCMF|{}|{}")
    finally:
        atomic.set_idle(prev)
    assert len(calls) >= 2 and json.loads(body)["ocmf"] == "OCMF|{}|{}"
