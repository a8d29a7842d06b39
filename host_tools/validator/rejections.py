"""Bounded record of refused messages: junk must not fill the disk.

A refused message that does not carry its charger's valid signature is stored as its SHA-256,
its size and a short prefix (PREFIX_BYTES), never whole. At most CAP_PER_HOUR refusals are
stored per charger and hour; refusals on topics of chargers that are not enrolled share one
bucket ('*'), since anyone can invent charger ids. Beyond the cap only a counter grows
(store table rejection_drops, written at most every FLUSH_S seconds and on close).

Rows are written through (one transaction each) unless `batch_rows` > 1: the MQTT service
sets it, so that a flood of junk costs one commit per batch instead of one fsync per message;
the service flushes whenever its queue runs empty (a crash loses at most one batch of junk
records, never a receipt, a checkpoint or evidence).

Evidence (a charger's own signed messages that contradict each other or its log) is kept
whole and is never capped: it is bounded by what the charger itself signs.
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

PREFIX_BYTES = 64
CAP_PER_HOUR = 200
FLUSH_S = 10.0
NOT_ENROLLED = "*"

Key = Tuple[str, int]


class RejectionLog:
    def __init__(self, db: Any, clock: Callable[[], float], cap_per_hour: int = CAP_PER_HOUR,
                 prefix_bytes: int = PREFIX_BYTES) -> None:
        self.db = db
        self.clock = clock
        self.cap_per_hour = cap_per_hour
        self.prefix_bytes = prefix_bytes
        self._stored: Dict[Key, int] = {}       # (bucket, hour) -> refusals stored
        self._dropped: Dict[Key, int] = {}      # (bucket, hour) -> refusals not yet counted on disk
        self._last_flush = time.monotonic()
        self._pending: list = []                # rows waiting for the next batch commit
        self._lock = threading.RLock()
        self.batch_rows = 1
        self.dropped_total = 0

    def record(self, charger_id: str, enrolled: bool, kind: str, reason: str, detail: str, topic: str,
               payload: bytes, evidence: Optional[tuple], authenticated: bool) -> str:
        """Store one refusal; returns 'evidence', 'stored' or 'dropped' (over the cap)."""
        now = int(self.clock())
        stored_evidence = False
        if evidence and authenticated and not self._known_gap(charger_id, evidence):
            with self.db.transaction() as tx:
                self.db.insert_evidence(tx, charger_id, evidence[0], evidence[1], evidence[2], detail, now)
            stored_evidence = True
        key = (charger_id if enrolled else NOT_ENROLLED, now // 3600)
        if self._count(key) >= self.cap_per_hour:
            self._drop(key)
            return "evidence" if stored_evidence else "dropped"
        raw = payload if authenticated else payload[:self.prefix_bytes]
        row = (charger_id if enrolled else None, kind, reason, detail[:300], topic[:200], raw, now,
               hashlib.sha256(payload).hexdigest(), len(payload))
        with self._lock:
            self._pending.append(row)
            self._stored[key] += 1
            if len(self._pending) >= self.batch_rows:
                self.flush()
        return "evidence" if stored_evidence else "stored"

    def insert_authentic(self, tx: Any, charger_id: str, kind: str, reason: str, detail: str, topic: str,
                         payload: bytes, now: int, digest: Optional[str] = None) -> None:
        """Inside the transaction that stores an authentic but disputed receipt: whole bytes
        (digest: their SHA-256 hex, if the caller has it)."""
        self.db.insert_rejection(tx, charger_id, kind, reason, detail, topic, payload, now,
                                 sha256=digest or hashlib.sha256(payload).hexdigest(), size=len(payload))

    def _count(self, key: Key) -> int:
        if key not in self._stored:
            bucket, hour = key
            self._stored[key] = self.db.count_rejections(None if bucket == NOT_ENROLLED else bucket,
                                                         hour * 3600, hour * 3600 + 3600)
        return self._stored[key]

    def _drop(self, key: Key) -> None:
        with self._lock:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            self.dropped_total += 1
            if time.monotonic() - self._last_flush >= FLUSH_S:
                self.flush()

    def flush(self) -> None:
        """Write the pending rows and the counters of refusals that were not stored."""
        with self._lock:
            rows, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, {}
            self._last_flush = time.monotonic()
            if not rows and not dropped:
                return
            with self.db.transaction() as tx:
                for r in rows:
                    self.db.insert_rejection(tx, *r[:7], sha256=r[7], size=r[8])
                for (bucket, hour), n in sorted(dropped.items()):
                    self.db.add_rejection_drops(tx, bucket, hour, n)

    def _known_gap(self, charger_id: str, evidence: tuple) -> bool:
        """A validator that missed record n sees every later record as a gap until n arrives
        (or `chargeproof replay` fills it): one piece of evidence per hole is enough."""
        return evidence[0] == "gap" and self.db.has_evidence(charger_id, "gap", bytes(evidence[1]))
