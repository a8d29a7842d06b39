"""Telemetry and health as a time series, for the dashboard's curves: a side table in the
validator's SQLite file, written through its own connection, with bounded retention.

Not billing data: telemetry (`cp/<charger>/telemetry`, QoS 0) and health (`cp/<charger>/health`,
retained) are unsigned, so anyone on the broker could publish them; they are only stored for
enrolled chargers, size-checked and integer-checked, and never influence a receipt's verdict.
Its tables are created here (IF NOT EXISTS), not by the ledger's numbered migrations: dropping
them loses nothing recorded.

    ts = TimeSeries(db_path); ts.attach(paho_client)     # the validator does this (a writer thread)
    ts.telemetry("CP-001", t0, t1)  ->  [{"t", "w", "wh", "price", "received_at"}...]
    ts.latest_health()              ->  {charger: {"state", "fault", "heap_min", ...}}
"""
import json
import queue
import sqlite3
import threading
import time

MAX_PAYLOAD = 512
KEEP_S = 14 * 86400                 # rows older than this (receive time) are dropped
MAX_ROWS_PER_CHARGER = 50000        # and at most this many per charger and table
PRUNE_EVERY = 2000                  # inserts between two prunings
QUEUE_MAX = 5000                    # messages waiting for the writer; beyond, they are dropped

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS telemetry (
        charger_id   TEXT NOT NULL,
        t            INTEGER NOT NULL,      -- the charger's clock (epoch s), else receive time
        w            INTEGER NOT NULL,
        wh           INTEGER NOT NULL,      -- energy of the running session so far
        price        INTEGER NOT NULL,      -- running cost, minor units
        received_at  REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS telemetry_by_time ON telemetry (charger_id, t)",
    """CREATE TABLE IF NOT EXISTS health (
        charger_id     TEXT NOT NULL,
        received_at    REAL NOT NULL,
        state          TEXT,
        fault          TEXT,
        heap_min       INTEGER,
        outbox_pending INTEGER,
        log_size       INTEGER,
        uptime_s       INTEGER)""",
    "CREATE INDEX IF NOT EXISTS health_by_time ON health (charger_id, received_at)",
]
HEALTH_INTS = ("heap_min", "outbox_pending", "log_size", "uptime_s")


class TimeSeries:
    def __init__(self, db_path, keep_s=KEEP_S, max_rows=MAX_ROWS_PER_CHARGER, clock=time.time):
        self.keep_s, self.max_rows, self.clock = keep_s, max_rows, clock
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")        # live values: a lost second is fine
        self.db.execute("PRAGMA busy_timeout=5000")
        for statement in SCHEMA:
            self.db.execute(statement)
        self.inserts = 0
        self.dropped = 0

    # ---- writing ---------------------------------------------------------------------------
    def attach(self, client, prefix="cp"):
        """Route a paho client's telemetry and health messages here (the validator's own
        on_message never sees them), and subscribe to them on every connect. The network
        thread only queues them: a writer thread stores them in batches, so a flood of
        telemetry never delays a receipt's verification or its ack."""
        filters = ["%s/+/telemetry" % prefix, "%s/+/health" % prefix]
        self._queue = queue.Queue(QUEUE_MAX)
        threading.Thread(target=self._writer, name="timeseries-writer", daemon=True).start()
        for f in filters:
            client.message_callback_add(f, lambda c, u, msg: self._enqueue(msg.topic, msg.payload))
        previous = client.on_connect

        def on_connect(c, userdata, flags, reason_code, properties):
            if previous is not None:
                previous(c, userdata, flags, reason_code, properties)
            if not reason_code.is_failure:
                c.subscribe([(f, 0) for f in filters])
        client.on_connect = on_connect
        return self

    def _enqueue(self, topic, payload):
        try:
            self._queue.put_nowait((topic, bytes(payload[:MAX_PAYLOAD + 1]), self.clock()))
        except queue.Full:
            self.dropped += 1

    def _writer(self):
        while True:
            batch = [self._queue.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.lock:
                    self.db.execute("BEGIN")
                    try:
                        for topic, payload, now in batch:
                            self._record_counted(topic, payload, now)
                    finally:
                        self.db.execute("COMMIT")
            except sqlite3.Error:
                self.dropped += len(batch)
            except Exception:                 # a closed database: the validator is stopping
                return

    def record(self, topic, payload, received_at=None):
        """Store one telemetry or health message now; False (and counted) if it is refused."""
        with self.lock:
            try:
                return self._record_counted(topic, payload, self.clock() if received_at is None else received_at)
            except sqlite3.Error:
                self.dropped += 1
                return False

    def _record_counted(self, topic, payload, now):
        try:
            ok = self._record(topic, payload, now)
        except (ValueError, TypeError, RecursionError, sqlite3.IntegrityError, sqlite3.DataError):
            ok = False
        if not ok:
            self.dropped += 1
        return ok

    def _record(self, topic, payload, now):
        if isinstance(topic, bytes):
            topic = topic.decode("utf-8", "replace")
        parts = topic.split("/")
        if len(parts) != 3 or parts[2] not in ("telemetry", "health") or len(payload) > MAX_PAYLOAD:
            return False
        charger_id, kind = parts[1], parts[2]
        doc = json.loads(payload, parse_float=lambda s: None, parse_constant=lambda s: None)
        if not isinstance(doc, dict) or not self._enrolled(charger_id):
            return False
        if kind == "telemetry":
            vals = [doc.get(k) for k in ("w", "wh", "price")]
            t = doc.get("t", int(now))
            if not all(_small_int(v) for v in vals + [t]):
                return False
            self.db.execute("INSERT INTO telemetry VALUES (?,?,?,?,?,?)", [charger_id, t] + vals + [now])
        else:
            ints = [doc.get(k) for k in HEALTH_INTS]
            if not all(v is None or _small_int(v) for v in ints):
                return False
            texts = [doc.get(k) for k in ("state", "fault")]
            if not all(v is None or (isinstance(v, str) and len(v) <= 64) for v in texts):
                return False
            self.db.execute("INSERT INTO health VALUES (?,?,?,?,?,?,?,?)", [charger_id, now] + texts + ints)
        self.inserts += 1
        if self.inserts % PRUNE_EVERY == 0:
            self._prune(now)
        return True

    def _enrolled(self, charger_id):
        try:
            return self.db.execute("SELECT 1 FROM chargers WHERE charger_id=?", (charger_id,)).fetchone() is not None
        except sqlite3.OperationalError:      # no ledger in this file (a bare time series)
            return True

    def _prune(self, now):
        for table in ("telemetry", "health"):
            self.db.execute("DELETE FROM %s WHERE received_at < ?" % table, (now - self.keep_s,))
            self.db.execute(
                "DELETE FROM %s WHERE rowid IN (SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER "
                "(PARTITION BY charger_id ORDER BY rowid DESC) AS n FROM %s) WHERE n > ?)" % (table, table),
                (self.max_rows,))

    def prune(self):
        with self.lock:
            self._prune(self.clock())

    def close(self):
        with self.lock:
            self.db.close()

    # ---- reading ---------------------------------------------------------------------------
    def telemetry(self, charger_id, t0=None, t1=None, limit=5000):
        """Telemetry of one charger between charger times t0 and t1 (inclusive), oldest first."""
        sql = "SELECT t, w, wh, price, received_at FROM telemetry WHERE charger_id=?"
        args = [charger_id]
        if t0 is not None:
            sql += " AND t >= ?"
            args.append(t0)
        if t1 is not None:
            sql += " AND t <= ?"
            args.append(t1)
        sql += " ORDER BY t, rowid LIMIT ?"
        args.append(limit)
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, args)]

    def recent_telemetry(self, since_received, limit=2000):
        """{charger: [points...]} of telemetry received after since_received (wall clock)."""
        out = {}
        with self.lock:
            rows = self.db.execute("SELECT charger_id, t, w, wh, price, received_at FROM telemetry "
                                   "WHERE received_at > ? ORDER BY charger_id, t LIMIT ?", (since_received, limit))
            for r in rows:
                out.setdefault(r["charger_id"], []).append(dict(r))
        return out

    def latest_health(self):
        with self.lock:
            rows = self.db.execute(
                "SELECT h.* FROM health h JOIN (SELECT charger_id, MAX(rowid) AS id FROM health "
                "GROUP BY charger_id) m ON h.rowid = m.id").fetchall()
            return {r["charger_id"]: dict(r) for r in rows}

    def last_seen(self):
        """{charger: latest receive time of any telemetry or health}."""
        with self.lock:
            rows = self.db.execute("SELECT charger_id, MAX(received_at) FROM (SELECT charger_id, received_at "
                                   "FROM telemetry UNION ALL SELECT charger_id, received_at FROM health) "
                                   "GROUP BY charger_id").fetchall()
            return {r[0]: r[1] for r in rows}


def _small_int(v):
    return type(v) is int and -2 ** 53 < v < 2 ** 53
