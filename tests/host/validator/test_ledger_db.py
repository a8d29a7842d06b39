"""The validator's SQLite ledger: schema versioning, durability settings, idempotence, enrolment."""
import sqlite3

import pytest

from host_tools.validator import store as ledger_db
from host_tools.validator.store import LedgerDB, LedgerError

PUB_A = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004") + bytes(range(64))
PUB_B = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004") + bytes(range(1, 65))


def _receipt(index, **kw):
    row = dict(charger_id="cp1", log_index=index, seq=index + 1, leaf_hash=bytes([index]) * 32,
               receipt=b"receipt-%d" % index, ocmf="OCMF|{}|{}", meter_serial="M1",
               transaction_id="T%d" % index, begin_wh=1000 * index, end_wh=1000 * index + 500,
               energy_wh=500, price_minor=150, currency="EUR", tariff_hash="ab" * 32,
               begin_time=1700000000 + index * 100, end_time=1700000050 + index * 100,
               status="accepted", note="")
    row.update(kw)
    return row


def test_new_file_is_wal_at_current_schema(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with LedgerDB(path) as db:
        assert db.schema_version() == ledger_db.SCHEMA_VERSION
    raw = sqlite3.connect(str(path))
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "chargers", "tariffs", "receipts", "checkpoints",
            "rejections", "evidence"} <= tables


def test_old_schema_is_migrated_in_place_and_data_kept(tmp_path):
    path = str(tmp_path / "v1.sqlite")
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in ledger_db.MIGRATIONS[1]:
        raw.execute(statement)
    raw.execute("INSERT INTO schema_version VALUES (1)")
    raw.execute("INSERT INTO chargers VALUES ('cp1', 'aa', 'bbbbbbbb', 'cp1', 1)")
    raw.close()
    with LedgerDB(path) as db:
        assert db.schema_version() == 2
        assert db.charger("cp1")["pubkey_hex"] == "aa"
        indexes = {r[0] for r in db._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "receipts_meter" in indexes


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "future.sqlite")
    with LedgerDB(path):
        pass
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE schema_version SET version=99")
    raw.close()
    with pytest.raises(LedgerError, match="newer"):
        LedgerDB(path)


def test_enrolment_is_idempotent_and_a_second_key_is_refused(tmp_path):
    with LedgerDB(tmp_path / "l.sqlite") as db:
        kid = db.enroll("cp1", PUB_A, now=5)
        assert kid == ledger_db.key_id_hex(PUB_A) and len(kid) == 8
        assert db.enroll("cp1", PUB_A) == kid
        with pytest.raises(LedgerError, match="another key"):
            db.enroll("cp1", PUB_B)
        with pytest.raises(LedgerError):
            db.enroll("bad/id", PUB_B)
        assert [c["charger_id"] for c in db.chargers()] == ["cp1"]
        assert db.charger("cp1")["pubkey_hex"] == PUB_A.hex()
        assert db.charger("cp1")["enrolled_at"] == 5
        assert db.charger("cp1")["origin"] == "chargeproof.local/cp1"     # the firmware's default


def test_key_with_history_cannot_be_revoked(tmp_path):
    with LedgerDB(tmp_path / "l.sqlite") as db:
        db.enroll("cp1", PUB_A)
        db.enroll("cp2", PUB_A)
        with db.transaction() as tx:
            db.insert_receipt(tx, _receipt(0))
        with pytest.raises(LedgerError, match="receipts"):
            db.revoke("cp1")
        db.revoke("cp2")
        assert db.charger("cp2") is None
        db.enroll("cp2", PUB_B)


def test_same_index_twice_violates_the_key_and_rolls_back(tmp_path):
    with LedgerDB(tmp_path / "l.sqlite") as db:
        db.enroll("cp1", PUB_A)
        with db.transaction() as tx:
            db.insert_receipt(tx, _receipt(0))
        with pytest.raises(sqlite3.IntegrityError):
            with db.transaction() as tx:
                db.insert_receipt(tx, _receipt(1))
                db.insert_receipt(tx, _receipt(0, receipt=b"other"))
        # the whole transaction is gone, not just the failing statement
        assert db.log_size("cp1") == 1
        assert db.leaf_hashes("cp1") == [bytes([0]) * 32]


def test_receipts_for_unknown_chargers_are_refused_by_the_schema(tmp_path):
    with LedgerDB(tmp_path / "l.sqlite") as db:
        with pytest.raises(sqlite3.IntegrityError):
            with db.transaction() as tx:
                db.insert_receipt(tx, _receipt(0, charger_id="nobody"))


def test_committed_writes_are_visible_to_a_second_connection(tmp_path):
    path = tmp_path / "l.sqlite"
    db = LedgerDB(path)
    db.enroll("cp1", PUB_A)
    with db.transaction() as tx:
        db.insert_receipt(tx, _receipt(0))
        db.insert_checkpoint(tx, "cp1", 1, b"r" * 32, b"note")
        db.insert_rejection(tx, "cp1", "receipt", "bad-signature", "x", "cp/cp1/receipt", b"raw")
        db.insert_evidence(tx, "cp1", "split-view", b"a", b"b", "size 1")
    other = LedgerDB(path)
    assert other.log_size("cp1") == 1
    assert other.latest_checkpoint("cp1")["root"] == b"r" * 32
    assert other.rejections()[0]["reason"] == "bad-signature"
    assert other.evidence("cp1")[0]["second"] == b"b"
    assert other.receipt_by_seq("cp1", 1)["receipt"] == b"receipt-0"
    assert other.last_receipt("cp1", "M1")["log_index"] == 0
    assert other.last_receipt("cp1", "M2") is None
    other.close()
    db.close()


def test_totals_count_billed_receipts_only(tmp_path):
    with LedgerDB(tmp_path / "l.sqlite") as db:
        db.enroll("cp1", PUB_A)
        with db.transaction() as tx:
            db.insert_receipt(tx, _receipt(0))
            db.insert_receipt(tx, _receipt(1, status="flagged", note="energy-between-sessions"))
            db.insert_receipt(tx, _receipt(2, status="disputed", note="price-mismatch"))
        (row,) = db.totals()
        assert row["sessions"] == 2 and row["energy_wh"] == 1000 and row["price_minor"] == 300


def test_tariffs_by_hash(tmp_path):
    with LedgerDB(tmp_path / "l.sqlite") as db:
        db.add_tariff("h1", '{"a":1}')
        db.add_tariff("h1", '{"a":1}')
        with pytest.raises(LedgerError):
            db.add_tariff("h1", '{"a":2}')
        assert db.tariff("h1") == '{"a":1}'
        assert db.tariff("h2") is None
