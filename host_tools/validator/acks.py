"""Authenticated acks (docs/mqtt.md, "Acks"): the validator's ack keys and the ack messages.

A validator acks one outbox record of a charger on `cp/<charger>/ack/<validator>` with

    {"v": validator, "c": charger, "k": "receipt"|"checkpoint", "seq": N,
     "sha256": "<64 lowercase hex of the exact bytes acked>", "kid": "<ack key id>", "mac": "<64 hex>"}

    mac = HMAC-SHA256(ack key, "cp-ack/1\\n<c>\\n<v>\\n<k>\\n<seq>\\n<sha256>\\n")

The ack key is a 32-byte secret per (validator, charger), made here when the validator enrolls
the charger, kept in the validator's ledger (table `ack_keys`, SQLite or PostgreSQL) and given to the charger by
provisioning (host_tools/provision/secrets.py, deploy.py); it is never published. Rotation:
`rotate` makes a *next* key (the charger is provisioned with current and next: it accepts both),
`activate` makes the validator sign with it and retires the old one (the charger is then
provisioned with the new key alone).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

ACK_VERSION = "cp-ack/1"
KINDS = ("receipt", "checkpoint")
_COMPACT = json.JSONEncoder(separators=(",", ":"))    # made once: json.dumps(separators=...) builds one per call


class AckKeyError(ValueError):
    pass


def mac_input(charger_id: str, validator_id: str, kind: str, seq: int, sha256_hex: str) -> bytes:
    """The bytes an ack's MAC covers."""
    return ("%s\n%s\n%s\n%s\n%d\n%s\n" % (ACK_VERSION, charger_id, validator_id, kind, seq,
                                          sha256_hex)).encode()


def make_ack(validator_id: str, charger_id: str, kind: str, seq: int, payload: bytes,
             kid: str, key: bytes, digest: str | None = None) -> bytes:
    """The ack message for outbox record seq of kind whose exact bytes are payload (digest:
    their SHA-256 hex if the caller has it already)."""
    if kind not in KINDS:
        raise AckKeyError("kind must be one of %s" % (KINDS,))
    if digest is None:
        digest = hashlib.sha256(payload).hexdigest()
    mac = hmac.digest(key, mac_input(charger_id, validator_id, kind, seq, digest), "sha256")   # one-shot, in C
    return _COMPACT.encode({"v": validator_id, "c": charger_id, "k": kind, "seq": seq, "sha256": digest,
                            "kid": kid, "mac": mac.hex()}).encode()


class AckSigner:
    """make_ack for one validator, charger and key, for a validator that acks every record:
    the key's HMAC pads (RFC 2104) are hashed once, and the fixed fields are JSON-encoded once
    (json's encoder and OpenSSL's digest lookup by name cost more than the ack itself). Gives
    exactly make_ack's bytes."""
    __slots__ = ("validator_id", "charger_id", "kid", "key", "_inner", "_outer", "_json")

    def __init__(self, validator_id: str, charger_id: str, kid: str, key: bytes) -> None:
        self.validator_id, self.charger_id, self.kid, self.key = validator_id, charger_id, kid, key
        block = hashlib.sha256(key).digest() if len(key) > 64 else key
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        # _COMPACT's encoding of each field (its separators, its string escapes)
        self._json = {k: '{"v":%s,"c":%s,"k":%s,"seq":' % (_COMPACT.encode(validator_id),
                                                            _COMPACT.encode(charger_id), _COMPACT.encode(k))
                      for k in KINDS}
        self._json["kid"] = _COMPACT.encode(kid)

    def ack(self, kind: str, seq: int, payload: bytes, digest: str | None = None) -> bytes:
        if digest is None:
            digest = hashlib.sha256(payload).hexdigest()
        if kind not in KINDS or type(seq) is not int or not (digest.isascii() and digest.isalnum()):
            # nothing the engine sends: the general path decides (and raises) as it always did
            return make_ack(self.validator_id, self.charger_id, kind, seq, payload, self.kid, self.key, digest)
        inner = self._inner.copy()
        inner.update(mac_input(self.charger_id, self.validator_id, kind, seq, digest))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return ('%s%d,"sha256":"%s","kid":%s,"mac":"%s"}' % (self._json[kind], seq, digest, self._json["kid"],
                                                               outer.hexdigest())).encode()


def verify_ack(raw: bytes, keys: dict[str, bytes]) -> dict[str, Any] | None:
    """The ack's fields if its MAC verifies with keys[kid], else None (host side: tests, tools)."""
    try:
        obj = json.loads(raw)
        key = keys[obj["kid"]]
        want = hmac.new(key, mac_input(obj["c"], obj["v"], obj["k"], obj["seq"], obj["sha256"]),
                        hashlib.sha256).hexdigest()
    except (ValueError, KeyError, TypeError):
        return None
    return obj if hmac.compare_digest(want, str(obj.get("mac", ""))) else None


CACHE_S = 5.0     # the current key is read from the store at most this often per charger


class AckKeys:
    """The ack keys of one validator's ledger (table ack_keys, store.py migration 4), one
    current key per charger (plus a next one during a rotation). The key acks are signed with
    is cached for CACHE_S (an ack per receipt must not cost a query): a rotation made here takes
    effect at once, one made by another process (the CLI) within CACHE_S; the charger holds
    both keys during a rotation, so either is accepted meanwhile."""

    def __init__(self, db):
        self.db = db
        self._signing: dict[str, tuple[float, AckSigner]] = {}

    def _rows(self, charger_id: str, state: str):
        return self.db._query("SELECT kid, key_hex FROM ack_keys WHERE charger_id=? AND state=? "
                              "ORDER BY created_at DESC, kid DESC", (charger_id, state)).fetchall()

    def current(self, charger_id: str) -> tuple[str, bytes] | None:
        rows = self._rows(charger_id, "current")
        return (rows[0][0], bytes.fromhex(rows[0][1])) if rows else None

    def pending(self, charger_id: str) -> tuple[str, bytes] | None:
        rows = self._rows(charger_id, "next")
        return (rows[0][0], bytes.fromhex(rows[0][1])) if rows else None

    def _new_kid(self, tx, charger_id: str) -> str:
        n = tx.execute("SELECT COUNT(*) FROM ack_keys WHERE charger_id=?", (charger_id,)).fetchone()[0]
        return "k%d" % (n + 1)

    def ensure(self, charger_id: str) -> tuple[str, bytes]:
        """The charger's current ack key, made (32 random bytes) if it has none."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT kid, key_hex FROM ack_keys WHERE charger_id=? AND state='current'",
                             (charger_id,)).fetchone()
            if row is not None:
                return row[0], bytes.fromhex(row[1])
            kid, key = self._new_kid(tx, charger_id), os.urandom(32)
            tx.execute("INSERT INTO ack_keys VALUES (?,?,?,?,?)",
                       (charger_id, kid, key.hex(), "current", int(time.time())))
            return kid, key

    def rotate(self, charger_id: str) -> tuple[str, bytes]:
        """Make the charger's next ack key (replacing a next key not yet activated). The
        validator keeps signing with the current key until activate()."""
        self._signing.pop(charger_id, None)
        self.ensure(charger_id)
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM ack_keys WHERE charger_id=? AND state='next'", (charger_id,))
            kid, key = self._new_kid(tx, charger_id), os.urandom(32)
            tx.execute("INSERT INTO ack_keys VALUES (?,?,?,?,?)",
                       (charger_id, kid, key.hex(), "next", int(time.time())))
            return kid, key

    def activate(self, charger_id: str) -> tuple[str, bytes]:
        """Sign acks with the next key from now on; the old key is retired."""
        self._signing.pop(charger_id, None)
        with self.db.transaction() as tx:
            row = tx.execute("SELECT kid, key_hex FROM ack_keys WHERE charger_id=? AND state='next'",
                             (charger_id,)).fetchone()
            if row is None:
                raise AckKeyError("charger %s has no next ack key: rotate first" % charger_id)
            tx.execute("UPDATE ack_keys SET state='retired' WHERE charger_id=? AND state='current'",
                       (charger_id,))
            tx.execute("UPDATE ack_keys SET state='current' WHERE charger_id=? AND kid=?",
                       (charger_id, row[0]))
            return row[0], bytes.fromhex(row[1])

    def provisioning(self, validator_id: str, charger_id: str) -> dict[str, Any]:
        """What the charger's secrets file must hold for this validator: {kid: hex} with the
        current key and, during a rotation, the next."""
        keys = {}
        for found in (self.current(charger_id), self.pending(charger_id)):
            if found is not None:
                keys[found[0]] = found[1].hex()
        if not keys:
            raise AckKeyError("charger %s has no ack key (enroll it first)" % charger_id)
        return {"validator": validator_id, "charger": charger_id, "ack_keys": keys}

    def ack(self, validator_id: str, charger_id: str, kind: str, seq: int, payload: bytes,
            digest: str | None = None) -> bytes:
        now = time.monotonic()
        hit = self._signing.get(charger_id)
        if hit is None or now - hit[0] >= CACHE_S or hit[1].validator_id != validator_id:
            if len(self._signing) >= 4096:        # bounded: chargers, not messages, fill it
                self._signing.clear()
            kid, key = self.current(charger_id) or self.ensure(charger_id)
            hit = self._signing[charger_id] = (now, AckSigner(validator_id, charger_id, kid, key))
        return hit[1].ack(kind, seq, payload, digest)
