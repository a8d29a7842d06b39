"""The validator's ledger on both backends (SQLite file, real PostgreSQL server): schema versioning,
durability settings, idempotence, enrolment, parked receipts, cosignatures."""
import sqlite3

import pytest

from host_tools.validator import store as ledger_db
from host_tools.validator.store import LedgerDB, LedgerError, PgLedgerDB, open_ledger

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
        assert db.schema_version() == ledger_db.SCHEMA_VERSION
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


def test_enrolment_is_idempotent_and_a_second_key_is_refused(ledger_target):
    with open_ledger(ledger_target) as db:
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


def test_key_with_history_cannot_be_revoked(ledger_target):
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        db.enroll("cp2", PUB_A)
        with db.transaction() as tx:
            db.insert_receipt(tx, _receipt(0))
        with pytest.raises(LedgerError, match="receipts"):
            db.revoke("cp1")
        db.revoke("cp2")
        assert db.charger("cp2") is None
        db.enroll("cp2", PUB_B)


def test_same_index_twice_violates_the_key_and_rolls_back(ledger_target):
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        with db.transaction() as tx:
            db.insert_receipt(tx, _receipt(0))
        with pytest.raises(db.IntegrityError):
            with db.transaction() as tx:
                db.insert_receipt(tx, _receipt(1))
                db.insert_receipt(tx, _receipt(0, receipt=b"other"))
        # the whole transaction is gone, not just the failing statement
        assert db.log_size("cp1") == 1
        assert db.leaf_hashes("cp1") == [bytes([0]) * 32]


def test_receipts_for_unknown_chargers_are_refused_by_the_schema(ledger_target):
    with open_ledger(ledger_target) as db:
        with pytest.raises(db.IntegrityError):
            with db.transaction() as tx:
                db.insert_receipt(tx, _receipt(0, charger_id="nobody"))


def test_committed_writes_are_visible_to_a_second_connection(ledger_target):
    path = ledger_target
    db = open_ledger(path)
    db.enroll("cp1", PUB_A)
    with db.transaction() as tx:
        db.insert_receipt(tx, _receipt(0))
        db.insert_checkpoint(tx, "cp1", 1, b"r" * 32, b"note")
        db.insert_rejection(tx, "cp1", "receipt", "bad-signature", "x", "cp/cp1/receipt", b"raw")
        db.insert_evidence(tx, "cp1", "split-view", b"a", b"b", "size 1")
    other = open_ledger(path)
    assert other.log_size("cp1") == 1
    assert other.latest_checkpoint("cp1")["root"] == b"r" * 32
    assert other.rejections()[0]["reason"] == "bad-signature"
    assert other.evidence("cp1")[0]["second"] == b"b"
    assert other.receipt_by_seq("cp1", 1)["receipt"] == b"receipt-0"
    assert other.last_receipt("cp1", "M1")["log_index"] == 0
    assert other.last_receipt("cp1", "M2") is None
    other.close()
    db.close()


def test_totals_count_billed_receipts_only(ledger_target):
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        with db.transaction() as tx:
            db.insert_receipt(tx, _receipt(0))
            db.insert_receipt(tx, _receipt(1, status="flagged", note="energy-between-sessions"))
            db.insert_receipt(tx, _receipt(2, status="disputed", note="price-mismatch"))
        (row,) = db.totals()
        assert row["sessions"] == 2 and row["energy_wh"] == 1000 and row["price_minor"] == 300


def test_tariffs_by_hash(ledger_target):
    with open_ledger(ledger_target) as db:
        db.add_tariff("h1", '{"a":1}')
        db.add_tariff("h1", '{"a":1}')
        with pytest.raises(LedgerError):
            db.add_tariff("h1", '{"a":2}')
        assert db.tariff("h1") == '{"a":1}'
        assert db.tariff("h2") is None


def test_postgres_old_schema_is_migrated_and_a_newer_one_refused(pg_dsn):
    import psycopg
    with psycopg.connect(pg_dsn, autocommit=True) as raw:
        raw.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        for statement in ledger_db.MIGRATIONS[1]:
            raw.execute(PgLedgerDB._ddl(statement))
        raw.execute("INSERT INTO schema_version VALUES (1)")
        raw.execute("INSERT INTO chargers VALUES ('cp1', 'aa', 'bbbbbbbb', 'cp1', 1)")
    with open_ledger(pg_dsn) as db:
        assert db.kind == "postgresql"
        assert db.schema_version() == ledger_db.SCHEMA_VERSION
        assert db.charger("cp1")["pubkey_hex"] == "aa"
        assert db.parked() == [] and db.cosignatures("cp1") == []
    with psycopg.connect(pg_dsn, autocommit=True) as raw:
        raw.execute("UPDATE schema_version SET version=99")
    with pytest.raises(LedgerError, match="newer"):
        open_ledger(pg_dsn)


def test_two_postgres_connections_migrate_once(pg_dsn):
    first, second = open_ledger(pg_dsn), open_ledger(pg_dsn)
    assert first.schema_version() == second.schema_version() == ledger_db.SCHEMA_VERSION
    first.close()
    second.close()


def test_open_ledger_picks_the_backend(tmp_path, pg_dsn):
    assert isinstance(open_ledger(str(tmp_path / "x.sqlite")), LedgerDB)
    assert isinstance(open_ledger(pg_dsn), PgLedgerDB)
    assert ledger_db.is_postgres("postgresql://u@h/db") and not ledger_db.is_postgres("/var/x.sqlite")


def test_parked_receipts_are_held_once_and_released_in_order(ledger_target):
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        with db.transaction() as tx:
            db.lock_charger(tx, "cp1")
            assert db.next_index(tx, "cp1") == 0 and db.lock_chargers(tx, ["cp1"]) == {"cp1": (0, 0)}
            db.park(tx, "cp1", 2, "cp/cp1/receipt/3", b"third")
            db.park(tx, "cp1", 1, "cp/cp1/receipt/2", b"second")
            db.park(tx, "cp1", 1, "cp/cp1/receipt/2", b"second")        # a resend: held once
        assert [(p["log_index"], p["payload"]) for p in db.parked("cp1")] == [(1, b"second"), (2, b"third")]
        with db.transaction() as tx:
            db.park(tx, "cp1", 2, "cp/cp1/checkpoint/4", b"cp-size-2")
            db.insert_receipt(tx, _receipt(0))
            assert db.next_index(tx, "cp1") == 1
            assert db.take_parked(tx, "cp1", 1) == [("cp/cp1/receipt/2", b"second")]
            db.insert_receipt(tx, _receipt(1))
            assert db.take_parked(tx, "cp1", 2) == [("cp/cp1/receipt/3", b"third"),
                                                     ("cp/cp1/checkpoint/4", b"cp-size-2")]
        assert db.parked() == []


def test_cosignatures_keep_the_newest_per_cosigner(ledger_target):
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        with db.transaction() as tx:
            db.insert_cosignature(tx, "cp1", 3, "val-1", "01020304", b"r" * 32, 100, "— val-1 AAAA", b"n")
            db.insert_cosignature(tx, "cp1", 3, "val-2", "05060708", b"r" * 32, 101, "— val-2 BBBB", b"n")
            db.insert_cosignature(tx, "cp1", 3, "val-1", "01020304", b"r" * 32, 200, "— val-1 CCCC", b"n")
        rows = db.cosignatures("cp1", 3)
        assert [(r["cosigner"], r["timestamp"], r["line"]) for r in rows] == [
            ("val-1", 200, "— val-1 CCCC"), ("val-2", 101, "— val-2 BBBB")]
        assert rows[0]["root"] == b"r" * 32 and rows[0]["note"] == b"n"
        assert db.cosignatures("cp1", 4) == []


def test_a_batch_commits_once_and_a_failed_inner_transaction_rolls_back_alone(ledger_target):
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        with db.batch():
            with db.transaction() as tx:
                db.insert_receipt(tx, _receipt(0))
            with pytest.raises(db.IntegrityError):
                with db.transaction() as tx:
                    db.insert_receipt(tx, _receipt(1))
                    db.insert_receipt(tx, _receipt(0, receipt=b"other"))
            with db.transaction() as tx:
                db.insert_receipt(tx, _receipt(1, receipt=b"kept"))
            assert db.log_size("cp1") == 2              # visible inside the batch
            other = open_ledger(ledger_target)
            assert other.log_size("cp1") == 0           # not yet committed
        assert other.log_size("cp1") == 2 and other.receipt_at("cp1", 1)["receipt"] == b"kept"
        with pytest.raises(RuntimeError):
            with db.batch():
                with db.transaction() as tx:
                    db.insert_receipt(tx, _receipt(2))
                raise RuntimeError("crash before commit")
        assert other.log_size("cp1") == 2 and db.log_size("cp1") == 2
        other.close()


def test_single_statement_inserts_in_a_batch_are_seen_by_every_later_statement(ledger_target):
    """statement() inserts inside a batch (SQLite: written together, by one executemany) are
    there for every read and write that follows in the batch, go with its commit, and go
    nowhere with its rollback; a conflict among them fails the batch."""
    with open_ledger(ledger_target) as db:
        db.enroll("cp1", PUB_A)
        with db.batch() as batch_tx:
            for i in range(3):
                with db.statement() as tx:
                    db.insert_receipt(tx, _receipt(i))
            assert db.log_size("cp1") == 3                               # a read through the store
            assert batch_tx.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 3
            with db.statement() as tx:
                db.insert_receipt(tx, _receipt(3))
            with db.transaction() as tx:                                 # a savepoint after them
                assert tx.execute("SELECT MAX(log_index) FROM receipts").fetchone()[0] == 3
            with db.statement() as tx:
                db.insert_receipt(tx, _receipt(4))
        assert db.leaf_hashes("cp1") == [bytes([i]) * 32 for i in range(5)]
        with pytest.raises(RuntimeError):
            with db.batch():
                with db.statement() as tx:
                    db.insert_receipt(tx, _receipt(5))
                raise RuntimeError("crash before commit")
        assert db.log_size("cp1") == 5
        with pytest.raises(db.IntegrityError):
            with db.batch():
                with db.statement() as tx:
                    db.insert_receipt(tx, _receipt(5))
                with db.statement() as tx:
                    db.insert_receipt(tx, _receipt(4, receipt=b"other"))
        assert db.log_size("cp1") == 5 and db.receipt_at("cp1", 4)["receipt"] == b"receipt-4"
        with db.batch():                                                 # nothing left over
            pass
        assert db.log_size("cp1") == 5
