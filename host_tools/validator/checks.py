"""The validator's checks: functions over host_tools.verify and read-only questions to the
store. They decide; they write nothing (host_tools.validator.engine records the verdict).

Every check either returns or raises Reject(reason, detail, evidence). Evidence is a tuple
(kind, first bytes, second bytes): only checks that run after the charger's signature was
verified may attach it, since evidence accuses a charger and only its own signature can.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from host_tools.verify import formats, merkle, sigcheck
from host_tools.validator.store import key_id_hex

Evidence = tuple  # (kind: str, first: bytes, second: bytes)
Verifier = Callable[[bytes, bytes, bytes], bool]


class Result:
    """What the validator decided. `ack` is the payload to publish on `ack_topic` (None: no ack)."""
    __slots__ = ("kind", "charger_id", "status", "reason", "detail", "index", "ack", "ack_topic",
                 "evidence", "digest", "also")

    def __init__(self, kind: str, charger_id: Optional[str], status: str, reason: str = "",
                 detail: str = "", index: Optional[int] = None) -> None:
        self.kind = kind
        self.charger_id = charger_id
        self.status = status          # accepted / flagged / duplicate / rejected / parked / ignored
        self.reason = reason
        self.detail = detail
        self.index = index
        self.ack: Optional[bytes] = None
        self.ack_topic: Optional[str] = None
        self.evidence: Optional[str] = None   # kind of evidence stored for this message, if any
        self.digest: Optional[str] = None     # SHA-256 hex of the message
        self.also: List["Result"] = []        # parked records this one let through, in order

    @property
    def stored(self) -> bool:
        return self.ack is not None

    def __repr__(self) -> str:
        return "Result(%s %s %s %s %s)" % (self.kind, self.charger_id, self.status, self.reason, self.detail)


class Reject(Exception):
    """A check failed: `reason` is a short stable code, `evidence` (kind, first, second) or None."""

    def __init__(self, reason: str, detail: str = "", evidence: Optional[Evidence] = None) -> None:
        Exception.__init__(self, reason)
        self.reason = reason
        self.detail = detail
        self.evidence = evidence


# ---- receipts ----------------------------------------------------------------------------------
def parse_receipt(body: bytes, charger_id: str) -> dict:
    """The receipt as formats.parse_receipt's dict, or Reject malformed / wrong-topic."""
    try:
        rc = formats.parse_receipt(body)
    except formats.FormatError as exc:
        raise Reject("malformed", str(exc))
    if rc["charger_id"] != charger_id:
        raise Reject("wrong-topic", "receipt names charger %s on the topic of %s"
                     % (rc["charger_id"], charger_id))
    return rc


def receipt_signatures(rc: dict, pub: bytes, charger_id: str, verify: Verifier,
                       identify: Callable[[], bool] = lambda: True) -> None:
    """Both signatures (the receipt's and its OCMF record's) by the enrolled key, in the one
    encoding the charger emits, or Reject. Nothing here is evidence: a message that does not
    carry the charger's valid signature proves nothing about the charger (anyone can flip a
    byte of a copy, or sign with a key of their own). identify: also name the key that did
    sign it, if identify() allows (ECDSA key recovery, ~2 ms: rationed)."""
    if not canonical_encoding(rc):
        # Another encoding of a valid signature (high S, uppercase hex) would be other bytes
        # with the same meaning: a second leaf at a stored index, i.e. a false fork.
        raise Reject("bad-signature", "receipt signature is not in canonical form (DER, low S, lowercase hex)")
    receipt_ok = verify(pub, rc["signed"], rc["signature"])
    if receipt_ok and verify(pub, rc["ocmf_signed"], rc["ocmf_signature"]):
        return
    other = sigcheck.recover_signer([(rc["signed"], rc["signature"]),
                                     (rc["ocmf_signed"], rc["ocmf_signature"])]) if identify() else None
    if other is not None and other != pub:
        raise Reject("unknown-key", "receipt and OCMF record both signed by key %s, not %s's"
                     % (key_id_hex(other), charger_id))
    if not receipt_ok:
        raise Reject("bad-signature", "receipt signature does not verify with %s's key" % charger_id)
    raise Reject("bad-ocmf-signature", "OCMF signature does not verify with %s's key" % charger_id)


def canonical_encoding(rc: dict) -> bool:
    """The receipt's signature is strict DER with low S, written as lowercase hex."""
    return (rc["receipt"].canonical_signature()
            and rc["raw"].rpartition(b"|")[2] == rc["signature"].hex().encode())


def log_position(db: Any, tree: merkle.Tree, charger_id: str, index: int, body: bytes,
                 leaf: Optional[bytes] = None) -> bool:
    """True if this exact receipt is already at its index (a duplicate), False if it is the
    next one; Reject fork / gap (with evidence: the receipt is authentic) otherwise. leaf: the
    body's RFC 9162 leaf hash, if the caller has it."""
    if leaf is None:
        leaf = merkle.leaf_hash(body)
    if index < tree.size:
        held = db.receipt_at(charger_id, index)
        if held["leaf_hash"] == leaf:
            return True
        raise Reject("fork", "log index %d already holds another receipt" % index,
                     ("fork", held["receipt"], body))
    if index > tree.size:
        raise Reject("gap", "receipt at log index %d, but the log we hold ends at %d"
                     % (index, tree.size), ("gap", str(tree.size).encode(), body))
    return False


def billing(db: Any, charger_id: str, rc: dict, now: int, skew_s: int) -> str:
    """Everything that decides whether an authentic receipt bills. Raises Reject; returns a
    note for a flagged receipt ("" when it simply bills)."""
    problem = formats.receipt_inconsistency(rc)
    if problem:
        raise Reject(problem[0], problem[1], ("self-contradiction", rc["ocmf"].encode(), rc["raw"]))
    _sequence(db, charger_id, rc)
    _times(db, charger_id, rc, now, skew_s)
    note = _meter(db, charger_id, rc)
    _price(db, rc)
    return note


def _sequence(db: Any, charger_id: str, rc: dict) -> None:
    index = rc["index"]
    before = db.receipt_at(charger_id, index - 1) if index else None
    want = before["seq"] + 1 if before else 1
    if rc["seq"] != want:
        # OCMF's PG counter rises by exactly one per record: a skipped number is a record
        # the charger signed but kept out of its log.
        raise Reject("pagination-gap", "receipt seq %d at log index %d, expected %d" % (rc["seq"], index, want),
                     ("pagination-gap", before["receipt"] if before else b"", rc["raw"]))


def _times(db: Any, charger_id: str, rc: dict, now: int, skew_s: int) -> None:
    if rc["end_time"] < rc["begin_time"]:
        raise Reject("time-order", "session ends (%d) before it begins (%d)" % (rc["end_time"], rc["begin_time"]))
    if rc["end_time"] > now + skew_s:
        raise Reject("time-future", "session ends %d s in the future" % (rc["end_time"] - now))
    last = db.last_receipt(charger_id, any_meter=True)
    if last is not None and rc["begin_time"] < last["end_time"]:
        raise Reject("time-overlap", "session begins at %d, before the previous one ended (%d)"
                     % (rc["begin_time"], last["end_time"]))


def _meter(db: Any, charger_id: str, rc: dict) -> str:
    prev = db.last_receipt(charger_id, rc.get("meter_serial"))
    if prev is None:
        return ""
    if rc["begin_wh"] < prev["end_wh"]:
        raise Reject("meter-backwards", "meter %s begins at %d Wh, previous session ended at %d Wh"
                     % (rc.get("meter_serial"), rc["begin_wh"], prev["end_wh"]),
                     ("meter-backwards", prev["receipt"], rc["raw"]))
    if rc["begin_wh"] > prev["end_wh"]:
        return "energy-between-sessions: %d Wh drawn outside any session" % (rc["begin_wh"] - prev["end_wh"])
    return ""


def _price(db: Any, rc: dict) -> None:
    tariff_doc = db.tariff(rc["tariff_hash"])
    if tariff_doc is None:
        raise Reject("unknown-tariff", "tariff %s is not published" % rc["tariff_hash"])
    try:
        if not formats.tariff_in_force(tariff_doc, rc["begin_time"]):
            raise Reject("tariff-not-in-force", "session began at %d, outside tariff %s's validity"
                         % (rc["begin_time"], rc["tariff_hash"]))
        expected = formats.recompute_price(tariff_doc, rc)
    except formats.FormatError as exc:
        raise Reject("price-mismatch", "price cannot be recomputed: %s" % exc)
    if expected != (rc["net"], rc["tax"], rc["price_minor"]):
        raise Reject("price-mismatch", "receipt says net %d + tax %d = %d, tariff gives %d + %d = %d %s"
                     % ((rc["net"], rc["tax"], rc["price_minor"]) + expected + (rc["currency"],)))


# ---- checkpoints -------------------------------------------------------------------------------
def parse_checkpoint(note: bytes, key_id: Optional[str] = None) -> dict:
    try:
        return formats.parse_checkpoint(note, key_id)
    except formats.FormatError as exc:
        raise Reject("malformed", str(exc))


def checkpoint_signature(cp: dict, charger: dict, verify: Verifier) -> None:
    """Origin, key id and signature of the enrolled charger, or Reject (never evidence)."""
    charger_id = charger["charger_id"]
    if cp["origin"] != charger["origin"]:
        raise Reject("wrong-origin", "checkpoint origin %r, enrolled origin %r" % (cp["origin"], charger["origin"]))
    if cp["key_id"] != charger["key_id_hex"]:
        raise Reject("unknown-key", "checkpoint signed by key %s, enrolled key is %s"
                     % (cp["key_id"], charger["key_id_hex"]))
    if not verify(charger["pubkey_der"], cp["signed"], cp["signature"]):
        raise Reject("bad-signature", "checkpoint signature does not verify with %s's key" % charger_id)


def checkpoint_position(db: Any, tree: merkle.Tree, charger_id: str, cp: dict, note: bytes,
                        now: int, skew_s: int) -> bool:
    """True for a duplicate, False for a new checkpoint that agrees with our log; Reject
    split-view / gap / fork / time-future otherwise (the note is authentic by now)."""
    size, root = cp["size"], cp["root"]
    held = db.checkpoint(charger_id, size)
    if held is not None:
        if held["root"] == root:
            return True
        raise Reject("split-view", "two signed checkpoints of size %d with different roots" % size,
                     ("split-view", held["note"], note))
    if size > tree.size:
        raise Reject("gap", "checkpoint of size %d, but we hold %d receipts" % (size, tree.size),
                     ("gap", str(tree.size).encode(), note))
    if tree.root(size) != root:
        raise Reject("fork", "checkpoint root at size %d differs from the receipts we hold" % size,
                     ("fork", tree.root(size), note))
    if cp.get("time") is not None and cp["time"] > now + skew_s:
        raise Reject("time-future", "checkpoint time %d s in the future" % (cp["time"] - now))
    check_proofs(db, charger_id, tree, size, root)
    return False


def check_proofs(db: Any, charger_id: str, tree: merkle.Tree, size: int, root: bytes) -> None:
    """Consistency with the nearest stored checkpoints on either side, and inclusion of the
    receipts this checkpoint newly covers, verified as a light client would."""
    older = db.checkpoint_below(charger_id, size)
    newer = db.checkpoint_above(charger_id, size)
    try:
        if older is not None:
            proof = tree.consistency_proof(older["size"], size)
            merkle.verify_consistency(older["size"], size, older["root"], root, proof)
        if newer is not None:
            proof = tree.consistency_proof(size, newer["size"])
            merkle.verify_consistency(size, newer["size"], root, newer["root"], proof)
        start = older["size"] if older is not None else 0
        for index in range(start, size):
            merkle.verify_inclusion(tree.leaf(index), index, size, tree.inclusion_proof(index, size), root)
    except merkle.ProofError as exc:
        raise Reject("fork", "proof against stored checkpoints failed: %s" % exc)
