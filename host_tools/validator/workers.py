"""Validator workers: any number of processes of one validator identity share the chargers' load
and one store, with group commit and signature checks in parallel.

    python -m host_tools.validator.workers --store "host=/run/pg dbname=ledger" --id val-1 \\
        --worker w1 --host broker --port 1883 --cosign-key val-1.key [--peer VKEY ...]

How the load is shared. Every worker subscribes to the MQTT shared subscriptions
`$share/<validator id>/cp/+/receipt/+` and `.../checkpoint/+`: the broker hands each message to
one worker of the group, round robin (Mosquitto does this per message, with no stickiness per
publisher: two receipts of one charger may reach two workers in either order).

How each charger's log stays strictly ordered. A worker processes a batch of messages inside one
store transaction that first locks the rows of the batch's chargers (PostgreSQL: SELECT ... FOR
UPDATE, in sorted order, so two workers never deadlock; SQLite: the file's one write lock), then
brings its in-memory Merkle tree of each of them up to the store (another worker may have
appended). A receipt whose predecessor is not stored yet (it is in another worker's batch, or
still on its way) is authentic but early: it is *parked* in the store, not acknowledged and not
evidence; whoever stores the predecessor takes it out of the parking table in the same
transaction and stores it next (and acknowledges it). A checkpoint bigger than the log is parked
the same way. Parking reaches at most PARK_AHEAD indexes past the log; beyond that it is the
engine's `gap` (evidence, as before); so is a parked record whose predecessor has not come
within PARK_EXPIRE_S (checked when its charger is next in a batch: chargers resend what is not
acknowledged). The parking itself is the engine's (host_tools/validator/engine.py), shared
with the single-process Validator.

Why killing a worker at any moment loses nothing and bills nothing twice. MQTT PUBACKs are
manual and sent only after the batch committed; acks to the chargers are published only after
commit. A worker killed before its commit leaves nothing in the store and nothing acknowledged:
the broker redelivers its in-flight messages when it reconnects, and the charger's outbox
resends everything unacknowledged in any case. A receipt stored twice is impossible: (charger,
log index) is the primary key, and a resend of stored bytes is a `duplicate` (acked again, not
stored again).

Throughput. A batch is one commit (one fsync on SQLite, one WAL flush on PostgreSQL) instead of
one per message. Each message is parsed once (the engine takes the parsed receipt from the
batch's pre-pass). With --verify-procs N (default: one per spare core), the two P-256 signatures
of each receipt (k = 2: the receipt's and its OCMF record's) and each checkpoint's go to N
processes in chunks of VERIFY_CHUNK as soon as the pre-pass has parsed them, so the pool checks
signatures while the worker parses the rest and stores the first; the engine asks for each
verdict in its own order of checks (waiting for its chunk if need be). A pool that fails is no
verdict: its chunk is checked in the worker and the pool restarted.
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from host_tools.verify import formats
from host_tools.validator import checks
from host_tools.validator.checks import Result
from host_tools.validator.service import MAX_MESSAGE, Validator
from host_tools.validator.store import open_ledger
from host_tools.validator import witness as witness_mod
from host_tools.validator.verifypool import VerifyPool

BATCH_SIZE = 128
BATCH_WAIT_S = 0.004         # how long a worker waits to fill a batch once it has one message
SIGS_PER_RECEIPT = 2         # the receipt's signature and its OCMF record's
VERIFY_CHUNK = 32            # signatures per task handed to a verify process

_log = logging.getLogger("chargeproof.validator.workers")


# ---- signature checks in other processes (host_tools.validator.verifypool) ------------------------
def default_verify_procs() -> int:
    """Signature processes when none is asked for: one per core beyond the worker's own (at
    most 4: the worker's parsing and storing must keep up with them)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class CachedReads:
    """The store as the checks see it in a worker: the reads every receipt makes (its charger,
    its tariff, the previous receipt, the last receipt of its meter) answered from memory once
    known, and a charger's checkpoints loaded once; all kept current by this worker's own
    inserts. Valid only while this worker holds the charger's lock and no one else wrote since
    it last looked: Worker._sync_trees compares the store's log size and checkpoint count with
    ours under the lock and drops a charger's entries when either moved without us; a failed
    batch drops all. Everything else goes to the store unchanged."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def clear(self, charger_id: Optional[str] = None) -> None:
        if charger_id is None:
            # per charger only its newest receipt (what the next one is checked against): a
            # worker that runs for months must not hold every receipt it ever stored
            self._rows: Dict[str, dict] = {}
            self._last: Dict[tuple, Optional[dict]] = {}
            self._chargers: Dict[str, Optional[dict]] = {}
            self._empty: set = set()
            self._cps: Dict[str, Dict[int, dict]] = {}
            return
        self._empty.discard(charger_id)
        self._cps.pop(charger_id, None)
        self._rows.pop(charger_id, None)
        self._last = {k: v for k, v in self._last.items() if k[0] != charger_id}

    def charger(self, charger_id: str) -> Optional[dict]:
        if charger_id not in self._chargers:
            self._chargers[charger_id] = self._db.charger(charger_id)
        got = self._chargers[charger_id]
        return dict(got) if got is not None else None

    def tariff(self, tariff_hash: str) -> Any:
        # Only a tariff found is kept: one not yet published may arrive at any moment (on
        # tariff/<id>, through any worker), and must count from then on.
        key = ("tariff", tariff_hash)
        got = self._last.get(key)
        if got is None:
            got = self._db.tariff(tariff_hash)
            if got is not None:
                self._last[key] = got
        return got

    def receipt_at(self, charger_id: str, log_index: int) -> Optional[dict]:
        row = self._rows.get(charger_id)
        if row is not None and row["log_index"] == log_index:
            return row
        return self._db.receipt_at(charger_id, log_index)

    def mark_empty(self, charger_id: str) -> None:
        """The charger's log is empty (seen under its lock): no previous receipt of any meter."""
        self._empty.add(charger_id)

    def last_receipt(self, charger_id: str, meter_serial: Optional[str] = None,
                     any_meter: bool = False) -> Optional[dict]:
        key = (charger_id, None if any_meter else meter_serial, any_meter)
        if key not in self._last and charger_id in self._empty:
            return None
        if key not in self._last:
            self._last[key] = self._db.last_receipt(charger_id, meter_serial, any_meter=any_meter)
        return self._last[key]

    # checkpoints: a charger's are loaded once (one round trip), then kept current
    def _checkpoints(self, charger_id: str) -> Dict[int, dict]:
        cps = self._cps.get(charger_id)
        if cps is None:
            cps = self._cps[charger_id] = {r["size"]: r for r in self._db.checkpoints(charger_id)}
        return cps

    def knows_checkpoints(self, charger_id: str, count: int) -> bool:
        """False if the store holds another number of this charger's checkpoints than we do."""
        cps = self._cps.get(charger_id)
        return cps is None or len(cps) == count

    def checkpoint(self, charger_id: str, size: int) -> Optional[dict]:
        return self._checkpoints(charger_id).get(size)

    def latest_checkpoint(self, charger_id: str) -> Optional[dict]:
        cps = self._checkpoints(charger_id)
        return cps[max(cps)] if cps else None

    def checkpoint_below(self, charger_id: str, size: int) -> Optional[dict]:
        below = [s for s in self._checkpoints(charger_id) if s < size]
        return self._cps[charger_id][max(below)] if below else None

    def checkpoint_above(self, charger_id: str, size: int) -> Optional[dict]:
        above = [s for s in self._checkpoints(charger_id) if s > size]
        return self._cps[charger_id][min(above)] if above else None

    def insert_checkpoint(self, tx: Any, charger_id: str, size: int, root: bytes, note: bytes,
                          received_at: Optional[int] = None) -> None:
        self._db.insert_checkpoint(tx, charger_id, size, root, note, received_at)
        self._checkpoints(charger_id)[size] = {"charger_id": charger_id, "size": size, "root": bytes(root),
                                               "note": bytes(note), "received_at": received_at}

    def insert_receipt(self, tx: Any, row: dict) -> None:
        self._db.insert_receipt(tx, row)
        cid = row["charger_id"]
        self._empty.discard(cid)
        kept = dict(row, receipt=bytes(row["receipt"]), leaf_hash=bytes(row["leaf_hash"]))
        self._rows[cid] = kept
        self._last[(cid, None, True)] = kept
        self._last[(cid, row.get("meter_serial"), False)] = kept


class Worker(Validator):
    """One worker process's validator: a Validator (engine + MQTT service) that takes batches."""

    def __init__(self, store: Any, validator_id: str, worker_name: str = "w0", cosigner: Any = None,
                 peers: Any = (), batch_size: int = BATCH_SIZE, batch_wait_s: float = BATCH_WAIT_S,
                 verify_procs: int = 0, **kw: Any) -> None:
        db = open_ledger(store)
        self.cache = CachedReads(db)
        Validator.__init__(self, getattr(db, "where", str(store)), validator_id, store=self.cache, **kw)
        self.worker_name = worker_name
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self._sigcache: Dict[Tuple[bytes, bytes, bytes], bool] = {}
        self._sigwait: Dict[Tuple[bytes, bytes, bytes], Tuple[Any, list]] = {}
        self._pending: Dict[Any, list] = {}      # ticket -> chunk: in the pool, answer not read
        self._parsed: Dict[Tuple[str, bytes], dict] = {}
        self._pool = VerifyPool(verify_procs) if verify_procs > 0 else None
        self.verify_procs = verify_procs
        self.witnessing: Any = None
        if cosigner is not None:
            self.witnessing = witness_mod.Witnessing(self.db, validator_id, cosigner, peers,
                                                     clock=self.clock, trees=self.registry.tree)
        self._cosign_due: List[Tuple[Any, Any, bytes]] = []

    # ---- parse once, signatures in parallel ---------------------------------------------------
    def _parse_receipt(self, body: bytes, charger_id: str) -> dict:
        rc = self._parsed.pop((charger_id, body), None)
        return rc if rc is not None else Validator._parse_receipt(self, body, charger_id)

    def _verify(self, pub_der: bytes, message: bytes, sig_der: bytes) -> bool:
        if self._pool is None:
            self.count("sig_verifications")
            return Validator._verify(self, pub_der, message, sig_der)
        key = (bytes(pub_der), bytes(message), bytes(sig_der))
        if key not in self._sigcache and key in self._sigwait:
            self._collect(key)
        got = self._sigcache.get(key)
        if got is not None:
            return got
        self.count("sig_verifications")
        return Validator._verify(self, pub_der, message, sig_der)

    def _collect(self, key: Tuple[bytes, bytes, bytes]) -> None:
        """Wait for the pool's verdicts on the chunk holding key. A pool that failed is not a
        verdict on any message: its chunk is checked here instead."""
        ticket, chunk = self._sigwait[key]
        self._take(ticket, chunk)

    def _take(self, ticket: Any, chunk: list) -> None:
        assert self._pool is not None
        if self._pending.pop(ticket, None) is None:
            return
        verdicts = self._pool.result(ticket)
        if verdicts is None:                     # a verify process died (OOM, killed)
            _log.warning("signature pool failed: checking in the worker")
            self.count("pool_errors")
        for i, triple in enumerate(chunk):
            self._sigwait.pop(triple, None)
            if verdicts is not None:
                self._sigcache[triple] = verdicts[i]

    def _preverify(self, items: List[Tuple[str, bytes]]) -> None:
        """Parse every message of the batch once (the engine takes the parsed receipt from
        here) and, with a pool, hand their signatures to it a chunk at a time as soon as a chunk
        is parsed: the pool checks signatures while this process parses the rest of the batch
        and stores the first receipts. Nothing is decided here: the engine asks for each verdict
        in its own order of checks, and anything not parsed here is parsed and checked there."""
        self._parsed = {}
        chunk: List[Tuple[bytes, bytes, bytes]] = []
        for topic, payload in items:
            route = formats.route(topic)
            if route is None or not payload or len(payload) > MAX_MESSAGE:
                continue
            charger = self.registry.charger(route[0])
            if charger is None:
                continue
            pub, body = charger["pubkey_der"], bytes(payload)
            try:
                if route[1] == "receipt":
                    rc = self._parsed[(route[0], body)] = checks.parse_receipt(body, route[0])
                    pairs = [(rc["signed"], rc["signature"]), (rc["ocmf_signed"], rc["ocmf_signature"])]
                else:
                    cp = checks.parse_checkpoint(body, charger["key_id_hex"])
                    pairs = [(cp["signed"], cp["signature"])]
            except Exception:                    # the engine rejects it with the reason
                continue
            if self._pool is not None:
                chunk += [(pub, bytes(m), bytes(sig)) for m, sig in pairs]
                if len(chunk) >= VERIFY_CHUNK:
                    self._submit(chunk)
                    chunk = []
        if chunk:
            self._submit(chunk)

    def _submit(self, chunk: List[Tuple[bytes, bytes, bytes]]) -> None:
        assert self._pool is not None
        ticket = self._pool.submit(chunk)
        if ticket is None:                       # no process took it: checked here
            self.count("pool_errors")
            return
        self.count("sig_verifications", len(chunk))
        self._pending[ticket] = chunk
        for triple in chunk:
            self._sigwait[triple] = (ticket, chunk)

    def _settle(self) -> None:
        """Read the answers to this batch's chunks that no check asked for (a message refused
        before its signatures): nothing may stay in the pipes for the next batch."""
        for ticket, chunk in list(self._pending.items()):
            self._take(ticket, chunk)

    # ---- batches ---------------------------------------------------------------------------------
    def _sync_trees(self, tx: Any, charger_ids: List[str]) -> None:
        """Lock the chargers' rows (sorted: no deadlock between workers) and bring the cached
        trees up to what the store holds (another worker may have appended)."""
        sizes = self.db.lock_chargers(tx, charger_ids)
        self._has_parked = self.db.parked_chargers(tx)
        for cid, (held, checkpoints) in sizes.items():
            tree = self.registry.tree(cid)
            if tree.size != held or not self.cache.knows_checkpoints(cid, checkpoints):
                self.cache.clear(cid)            # another worker appended: our reads are stale
            if held == 0:
                self.cache.mark_empty(cid)
            if tree.size < held:
                for h in self.db.leaf_hashes(cid, start=tree.size):
                    tree.append_hash(h)
            elif tree.size > held:
                self.registry._trees.pop(cid, None)

    def _one(self, topic: Any, payload: bytes, drain: bool = True) -> Result:
        result = Validator._one(self, topic, payload, drain)
        if result.kind == "checkpoint" and result.status == "accepted" and self.witnessing is not None:
            self._cosign_due.append((result.charger_id, result.index, payload))
        return result

    def process_batch(self, items: List[Tuple[str, bytes]]) -> Tuple[List[Optional[Result]], List[tuple]]:
        """Check and store a batch in one transaction. Returns (results per item, extra
        publications: acks of drained parked messages, cosigned checkpoints, evidence). Nothing
        of it may be published before this returns (the batch has committed then)."""
        self._preverify(items)
        chargers = sorted({r[0] for r in (formats.route(t) for t, _ in items) if r is not None})
        results: List[Optional[Result]] = []
        self._drained: List[Result] = []
        self._cosign_due = []
        publish: List[tuple] = []
        with self._lock:
            try:
                with self.db.batch() as tx:
                    self._sync_trees(tx, chargers)
                    # this batch's chargers are locked: their expired parked records go now
                    self._drained = self.expire_parked(chargers)
                    for topic, payload in items:
                        results.append(self._one(str(topic), bytes(payload)))
                    for cid, size, note in self._cosign_due:
                        publish += self.witnessing.cosign_in(tx, cid, size, note)
            except BaseException:
                # the store rolled back: what the cached trees learnt in this batch is not there
                for cid in chargers + [r.charger_id for r in self._drained if r.charger_id]:
                    self.registry._trees.pop(cid, None)
                self.cache.clear()
                self.rejections.flush()
                raise
            finally:
                self._settle()
                self._sigcache.clear()
                self._sigwait.clear()
                self._parsed = {}
        for r in self._drained:
            publish += self._publications(r)
        for r in self._drained:
            if self.on_result is not None:
                self.on_result(r)
        return results, publish

    def process(self, topic: Any, payload: bytes) -> Any:
        results, publish = self.process_batch([(topic, payload)])
        self._pending_publish = publish
        result = results[0]
        if result is not None:
            result.also = list(self._drained)
        return result

    def _publications(self, result: Result) -> List[tuple]:
        out = []
        if result.ack is not None:
            out.append((result.ack_topic, result.ack, False))
        if result.evidence is not None and result.charger_id is not None:
            out.append((formats.evidence_topic(result.charger_id, self.validator_id),
                        formats.evidence_payload(result), False))
        return out

    # ---- MQTT: shared subscriptions, batches from the queue, PUBACK after commit ------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            return
        subs = [("$share/%s/%s" % (self.validator_id, t), 1) for t in formats.subscriptions()]
        if self.operator_key is not None:
            # Not shared: every worker gets the published tariffs (first, with the retained
            # ones), and storing one twice is a no-op.
            subs.insert(0, (formats.TARIFF_FILTER, 1))
        if self.witnessing is not None:
            subs.append((witness_mod.cosig_subscription(), 1))
        client.subscribe(subs)

    on_subscribed: Any = None

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        Validator._on_subscribe(self, client, userdata, mid, reason_codes, properties)
        if self.on_subscribed is not None:
            self.on_subscribed()

    def submit(self, topic: str, payload: bytes) -> None:
        """Hand a message to the worker as if the broker had delivered it (a message that
        reached this validator by another path); processed with the next batch."""
        self._queue.put((self._client, topic, bytes(payload), None, 0))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if witness_mod.route_cosig(msg.topic) is not None:
            item = (client, msg.topic, bytes(msg.payload), msg.mid, msg.qos)
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                client.ack(msg.mid, msg.qos)
            return
        Validator._on_message(self, client, userdata, msg)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self.count("batches")
            self.count("batched_messages", len(batch))
            self._handle_batch(batch)

    def _handle_batch(self, batch: List[tuple]) -> None:
        client = batch[0][0]
        peers = [b for b in batch if witness_mod.route_cosig(b[1]) is not None]
        msgs = [b for b in batch if witness_mod.route_cosig(b[1]) is None]
        try:
            publish: List[tuple] = []
            if msgs:
                results, publish = self.process_batch([(b[1], b[2]) for b in msgs])
                for r in results:
                    if r is not None:
                        publish += self._publications(r)
                        if self.on_result is not None:
                            self.on_result(r)
            for b in peers:
                publish += self.witnessing.peer_message(b[1], b[2])
            for topic, payload, retain in publish:
                client.publish(topic, payload, qos=1, retain=retain)
        except Exception as exc:                  # store down: nothing acked, the broker and the chargers resend
            self.count("internal_error")
            self.last_error = exc
            _log.exception("batch of %d not processed", len(batch))
            time.sleep(0.5)
            return                                 # no PUBACK: redelivered on reconnect
        for b in batch:
            if b[3] is not None:
                b[0].ack(b[3], b[4])

    def _make_client(self, spec: Any) -> Any:
        from host_tools import mqtt_conn
        # One persistent session per worker (its own client id); the group shares the load.
        client = mqtt_conn.client(spec, client_id="validator-%s-%s" % (self.validator_id, self.worker_name),
                                  clean_session=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        return client

    def close(self) -> None:
        Validator.close(self)
        if self._pool is not None:
            self._pool.close()


# ---- processes ------------------------------------------------------------------------------------
def worker_command(store: str, validator_id: str, worker_name: str, host: str, port: int,
                   cosign_key: Optional[str] = None, peers: Any = (), verify_procs: int = 0,
                   batch_size: int = BATCH_SIZE, tariffs: Any = (), ready_file: Optional[str] = None) -> List[str]:
    cmd = [sys.executable, "-m", "host_tools.validator.workers", "--store", store, "--id", validator_id,
           "--worker", worker_name, "--host", host, "--port", str(port), "--verify-procs", str(verify_procs),
           "--batch", str(batch_size)]
    if ready_file:
        cmd += ["--ready-file", ready_file]
    if cosign_key:
        cmd += ["--cosign-key", cosign_key]
    for p in peers:
        cmd += ["--peer", p]
    for t in tariffs:
        cmd += ["--tariff", t]
    return cmd


def spawn_worker(*args: Any, log_path: Optional[str] = None, **kw: Any) -> subprocess.Popen:
    """Start one worker process (its own session: SIGKILL reaches it alone)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(worker_command(*args, **kw), stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.validator.workers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="PostgreSQL conninfo/URL, or a SQLite file (one worker)")
    ap.add_argument("--id", required=True, help="the validator identity all its workers share")
    ap.add_argument("--worker", default="w0", help="this worker's name (its MQTT client id suffix)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--cosign-key", help="Ed25519 cosigning key file (made on first use)")
    ap.add_argument("--peer", action="append", default=[], help="another validator's cosigner vkey")
    ap.add_argument("--tariff", action="append", default=[], help="tariff document JSON file to publish")
    ap.add_argument("--verify-procs", type=int, default=None,
                    help="processes checking signatures in parallel (default: one per spare core, at most 4;"
                         " 0: in the worker)")
    ap.add_argument("--batch", type=int, default=BATCH_SIZE, help="messages per group commit")
    ap.add_argument("--ready-file", help="touched once the broker confirmed the subscriptions")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s " + args.worker + " %(levelname)s %(message)s")
    from host_tools.verify import cosignature as cs
    cosigner = witness_mod.load_cosigner(args.cosign_key, args.id) if args.cosign_key else None
    peers = [cs.parse_vkey(p) for p in args.peer]
    tariffs = [open(t).read() for t in args.tariff]
    w = Worker(args.store, args.id, args.worker, cosigner=cosigner, peers=peers, tariffs=tariffs,
               verify_procs=default_verify_procs() if args.verify_procs is None else args.verify_procs,
               batch_size=args.batch, host=args.host, port=args.port)
    if args.ready_file:
        def ready(*a: Any) -> None:
            open(args.ready_file, "w").close()
        w.on_subscribed = ready

    def terminate(*a: Any) -> None:
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, terminate)
    try:
        w.run(args.host, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        w.close()
        batches = w.counts.get("batches", 0)
        # how full the group commits were (the batch takes what is queued, up to --batch)
        print("worker %s: %d batches, %.1f messages per batch; counts %s"
              % (args.worker, batches, w.counts.get("batched_messages", 0) / max(1, batches),
                 dict(sorted(w.counts.items()))), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
