"""The validator's decision loop for one message: route it, run the checks
(host_tools.validator.checks) in order, record the verdict in the store, and say what to
acknowledge. No MQTT here (host_tools.validator.service), no proof building
(host_tools.validator.proofs).

Order of checks for a receipt (the first failure decides the reason):
  size, envelope, parse ..... malformed (numbers, nesting and sizes are bounded before any
                              conversion: host_tools.verify.strictjson)
  charger enrolled .......... unknown-charger
  receipt + OCMF signatures . bad-signature / bad-ocmf-signature / unknown-key (when both
                              signatures recover to one key that is not the enrolled one)
  -- nothing before this line is evidence: only the charger's valid signature can accuse it --
  log position .............. duplicate (same bytes: ack again, count once)
                              fork (other bytes at a stored index: evidence)
                              gap (index beyond our log: evidence, not stored, not acked)
  -- from here the receipt is authentic and part of the charger's log: it is stored whatever
     the verdict, because later leaves and checkpoints build on it --
  receipt vs its OCMF ....... energy-mismatch, begin-after-end, time-mismatch, charger-mismatch,
                              pagination-mismatch, inconsistent  (evidence: self-contradiction)
  seq continuity ............ pagination-gap (evidence)
  time sanity ............... time-order / time-future / time-overlap
  meter continuity .......... meter-backwards (evidence); energy between sessions -> flagged
  tariff .................... unknown-tariff / price-mismatch
A published tariff (tariff/<id>, retained) is stored when the operator key signed it and it is
a valid version 2 tariff whose id is the topic's; anything else there is a `malformed` refusal
of kind "tariff" that changes nothing.

A receipt failing a check after the log position is stored with status 'disputed' and a
rejection row; it is acknowledged (the verdict is final, resending cannot change it).

For a checkpoint: parse, charger, origin, key id, signature; then split-view (evidence),
gap (not stored, not acked), fork (evidence), time-future, RFC 9162 proofs against the
stored checkpoints.

Never acknowledged: anything whose signature does not verify against the enrolled key.
Any unexpected failure inside a check is a `malformed` rejection, never an exception out of
process(); rejections of unauthenticated messages are stored bounded
(host_tools.validator.rejections).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from host_tools.verify import formats, merkle, sigcheck
from host_tools.validator import checks
from host_tools.validator.acks import AckKeys
from host_tools.validator.checks import Reject, Result
from host_tools.validator.proofs import proof_bundle
from host_tools.validator.registry import Registry
from host_tools.validator.rejections import RejectionLog
from host_tools.validator.store import DATABASE_ERRORS, LedgerError, open_ledger

DEFAULT_SKEW_S = 300          # a charger clock may run this far ahead of ours
MAX_MESSAGE = 8192            # receipts are <= 2048 bytes (firmware/ledger/log.py RECEIPT_MAX)

# Failures of the infrastructure (disk, database), not of the message: they propagate, the
# message is not acknowledged, and the charger resends it later.
INFRASTRUCTURE_ERRORS: tuple = (OSError, MemoryError) + DATABASE_ERRORS

# Early records (authentic, beyond the log we hold: their predecessor has not come yet, e.g.
# after a broker restart a charger resends before the validator has resubscribed) are parked
# in the store, not acknowledged and not evidence, and stored in order as soon as the
# predecessor is stored. Bounded: at most PARK_AHEAD indexes past the log and PARK_MAX records
# per charger (beyond either: a `gap` at once); a parked record whose predecessor has not come
# within PARK_EXPIRE_S (ten times a charger's 30 s resend period) is checked again without
# parking: a real `gap` (rejection and evidence), unless the log has caught up meanwhile.
PARK_AHEAD = 64
PARK_MAX = 64
PARK_EXPIRE_S = 300
EXPIRY_CHECK_S = 1.0          # how often the service looks for expired parked records

# Naming the key that signed a receipt the enrolled key did not (ECDSA key recovery, ~2 ms with
# OpenSSL doing the scalar work: sigcheck.recover_keys) is rationed: anyone can send such
# receipts, at any rate.
RECOVERIES_PER_S = 2.0
RECOVERY_BURST = 5


class TokenBucket:
    def __init__(self, per_s: float, burst: int) -> None:
        self.per_s, self.burst = per_s, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

_log = logging.getLogger("chargeproof.validator")


def _check_validator_id(validator_id: str) -> None:
    if not validator_id or any(c in validator_id for c in "/+#"):
        raise ValueError("validator id must be a plain MQTT topic level: %r" % (validator_id,))


class Engine:
    """Checks and records messages one at a time (the log position checks read, then write)."""

    def __init__(self, db_path: str, validator_id: str, tariffs: Iterable[Any] = (),
                 backend: str = "fast", skew_s: int = DEFAULT_SKEW_S,
                 clock: Callable[[], float] = time.time, store: Optional[Any] = None,
                 park_ahead: int = PARK_AHEAD, park_max: int = PARK_MAX,
                 park_expire_s: float = PARK_EXPIRE_S,
                 operator_key: Optional[bytes] = None) -> None:
        _check_validator_id(validator_id)
        # The operator's public key (SPKI DER): tariffs published on tariff/<id> must carry its
        # signature. None: published tariffs are refused (only --tariff files count).
        if operator_key is not None and not sigcheck.valid_public_key(operator_key):
            raise ValueError("operator key is not a P-256 SubjectPublicKeyInfo")
        self.operator_key = operator_key
        if backend not in sigcheck.BACKENDS:
            raise ValueError("backend must be one of %s" % (sigcheck.BACKENDS,))
        self.db = store if store is not None else open_ledger(db_path)
        self.registry = Registry(self.db)
        self.ack_keys = AckKeys(self.db)         # per charger, made at enrollment (acks.py)
        self.validator_id = validator_id
        self.backend = backend
        self.skew_s = skew_s
        self.clock = clock
        self.rejections = RejectionLog(self.db, clock)
        self._lock = threading.RLock()
        self._recoveries = TokenBucket(RECOVERIES_PER_S, RECOVERY_BURST)
        self.counts: Dict[str, int] = {}
        self.park_ahead, self.park_max, self.park_expire_s = park_ahead, park_max, park_expire_s
        self._has_parked = set(self.db.parked_charger_ids())   # chargers with parked records
        self._parking = True                     # off while expired records are checked again
        self._drained: List[Result] = []
        for doc in tariffs:
            self.publish_tariff(doc)

    # ---- registry --------------------------------------------------------------------------
    def enroll(self, charger_id: str, pubkey_der: bytes, origin: Optional[str] = None) -> str:
        kid = self.registry.enroll(charger_id, pubkey_der, origin)
        self.ack_keys.ensure(charger_id)         # the charger gets it by provisioning
        return kid

    def publish_tariff(self, document: Union[str, bytes, dict]) -> str:
        return self.registry.publish_tariff(document)

    def proof_bundle(self, charger_id: str, seq: Optional[int] = None, index: Optional[int] = None) -> dict:
        return proof_bundle(self.db, charger_id, seq=seq, index=index, tree=self.registry.tree(charger_id))

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # ---- the entry point -------------------------------------------------------------------
    def process(self, topic: Union[str, bytes], payload: bytes) -> Result:
        """Check one MQTT message and record the verdict. The store has committed before this
        returns; the caller publishes result.ack (if any) afterwards."""
        with self._lock:
            self._drained = []
            result = self._one(topic, bytes(payload))
            result.also, self._drained = self._drained, []
        return result

    def _one(self, topic: Union[str, bytes], payload: bytes, drain: bool = True) -> Result:
        """One message, then whatever it let out of the parking (into self._drained)."""
        result = self._process(topic, payload)
        self.count("%s_%s" % (result.kind, result.status))
        if drain and result.kind == "receipt" and result.ack is not None and result.status != "duplicate":
            self._drain(str(result.charger_id), self._drained)
        return result

    # ---- parking: early but authentic -------------------------------------------------------
    def _park(self, kind: str, charger_id: str, topic: str, payload: bytes) -> Optional[Result]:
        """Park an authentic record beyond the log, within the bounds; None if it may not wait."""
        need = self._needed_size(kind, payload, charger_id)
        tree = self.registry.tree(charger_id)
        if not self._parking or need is None or need - tree.size > self.park_ahead:
            return None
        with self.db.transaction() as tx:
            if not self.db.park(tx, charger_id, need, topic, payload, int(self.clock()), limit=self.park_max):
                return None
        self._has_parked.add(charger_id)
        self.count("parked")
        result = Result(kind, charger_id, "parked", "early",
                        "waits for the log to hold %d receipts (holds %d)" % (need, tree.size))
        result.digest = hashlib.sha256(payload).hexdigest()
        return result

    @staticmethod
    def _needed_size(kind: str, payload: bytes, charger_id: str) -> Optional[int]:
        try:
            if kind == "receipt":
                return int(checks.parse_receipt(payload, charger_id)["index"])
            return int(checks.parse_checkpoint(payload)["size"])
        except Exception:
            return None

    def _drain(self, charger_id: str, results: List[Result]) -> None:
        """Process what was parked for this charger and can go now (each may unlock more)."""
        while charger_id in self._has_parked:
            size = self.registry.tree(charger_id).size
            with self.db.transaction() as tx:
                ready = self.db.take_parked(tx, charger_id, size)
                if not self.db.has_parked(tx, charger_id):
                    self._has_parked.discard(charger_id)
            if not ready:
                return
            for topic, payload in ready:
                results.append(self._one(topic, payload, drain=False))

    def expire_parked(self, charger_ids: Optional[Iterable[str]] = None) -> List[Result]:
        """Parked records older than park_expire_s (of these chargers, or all) are checked
        again with parking off: a `gap` now, with its evidence, unless the log caught up.
        Returns their results and those of what they let through."""
        results: List[Result] = []
        if not self._has_parked:
            return results
        with self._lock:
            self._drained = []
            cutoff = int(self.clock()) - self.park_expire_s
            wanted = self._has_parked if charger_ids is None else self._has_parked & set(charger_ids)
            for cid in sorted(wanted):
                with self.db.transaction() as tx:
                    old = self.db.take_parked_before(tx, cid, cutoff)
                    if not self.db.has_parked(tx, cid):
                        self._has_parked.discard(cid)
                self._parking = False
                try:
                    for topic, payload in old:
                        self.count("park_expired")
                        results.append(self._one(topic, payload))
                finally:
                    self._parking = True
            results += self._drained
            self._drained = []
        return results

    def _process(self, topic: Union[str, bytes], payload: bytes) -> Result:
        if formats.tariff_route(topic) is not None:
            return self._published_tariff(topic, payload)
        route = formats.route(topic)
        if route is None:
            return Result("unknown", None, "ignored", "not-our-topic", str(topic)[:200])
        charger_id, kind = route
        state = {"authenticated": False}
        try:
            if len(payload) > MAX_MESSAGE:
                raise Reject("malformed", "%d bytes, more than %d" % (len(payload), MAX_MESSAGE))
            envelope = formats.unwrap(kind, payload, topic)
            if kind == "receipt":
                return self._receipt(charger_id, topic, payload, envelope, state)
            return self._checkpoint(charger_id, payload, envelope, state)
        except formats.FormatError as exc:
            rej = Reject("malformed", str(exc))
        except Reject as exc:
            rej = exc
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:               # a check failed in a way nobody foresaw
            _log.warning("check failed on %s: %r", topic, exc)
            self.count("check_errors")
            rej = Reject("malformed", "unreadable: %s: %s" % (type(exc).__name__, str(exc)[:200]))
        return self._rejected(kind, charger_id, str(topic), payload, rej, state["authenticated"])

    def _ack(self, result: Result, envelope: dict) -> Result:
        result.ack_topic = formats.ack_topic(str(result.charger_id), self.validator_id)
        # result.digest, when set, is the SHA-256 of these same bytes (payload == envelope body)
        result.ack = self.ack_keys.ack(self.validator_id, str(result.charger_id), envelope["kind"],
                                       envelope["outbox_seq"], envelope["body"], result.digest)
        return result

    def _rejected(self, kind: str, charger_id: str, topic: str, payload: bytes, rej: Reject,
                  authenticated: bool) -> Result:
        """Record a refusal (no ack). Evidence only if the charger's signature verified. An
        authentic record that is merely early is parked instead (see PARK_AHEAD)."""
        if rej.reason == "gap" and authenticated and self.park_ahead > 0:
            parked = self._park(kind, charger_id, topic, payload)
            if parked is not None:
                return parked
        evidence = rej.evidence if authenticated else None
        enrolled = authenticated or self.registry.charger(charger_id) is not None
        stored = self.rejections.record(charger_id, enrolled, kind, rej.reason, rej.detail, topic,
                                        payload, evidence, authenticated)
        result = Result(kind, charger_id, "rejected", rej.reason, rej.detail)
        result.evidence = evidence[0] if evidence and stored == "evidence" else None
        result.digest = hashlib.sha256(payload).hexdigest()
        return result

    # ---- published tariffs -------------------------------------------------------------------
    def _published_tariff(self, topic: Union[str, bytes], payload: bytes) -> Result:
        topic_text = topic if isinstance(topic, str) else topic.decode("utf-8", "replace")
        try:
            if self.operator_key is None:
                raise formats.FormatError("no operator key configured: published tariffs are refused")
            document = formats.parse_signed_tariff(payload, topic_text, self.operator_key, self.backend)
            tariff_hash = self.publish_tariff(document)
        except (formats.FormatError, UnicodeDecodeError) as exc:
            self.rejections.record("", False, "tariff", "malformed", str(exc), topic_text, payload,
                                   None, False)
            return Result("tariff", None, "rejected", "malformed", str(exc))
        except LedgerError as exc:          # the same hash with another text: cannot happen
            return Result("tariff", None, "rejected", "malformed", str(exc))
        return Result("tariff", None, "accepted", "", tariff_hash)

    # ---- receipts --------------------------------------------------------------------------
    def _enrolled(self, charger_id: str) -> dict:
        charger = self.registry.charger(charger_id)
        if charger is None:
            raise Reject("unknown-charger", "charger %s is not enrolled" % charger_id)
        return charger

    def _parse_receipt(self, body: bytes, charger_id: str) -> dict:
        return checks.parse_receipt(body, charger_id)

    def _verify(self, pub_der: bytes, message: bytes, sig_der: bytes) -> bool:
        return sigcheck.verify(pub_der, message, sig_der, self.backend)

    def _receipt(self, charger_id: str, topic: Union[str, bytes], payload: bytes, envelope: dict,
                 state: dict) -> Result:
        body = envelope["body"]
        rc = self._parse_receipt(body, charger_id)
        pub = self._enrolled(charger_id)["pubkey_der"]
        checks.receipt_signatures(rc, pub, charger_id, self._verify, identify=self._recoveries.take)
        state["authenticated"] = True
        index = rc["index"]
        tree = self.registry.tree(charger_id)
        leaf = merkle.leaf_hash(body)            # hashed once: position check, row and tree
        if checks.log_position(self.db, tree, charger_id, index, body, leaf):
            result = Result("receipt", charger_id, "duplicate", "", "index %d already stored" % index, index)
            return self._ack(result, envelope)
        return self._store_receipt(charger_id, str(topic), payload, envelope, rc, tree, leaf)

    def _store_receipt(self, charger_id: str, topic: str, payload: bytes, envelope: dict, rc: dict,
                       tree: merkle.Tree, leaf: bytes) -> Result:
        """An authentic receipt, next in the log: stored whatever the billing verdict."""
        now = int(self.clock())
        index, body = rc["index"], envelope["body"]
        status, reason, detail, evidence = "accepted", "", "", None
        try:
            note = self._billing(charger_id, rc, now)
            if note:
                status, detail = "flagged", note
        except Reject as rej:
            status, reason, detail, evidence = "disputed", rej.reason, rej.detail, rej.evidence
        row = dict(rc)
        row.update(charger_id=charger_id, log_index=index, leaf_hash=leaf, receipt=body,
                   status=status, note=(reason + ": " + detail) if reason else detail, received_at=now)
        digest = hashlib.sha256(payload).hexdigest()     # once: the rejection row, the result, the ack
        if not reason:
            # one statement: atomic by itself (inside a batch no savepoint is needed)
            with self.db.statement() as tx:
                self.db.insert_receipt(tx, row)
        else:
            with self.db.transaction() as tx:
                self.db.insert_receipt(tx, row)
                self.rejections.insert_authentic(tx, charger_id, "receipt", reason, detail, topic, payload,
                                                 now, digest)
                if evidence:
                    self.db.insert_evidence(tx, charger_id, evidence[0], evidence[1], evidence[2], detail, now)
        tree.append_hash(leaf)
        result = Result("receipt", charger_id, "rejected" if reason else status, reason, detail, index)
        result.evidence = evidence[0] if evidence else None
        result.digest = digest
        return self._ack(result, envelope)

    def _billing(self, charger_id: str, rc: dict, now: int) -> str:
        try:
            return checks.billing(self.db, charger_id, rc, now, self.skew_s)
        except (Reject,) + INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:               # authentic but unreadable for billing: disputed
            self.count("check_errors")
            raise Reject("malformed", "billing check failed: %s: %s" % (type(exc).__name__, str(exc)[:200]))

    # ---- checkpoints -----------------------------------------------------------------------
    def _checkpoint(self, charger_id: str, payload: bytes, envelope: dict, state: dict) -> Result:
        note = envelope["body"]
        checks.parse_checkpoint(note)
        charger = self._enrolled(charger_id)
        cp = checks.parse_checkpoint(note, charger["key_id_hex"])
        checks.checkpoint_signature(cp, charger, self._verify)
        state["authenticated"] = True
        size = cp["size"]
        now = int(self.clock())
        tree = self.registry.tree(charger_id)
        if checks.checkpoint_position(self.db, tree, charger_id, cp, note, now, self.skew_s):
            return self._ack(Result("checkpoint", charger_id, "duplicate", "", "size %d" % size, size), envelope)
        with self.db.transaction() as tx:
            self.db.insert_checkpoint(tx, charger_id, size, cp["root"], note, now)
        return self._ack(Result("checkpoint", charger_id, "accepted", "", "size %d" % size, size), envelope)

    def close(self) -> None:
        self.rejections.flush()
        self.db.close()
