"""The validator's ledger: one storage interface, two backends with the same schema.

  LedgerDB(path)          SQLite on disk (stdlib sqlite3), one file per validator: the embedded
                          default, one process.
  PgLedgerDB(conninfo)    PostgreSQL (psycopg 3): several worker processes of one validator
                          identity share it; per-charger order comes from a row lock on the
                          charger (`lock_charger`), taken inside the writing transaction.
  open_ledger(target)     either, by the target's form ("postgresql://...", "host=... dbname=..."
                          or a file path).

Every statement is written once, in SQLite's dialect with `?` parameters; the PostgreSQL backend
translates the few differences mechanically (types in DDL, `?` -> `%s`, `IS ?`), so the two
schemas cannot drift apart.

What it holds
  chargers     enrolled chargers: id, public key (SPKI DER hex), C2SP key id, log origin
  tariffs      published tariff documents by their canonical hash
  receipts     every authentic receipt of a charger's log, by log index (the validator's full
               copy of the log: leaf hashes come from here); status says whether it bills:
               'accepted', 'flagged' (accepted with a note, e.g. energy drawn between
               sessions) or 'disputed' (in the log, signed, but a check such as the price failed)
  checkpoints  signed checkpoints (tree heads) per charger and size
  rejections   every message refused, with its reason and the raw bytes
  evidence     misbehaviour: both conflicting items (split view, fork, gap, unknown key, ...)
  cosignatures witness cosignatures (C2SP tlog-cosignature) on charger checkpoints: our own and
               those of the other validators we read (served with proofs)
  parked       authentic receipts that reached a worker before their predecessor was stored:
               held here (not lost, not a gap) until the predecessor lands, then stored in order

Why it is built like this
  - Durability before acknowledgement: the validator acks a receipt only after the transaction
    that stored it has committed. WAL mode with synchronous=FULL makes a commit survive a power
    cut, so an ack never names something the store could still lose.
  - Idempotence: (charger, log index) is the primary key of a receipt; a resend of the same
    bytes is a duplicate (acked again, counted once), different bytes at the same index are a
    fork (evidence, decided by the validator).
  - Schema versioning: `schema_version` holds one number; MIGRATIONS are applied in order, in
    one transaction with the new number (PostgreSQL's DDL is transactional too, and an advisory
    lock lets one of several starting workers migrate). A store written by a newer version is
    refused, never guessed at.
"""
import contextlib
import hashlib
import re
import sqlite3
import threading
import time

from host_tools.firmware_rules import IdError, check_charger_id, default_origin
from host_tools.verify.checkpoint import key_id as c2sp_key_id

SCHEMA_VERSION = 5


try:
    import psycopg as _psycopg
    _PG_ERRORS: tuple = (_psycopg.Error,)
except ImportError:                 # PostgreSQL support is optional for an embedded validator
    _PG_ERRORS = ()

# A failing store (disk, lock, connection, constraint raced by another worker) is not a verdict
# on the message being checked: the caller must not acknowledge it, the message comes again.
DATABASE_ERRORS: tuple = (sqlite3.Error,) + _PG_ERRORS


class LedgerError(Exception):
    """Bad use of the ledger: unknown charger, conflicting enrolment, newer schema, ..."""


# Each migration takes the database from version n-1 to n. Never edit a released one: add one.
MIGRATIONS = {
    1: [
        """CREATE TABLE chargers (
            charger_id   TEXT PRIMARY KEY,
            pubkey_hex   TEXT NOT NULL,          -- SPKI DER, hex
            key_id_hex   TEXT NOT NULL,          -- SHA-256(SPKI DER)[:4], as C2SP notes name keys
            origin       TEXT,                   -- the checkpoint origin line this charger signs
            enrolled_at  INTEGER NOT NULL)""",
        """CREATE TABLE tariffs (
            tariff_hash  TEXT PRIMARY KEY,       -- canonical hash, hex
            document     TEXT NOT NULL,
            published_at INTEGER NOT NULL)""",
        """CREATE TABLE receipts (
            charger_id   TEXT NOT NULL REFERENCES chargers(charger_id),
            log_index    INTEGER NOT NULL,
            seq          INTEGER NOT NULL,       -- the charger's session sequence number
            leaf_hash    BLOB NOT NULL,          -- RFC 9162 leaf hash of the receipt bytes
            receipt      BLOB NOT NULL,          -- exact bytes as signed by the charger
            ocmf         TEXT NOT NULL,
            meter_serial TEXT,
            transaction_id TEXT,
            begin_wh     INTEGER NOT NULL,
            end_wh       INTEGER NOT NULL,
            energy_wh    INTEGER NOT NULL,
            price_minor  INTEGER NOT NULL,
            currency     TEXT NOT NULL,
            tariff_hash  TEXT NOT NULL,
            begin_time   INTEGER NOT NULL,
            end_time     INTEGER NOT NULL,
            status       TEXT NOT NULL CHECK (status IN ('accepted', 'flagged', 'disputed')),
            note         TEXT NOT NULL DEFAULT '',
            received_at  INTEGER NOT NULL,
            PRIMARY KEY (charger_id, log_index))""",
        "CREATE INDEX receipts_seq ON receipts (charger_id, seq)",
        """CREATE TABLE checkpoints (
            charger_id   TEXT NOT NULL REFERENCES chargers(charger_id),
            size         INTEGER NOT NULL,
            root         BLOB NOT NULL,
            note         BLOB NOT NULL,          -- the signed note, exact bytes
            received_at  INTEGER NOT NULL,
            PRIMARY KEY (charger_id, size))""",
        """CREATE TABLE rejections (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            charger_id   TEXT,
            kind         TEXT NOT NULL,          -- 'receipt', 'checkpoint', 'message'
            reason       TEXT NOT NULL,          -- a short stable code, e.g. 'bad-signature'
            detail       TEXT NOT NULL DEFAULT '',
            topic        TEXT NOT NULL DEFAULT '',
            raw          BLOB NOT NULL,
            received_at  INTEGER NOT NULL)""",
        """CREATE TABLE evidence (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            charger_id   TEXT,
            kind         TEXT NOT NULL,          -- 'split-view', 'fork', 'gap', 'unknown-key', ...
            first        BLOB NOT NULL,          -- what we held (or expected)
            second       BLOB NOT NULL,          -- what contradicts it
            detail       TEXT NOT NULL DEFAULT '',
            received_at  INTEGER NOT NULL)""",
    ],
    2: [
        # Meter continuity is checked per meter: a replaced meter starts its own chain.
        "CREATE INDEX receipts_meter ON receipts (charger_id, meter_serial, log_index)",
    ],
    3: [
        """CREATE TABLE cosignatures (
            charger_id   TEXT NOT NULL REFERENCES chargers(charger_id),
            size         INTEGER NOT NULL,
            cosigner     TEXT NOT NULL,          -- the witness's key name (a validator id)
            key_id_hex   TEXT NOT NULL,          -- C2SP key id of the witness's Ed25519 key
            root         BLOB NOT NULL,          -- the root it cosigned (for split-view checks)
            timestamp    INTEGER NOT NULL,       -- the cosignature's own time (seconds)
            line         TEXT NOT NULL,          -- the signature line, exactly as published
            note         BLOB NOT NULL,          -- the charger-signed checkpoint it cosigns
            received_at  INTEGER NOT NULL,
            PRIMARY KEY (charger_id, size, cosigner))""",
        """CREATE TABLE parked (
            charger_id   TEXT NOT NULL REFERENCES chargers(charger_id),
            log_index    INTEGER NOT NULL,
            digest       TEXT NOT NULL,          -- SHA-256 hex of the payload
            topic        TEXT NOT NULL,
            payload      BLOB NOT NULL,
            received_at  INTEGER NOT NULL,
            PRIMARY KEY (charger_id, log_index, digest))""",
    ],
    4: [
        # Refused junk is stored bounded (host_tools/validator/rejections.py): its hash, size
        # and a prefix, at most a cap per charger and hour; beyond it only a counter grows.
        "ALTER TABLE rejections ADD COLUMN sha256 TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE rejections ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX rejections_time ON rejections (charger_id, received_at)",
        """CREATE TABLE rejection_drops (
            charger_id   TEXT NOT NULL,          -- '*': chargers that are not enrolled
            hour         INTEGER NOT NULL,       -- epoch seconds // 3600
            dropped      INTEGER NOT NULL,
            PRIMARY KEY (charger_id, hour))""",
    ],
    5: [
        # Ack keys (host_tools/validator/acks.py): one 32-byte secret per charger, made at
        # enrollment and provisioned onto the charger; 'next' during a rotation.
        """CREATE TABLE ack_keys (
            charger_id   TEXT NOT NULL,
            kid          TEXT NOT NULL,
            key_hex      TEXT NOT NULL,
            state        TEXT NOT NULL CHECK (state IN ('current', 'next', 'retired')),
            created_at   INTEGER NOT NULL,
            PRIMARY KEY (charger_id, kid))""",
    ],
}


def _now():
    return int(time.time())


_RECEIPT_COLUMNS = ("charger_id", "log_index", "seq", "leaf_hash", "receipt", "ocmf", "meter_serial",
                    "transaction_id", "begin_wh", "end_wh", "energy_wh", "price_minor", "currency",
                    "tariff_hash", "begin_time", "end_time", "status", "note", "received_at")
_INSERT_RECEIPT = "INSERT INTO receipts (%s) VALUES (%s)" % (",".join(_RECEIPT_COLUMNS),
                                                             ",".join("?" * len(_RECEIPT_COLUMNS)))


def _receipt_values(row):
    values = [row.get(c) for c in _RECEIPT_COLUMNS]
    values[3] = bytes(values[3])
    values[4] = bytes(values[4])
    if values[-1] is None:
        values[-1] = _now()
    if values[-2] is None:
        values[-2] = ""
    return values


def key_id_hex(pubkey_der):
    """C2SP key id (host_tools/verify/checkpoint.key_id), hex."""
    return c2sp_key_id(bytes(pubkey_der)).hex()


class _Ledger:
    """What both backends share: every query, in SQLite's dialect. A backend provides _query()
    (a read, fetched whole) and transaction() (yields an object with execute(sql, args))."""
    IntegrityError = sqlite3.IntegrityError
    kind = "?"

    def schema_version(self):
        return self._query("SELECT version FROM schema_version").fetchone()[0]

    def _apply_migrations(self, tx, current):
        if current > SCHEMA_VERSION:
            raise LedgerError("%s: schema version %d is newer than this program's %d"
                              % (self.where, current, SCHEMA_VERSION))
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                tx.execute(self._ddl(statement))
            tx.execute("DELETE FROM schema_version")
            tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    @staticmethod
    def _ddl(statement):
        return statement

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- per-charger order (several workers on one store) -----------------------------------
    def lock_charger(self, tx, charger_id):
        """Inside a transaction(): serialise every writer of this charger's log until commit.
        SQLite's BEGIN IMMEDIATE already holds the one write lock of the file."""

    def lock_chargers(self, tx, charger_ids):
        """Inside a transaction(): lock these chargers' logs (in sorted order) and return
        {charger id: (the log index its next receipt must have, how many checkpoints are
        stored)}, in one round trip."""
        ids = sorted(set(charger_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        if self._for_update:
            # The lock first, the sizes in a statement of their own: under READ COMMITTED a
            # statement that waited for a lock still reads with the snapshot it started with,
            # so sizes read in the locking statement would miss what the lock holder committed.
            tx.execute("SELECT charger_id FROM chargers WHERE charger_id IN (%s) ORDER BY charger_id%s"
                       % (marks, self._for_update), ids).fetchall()
        rows = tx.execute("SELECT c.charger_id,"
                          " (SELECT MAX(log_index) FROM receipts r WHERE r.charger_id=c.charger_id),"
                          " (SELECT COUNT(*) FROM checkpoints k WHERE k.charger_id=c.charger_id)"
                          " FROM chargers c WHERE c.charger_id IN (%s)" % marks, ids).fetchall()
        return {r[0]: (0 if r[1] is None else r[1] + 1, r[2]) for r in rows}

    _for_update = ""

    def parked_chargers(self, tx):
        """Inside a transaction(): the chargers that have parked messages."""
        return {r[0] for r in tx.execute("SELECT DISTINCT charger_id FROM parked").fetchall()}

    def next_index(self, tx, charger_id):
        """Inside a transaction(): the log index the next receipt of this charger must have."""
        row = tx.execute("SELECT MAX(log_index) FROM receipts WHERE charger_id=?", (charger_id,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    # ---- parked receipts (reached a worker before their predecessor) ------------------------
    def park(self, tx, charger_id, log_index, topic, payload, received_at=None, limit=None):
        """Inside a transaction(): hold an authentic message that came too early until the log
        holds log_index receipts (a receipt's own index; a checkpoint's size). Idempotent.
        False (nothing held) if the charger already has `limit` other messages parked."""
        digest = hashlib.sha256(bytes(payload)).hexdigest()
        if tx.execute("SELECT 1 FROM parked WHERE charger_id=? AND log_index=? AND digest=?",
                      (charger_id, log_index, digest)).fetchone() is not None:
            return True
        if limit is not None and tx.execute("SELECT COUNT(*) FROM parked WHERE charger_id=?",
                                            (charger_id,)).fetchone()[0] >= limit:
            return False
        tx.execute("INSERT INTO parked (charger_id, log_index, digest, topic, payload, received_at)"
                   " VALUES (?,?,?,?,?,?)",
                   (charger_id, log_index, digest, topic, bytes(payload),
                    received_at if received_at is not None else _now()))
        return True

    def has_parked(self, tx, charger_id):
        """Inside a transaction(): whether this charger has parked messages."""
        return tx.execute("SELECT 1 FROM parked WHERE charger_id=? LIMIT 1", (charger_id,)).fetchone() is not None

    def parked_charger_ids(self):
        return [r[0] for r in self._query("SELECT DISTINCT charger_id FROM parked")]

    def take_parked_before(self, tx, charger_id, received_before):
        """Inside a transaction(): remove and return the (topic, payload) pairs parked before
        that time (receipts first, in index order)."""
        rows = tx.execute("SELECT topic, payload, log_index FROM parked WHERE charger_id=? AND received_at<?"
                          " ORDER BY log_index, topic", (charger_id, received_before)).fetchall()
        if rows:
            tx.execute("DELETE FROM parked WHERE charger_id=? AND received_at<?", (charger_id, received_before))
        return sorted(((r[0], bytes(r[1])) for r in rows), key=lambda tp: (0 if "/receipt/" in tp[0] else 1))

    def take_parked(self, tx, charger_id, log_size):
        """Inside a transaction(): remove and return the parked (topic, payload) pairs that can
        be processed once the log holds log_size receipts (receipts first, in index order)."""
        rows = tx.execute("SELECT topic, payload, log_index, digest FROM parked WHERE charger_id=? AND log_index<=?"
                          " ORDER BY log_index, topic", (charger_id, log_size)).fetchall()
        if rows:
            tx.execute("DELETE FROM parked WHERE charger_id=? AND log_index<=?", (charger_id, log_size))
        return sorted(((r[0], bytes(r[1])) for r in rows),
                      key=lambda tp: (0 if "/receipt/" in tp[0] else 1))

    def parked(self, charger_id=None):
        if charger_id is None:
            rows = self._query("SELECT * FROM parked ORDER BY charger_id, log_index")
        else:
            rows = self._query("SELECT * FROM parked WHERE charger_id=? ORDER BY log_index", (charger_id,))
        return [_blob_row(r, ("payload",)) for r in rows]

    # ---- witness cosignatures -------------------------------------------------------------
    def insert_cosignature(self, tx, charger_id, size, cosigner, key_id, root, timestamp, line, note,
                           received_at=None):
        """Inside a transaction(): keep a cosignature (the newest per charger, size and cosigner)."""
        # an upsert: several workers may store the same peer's cosignature at once
        tx.execute("INSERT INTO cosignatures VALUES (?,?,?,?,?,?,?,?,?)"
                   " ON CONFLICT (charger_id, size, cosigner) DO UPDATE SET key_id_hex=excluded.key_id_hex,"
                   " root=excluded.root, timestamp=excluded.timestamp, line=excluded.line,"
                   " note=excluded.note, received_at=excluded.received_at",
                   (charger_id, size, cosigner, key_id, bytes(root), timestamp, line, bytes(note),
                    received_at if received_at is not None else _now()))

    def cosignatures(self, charger_id, size=None):
        if size is None:
            rows = self._query("SELECT * FROM cosignatures WHERE charger_id=? ORDER BY size, cosigner",
                               (charger_id,))
        else:
            rows = self._query("SELECT * FROM cosignatures WHERE charger_id=? AND size=? ORDER BY cosigner",
                               (charger_id, size))
        return [_blob_row(r, ("root", "note")) for r in rows]


    # ---- chargers and tariffs --------------------------------------------------------------
    def enroll(self, charger_id, pubkey_der, origin=None, now=None):
        """Enroll a charger with its SPKI DER public key (bytes). Enrolling the same key again is
        a no-op; a different key for an enrolled id is refused (key rotation is a deliberate
        act: `revoke` first)."""
        try:
            check_charger_id(charger_id)          # the firmware's own rule
        except IdError as exc:
            raise LedgerError(str(exc))
        if not isinstance(pubkey_der, (bytes, bytearray)) or not pubkey_der:
            raise LedgerError("public key must be DER bytes")
        pub_hex = bytes(pubkey_der).hex()
        with self.transaction() as db:
            row = db.execute("SELECT pubkey_hex FROM chargers WHERE charger_id=?",
                             (charger_id,)).fetchone()
            if row is not None:
                if row[0] != pub_hex:
                    raise LedgerError("charger %s is already enrolled with another key" % charger_id)
                return key_id_hex(bytes(pubkey_der))
            db.execute("INSERT INTO chargers VALUES (?,?,?,?,?)",
                       (charger_id, pub_hex, key_id_hex(bytes(pubkey_der)),
                        origin or default_origin(charger_id), now if now is not None else _now()))
        return key_id_hex(bytes(pubkey_der))

    def revoke(self, charger_id):
        """Forget a charger's key (its receipts stay). Only allowed while it has no receipts:
        history signed by a key must stay verifiable against that key."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM receipts WHERE charger_id=? LIMIT 1", (charger_id,)).fetchone():
                raise LedgerError("charger %s has receipts; its key cannot be replaced" % charger_id)
            db.execute("DELETE FROM checkpoints WHERE charger_id=?", (charger_id,))
            db.execute("DELETE FROM chargers WHERE charger_id=?", (charger_id,))

    def charger(self, charger_id):
        row = self._query("SELECT * FROM chargers WHERE charger_id=?", (charger_id,)).fetchone()
        return dict(row) if row else None

    def chargers(self):
        rows = self._query(
            """SELECT c.*, (SELECT COUNT(*) FROM receipts r WHERE r.charger_id=c.charger_id) AS receipts,
                      (SELECT MAX(size) FROM checkpoints k WHERE k.charger_id=c.charger_id) AS checkpoint_size
               FROM chargers c ORDER BY c.charger_id""").fetchall()
        return [dict(r) for r in rows]

    def add_tariff(self, tariff_hash, document, now=None):
        """Publish a tariff document under its canonical hash (computed by the caller with
        host_tools.verify.tariff). Idempotent; the same hash with another document is refused."""
        with self.transaction() as db:
            row = db.execute("SELECT document FROM tariffs WHERE tariff_hash=?", (tariff_hash,)).fetchone()
            if row is not None:
                if row[0] != document:
                    raise LedgerError("tariff %s already published with another document" % tariff_hash)
                return
            db.execute("INSERT INTO tariffs VALUES (?,?,?)",
                       (tariff_hash, document, now if now is not None else _now()))

    def tariff(self, tariff_hash):
        row = self._query("SELECT document FROM tariffs WHERE tariff_hash=?", (tariff_hash,)).fetchone()
        return row[0] if row else None

    def tariffs(self):
        return [dict(r) for r in self._query("SELECT * FROM tariffs ORDER BY published_at")]

    # ---- the log ----------------------------------------------------------------------
    def log_size(self, charger_id):
        return self._query("SELECT COUNT(*) FROM receipts WHERE charger_id=?",
                                (charger_id,)).fetchone()[0]

    def leaf_hashes(self, charger_id, start=0):
        """Leaf hashes of the charger's log from index start on, in log order."""
        return [bytes(r[0]) for r in self._query(
            "SELECT leaf_hash FROM receipts WHERE charger_id=? AND log_index>=? ORDER BY log_index",
            (charger_id, start))]

    def receipt_at(self, charger_id, log_index):
        row = self._query("SELECT * FROM receipts WHERE charger_id=? AND log_index=?",
                               (charger_id, log_index)).fetchone()
        return _receipt_row(row)

    def receipt_by_seq(self, charger_id, seq):
        row = self._query("SELECT * FROM receipts WHERE charger_id=? AND seq=? ORDER BY log_index LIMIT 1",
                               (charger_id, seq)).fetchone()
        return _receipt_row(row)

    def last_receipt(self, charger_id, meter_serial=None, any_meter=False):
        """The receipt with the highest log index (of that meter unless any_meter)."""
        if any_meter:
            row = self._query("SELECT * FROM receipts WHERE charger_id=? ORDER BY log_index DESC LIMIT 1",
                                   (charger_id,)).fetchone()
        else:
            row = self._query(
                "SELECT * FROM receipts WHERE charger_id=? AND meter_serial IS ? ORDER BY log_index DESC LIMIT 1",
                (charger_id, meter_serial)).fetchone()
        return _receipt_row(row)

    def insert_receipt(self, db, row):
        """Inside a transaction() or statement(): add one receipt (a dict with the receipts
        columns)."""
        db.execute(_INSERT_RECEIPT, _receipt_values(row))

    def sessions(self, charger_id=None):
        if charger_id is None:
            rows = self._query("SELECT * FROM receipts ORDER BY charger_id, log_index")
        else:
            rows = self._query("SELECT * FROM receipts WHERE charger_id=? ORDER BY log_index",
                                    (charger_id,))
        return [_receipt_row(r) for r in rows]

    def totals(self):
        """Billed energy and money per charger and currency (accepted + flagged receipts)."""
        rows = self._query(
            """SELECT charger_id, currency, COUNT(*) AS sessions, SUM(energy_wh) AS energy_wh,
                      SUM(price_minor) AS price_minor FROM receipts
               WHERE status IN ('accepted','flagged') GROUP BY charger_id, currency
               ORDER BY charger_id, currency""")
        return [dict(r) for r in rows]

    # ---- checkpoints ------------------------------------------------------------------
    def checkpoint(self, charger_id, size):
        row = self._query("SELECT * FROM checkpoints WHERE charger_id=? AND size=?",
                               (charger_id, size)).fetchone()
        return _blob_row(row, ("root", "note"))

    def latest_checkpoint(self, charger_id):
        row = self._query("SELECT * FROM checkpoints WHERE charger_id=? ORDER BY size DESC LIMIT 1",
                               (charger_id,)).fetchone()
        return _blob_row(row, ("root", "note"))

    def checkpoint_below(self, charger_id, size):
        """The biggest stored checkpoint smaller than size, or None."""
        row = self._query("SELECT * FROM checkpoints WHERE charger_id=? AND size<? ORDER BY size DESC LIMIT 1",
                               (charger_id, size)).fetchone()
        return _blob_row(row, ("root", "note"))

    def checkpoint_above(self, charger_id, size):
        """The smallest stored checkpoint bigger than size, or None."""
        row = self._query("SELECT * FROM checkpoints WHERE charger_id=? AND size>? ORDER BY size LIMIT 1",
                               (charger_id, size)).fetchone()
        return _blob_row(row, ("root", "note"))

    def checkpoints(self, charger_id=None):
        if charger_id is None:
            rows = self._query("SELECT * FROM checkpoints ORDER BY charger_id, size")
        else:
            rows = self._query("SELECT * FROM checkpoints WHERE charger_id=? ORDER BY size",
                                    (charger_id,))
        return [_blob_row(r, ("root", "note")) for r in rows]

    def insert_checkpoint(self, db, charger_id, size, root, note, received_at=None):
        db.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?)",
                   (charger_id, size, bytes(root), bytes(note),
                    received_at if received_at is not None else _now()))

    # ---- rejections and evidence -----------------------------------------------------------
    def insert_rejection(self, db, charger_id, kind, reason, detail, topic, raw, received_at=None,
                         sha256="", size=None):
        """raw is what is kept of the message (a prefix for junk); sha256 and size describe
        the whole message."""
        db.execute("INSERT INTO rejections (charger_id, kind, reason, detail, topic, raw, received_at,"
                   " sha256, size) VALUES (?,?,?,?,?,?,?,?,?)",
                   (charger_id, kind, reason, detail or "", topic or "", bytes(raw),
                    received_at if received_at is not None else _now(), sha256 or "",
                    len(raw) if size is None else size))

    def count_rejections(self, charger_id, since, until):
        """Refusals stored for charger_id (None: chargers not enrolled) received in [since, until)."""
        return self._query("SELECT COUNT(*) FROM rejections WHERE charger_id IS ? AND received_at>=?"
                           " AND received_at<?", (charger_id, since, until)).fetchone()[0]

    def add_rejection_drops(self, db, bucket, hour, n):
        """Inside a transaction(): n more refusals of bucket in that hour were not stored."""
        db.execute("INSERT INTO rejection_drops VALUES (?,?,?) ON CONFLICT (charger_id, hour)"
                   " DO UPDATE SET dropped = rejection_drops.dropped + excluded.dropped", (bucket, hour, n))

    def rejection_drops(self):
        return [dict(r) for r in self._query("SELECT * FROM rejection_drops ORDER BY hour, charger_id")]

    def has_evidence(self, charger_id, kind, first):
        return self._query("SELECT 1 FROM evidence WHERE charger_id=? AND kind=? AND first=? LIMIT 1",
                           (charger_id, kind, bytes(first))).fetchone() is not None

    def insert_evidence(self, db, charger_id, kind, first, second, detail, received_at=None):
        db.execute("INSERT INTO evidence (charger_id, kind, first, second, detail, received_at)"
                   " VALUES (?,?,?,?,?,?)",
                   (charger_id, kind, bytes(first), bytes(second), detail or "",
                    received_at if received_at is not None else _now()))

    def rejections(self, charger_id=None):
        if charger_id is None:
            rows = self._query("SELECT * FROM rejections ORDER BY id")
        else:
            rows = self._query("SELECT * FROM rejections WHERE charger_id=? ORDER BY id", (charger_id,))
        return [_blob_row(r, ("raw",)) for r in rows]

    def evidence(self, charger_id=None):
        if charger_id is None:
            rows = self._query("SELECT * FROM evidence ORDER BY id")
        else:
            rows = self._query("SELECT * FROM evidence WHERE charger_id=? ORDER BY id", (charger_id,))
        return [_blob_row(r, ("first", "second")) for r in rows]



class LedgerDB(_Ledger):
    """SQLite backend. Thread-safe (one connection behind a lock): paho's network thread and the
    CLI may share it."""
    kind = "sqlite"

    def __init__(self, path):
        self.path = self.where = str(path)
        self._lock = threading.RLock()
        self._depth = 0                 # > 0 inside batch(): transaction() makes savepoints
        self._deferred = []             # receipt rows of this batch not yet written (insert_receipt)
        self._batch_conn = _BatchConnection(self)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise LedgerError("%s: could not switch to WAL mode (got %s)" % (self.path, mode))
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    # ---- schema -------------------------------------------------------------------------
    def _migrate(self):
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current != SCHEMA_VERSION:
                # all steps and the new version number in one transaction: a crash leaves the
                # old version whole; re-read under the write lock (another process may have won)
                with self.transaction() as tx:
                    row = tx.execute("SELECT version FROM schema_version").fetchone()
                    self._apply_migrations(tx, row[0] if row else 0)

    def _query(self, sql, args=()):
        """A read, fetched whole under the lock: another thread's open transaction on this
        connection cannot interleave with it."""
        with self._lock:
            self._flush()
            return _Rows(self._db.execute(sql, args).fetchall())

    def insert_receipt(self, db, row):
        """As _Ledger.insert_receipt; inside batch() (outside a savepoint) the row waits for
        one executemany with the batch's other receipts, written before any other statement
        runs and before the commit: the same rows in the same transaction, without a statement
        per row."""
        if db is self._batch_conn and self._depth == 1:
            self._deferred.append(_receipt_values(row))
            return
        _Ledger.insert_receipt(self, db, row)

    def _flush(self):
        if self._deferred:
            rows, self._deferred = self._deferred, []
            self._db.executemany(_INSERT_RECEIPT, rows)

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception). When the block returns, the
        writes are on disk: only then may the caller acknowledge them. Inside batch() it is a
        savepoint: rolled back alone on an exception, durable only when the batch commits."""
        with self._lock:
            if self._depth:
                self._flush()
                name = "sp%d" % self._depth
                self._db.execute("SAVEPOINT " + name)
                self._depth += 1
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK TO " + name)
                    self._db.execute("RELEASE " + name)
                    raise
                finally:
                    self._depth -= 1
                self._db.execute("RELEASE " + name)
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def statement(self):
        """For a block that makes exactly one write: transaction() alone, but inside batch() no
        savepoint (one statement is atomic by itself, so there is nothing to roll back alone,
        and a failure rolls the batch back)."""
        with self._lock:
            if not self._depth:
                with self.transaction() as tx:
                    yield tx
                return
            yield self._batch_conn if self._depth == 1 else self._db

    @contextlib.contextmanager
    def batch(self):
        """Group commit: one transaction (one fsync) around many transaction() blocks. Nothing
        inside may be acknowledged before the batch block has returned."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._batch_conn
                self._flush()
            except BaseException:
                self._deferred = []
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._db.execute("COMMIT")

    def close(self):
        with self._lock:
            self._db.close()



class _BatchConnection:
    """What LedgerDB.batch() (and statement() directly inside it) yields: the connection, but
    every statement first writes the receipts deferred by insert_receipt, so that nothing run
    inside the batch sees the store without them."""
    __slots__ = ("_ledger",)

    def __init__(self, ledger):
        self._ledger = ledger

    def execute(self, sql, args=()):
        self._ledger._flush()
        return self._ledger._db.execute(sql, args)

    def executemany(self, sql, rows):
        self._ledger._flush()
        return self._ledger._db.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._ledger._db, name)


# ---- PostgreSQL ------------------------------------------------------------------------------
_PG_DDL = [(re.compile(r"INTEGER PRIMARY KEY AUTOINCREMENT"), "BIGSERIAL PRIMARY KEY"),
           (re.compile(r"\bINTEGER\b"), "BIGINT"),
           (re.compile(r"\bBLOB\b"), "BYTEA")]
_MIGRATION_LOCK = 0x43504C47      # pg_advisory_xact_lock key: one migrating worker at a time


def _pg_sql(sql):
    """SQLite's dialect as the statements here use it -> PostgreSQL's (psycopg's %s params)."""
    return sql.replace("%", "%%").replace("IS ?", "IS NOT DISTINCT FROM ?").replace("?", "%s")


class _PgRow(dict):
    """A row that reads by column name (like sqlite3.Row) and by position."""
    __slots__ = ("_values",)

    def __init__(self, names, values):
        dict.__init__(self, zip(names, values))
        self._values = values

    def __getitem__(self, key):
        if isinstance(key, int):
            return self._values[key]
        return dict.__getitem__(self, key)


def _pg_row_factory(cursor):
    names = [d.name for d in cursor.description] if cursor.description else []
    return lambda values: _PgRow(names, values)


class _PgTx:
    """The object a PostgreSQL transaction() yields: execute(sql, args) in SQLite's dialect."""

    def __init__(self, cursor):
        self._cur = cursor

    def execute(self, sql, args=()):
        self._cur.execute(_pg_sql(sql), tuple(args))
        return self

    def fetchone(self):
        return self._cur.fetchone()

    def fetchall(self):
        return self._cur.fetchall()


class PgLedgerDB(_Ledger):
    _for_update = " FOR UPDATE"
    """PostgreSQL backend (psycopg 3): the store several worker processes of one validator share.
    One connection per instance behind a lock (each worker process opens its own). Durability:
    a COMMIT returns once the WAL is flushed (synchronous_commit on, the server's default), so
    the ack-after-commit rule holds as with SQLite."""
    kind = "postgresql"

    def __init__(self, conninfo):
        import psycopg
        self.IntegrityError = psycopg.errors.IntegrityError
        self.conninfo = conninfo
        self.where = re.sub(r"password=\S+", "password=***", conninfo)
        self._lock = threading.RLock()
        self._db = psycopg.connect(conninfo, autocommit=True, row_factory=_pg_row_factory)
        self._migrate()

    @staticmethod
    def _ddl(statement):
        for pattern, replacement in _PG_DDL:
            statement = pattern.sub(replacement, statement)
        return statement

    def _migrate(self):
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(%d)" % _MIGRATION_LOCK)
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = tx.execute("SELECT version FROM schema_version").fetchone()
            self._apply_migrations(tx, row[0] if row else 0)

    def _query(self, sql, args=()):
        with self._lock:
            return _Rows(self._db.execute(_pg_sql(sql), tuple(args)).fetchall())

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN ... COMMIT (ROLLBACK on any exception); committed (WAL flushed) when the block
        returns. Inside batch() psycopg makes it a savepoint."""
        with self._lock:
            with self._db.transaction():
                with self._db.cursor() as cur:
                    yield _PgTx(cur)

    @contextlib.contextmanager
    def batch(self):
        """Group commit: one transaction around many transaction() blocks (savepoints), in
        pipeline mode: statements whose results nobody reads yet (inserts, savepoints) go out
        without waiting for the server, a round trip only where a result is needed."""
        with self._lock:
            with self._db.pipeline():
                with self._db.transaction():
                    with self._db.cursor() as cur:
                        self._batch_tx = _PgTx(cur)
                        try:
                            yield self._batch_tx
                        finally:
                            self._batch_tx = None

    _batch_tx = None

    @contextlib.contextmanager
    def statement(self):
        """For a block that makes exactly one write: transaction() alone, but inside batch() no
        savepoint (see LedgerDB.statement)."""
        with self._lock:
            if self._batch_tx is None:
                with self.transaction() as tx:
                    yield tx
                return
            yield self._batch_tx

    def lock_charger(self, tx, charger_id):
        tx.execute("SELECT 1 FROM chargers WHERE charger_id=? FOR UPDATE", (charger_id,))

    def close(self):
        with self._lock:
            self._db.close()


def is_postgres(target):
    """True if target names a PostgreSQL database rather than a SQLite file."""
    target = str(target)
    return target.startswith(("postgresql://", "postgres://")) or (
        "dbname=" in target or "host=" in target)


def open_ledger(target):
    """A PgLedgerDB for a PostgreSQL URL or conninfo string, else a SQLite LedgerDB (a path)."""
    if isinstance(target, _Ledger):
        return target
    return PgLedgerDB(str(target)) if is_postgres(target) else LedgerDB(target)


class _Rows(list):
    def fetchone(self):
        return self[0] if self else None

    def fetchall(self):
        return list(self)


def _blob_row(row, blob_cols):
    if row is None:
        return None
    out = dict(row)
    for c in blob_cols:
        if out.get(c) is not None:
            out[c] = bytes(out[c])
    return out


def _receipt_row(row):
    return _blob_row(row, ("leaf_hash", "receipt"))
