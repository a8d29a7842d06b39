"""Who a validator knows: enrolled chargers (id, public key, log origin), published tariffs,
and the in-memory Merkle tree of each charger's log, rebuilt from the store on first use."""
from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple, Union

from host_tools.verify import formats, merkle, sigcheck
from host_tools.validator.store import LedgerError


CACHE_S = 5.0                 # enrolment lookups are cached this long (a flood asks per message)
CACHE_MAX = 4096              # entries; junk on invented ids must not grow it without bound


class Registry:
    def __init__(self, db: Any) -> None:
        self.db = db
        self._trees: Dict[str, merkle.Tree] = {}     # charger id -> tree of its log (leaf hashes)
        self._chargers: Dict[str, Tuple[float, Optional[dict]]] = {}

    def enroll(self, charger_id: str, pubkey_der: bytes, origin: Optional[str] = None) -> str:
        """Enroll a charger's P-256 SPKI DER key; returns its C2SP key id (hex)."""
        if not sigcheck.valid_public_key(pubkey_der):
            raise LedgerError("not a P-256 SubjectPublicKeyInfo: %s" % bytes(pubkey_der).hex()[:40])
        self._chargers.pop(charger_id, None)
        return self.db.enroll(charger_id, bytes(pubkey_der), origin=origin)

    def publish_tariff(self, document: Union[str, bytes, dict]) -> str:
        """Register a tariff document (JSON text or dict); returns its canonical hash."""
        text, tariff_hash = formats.tariff_canonical(document)
        self.db.add_tariff(tariff_hash, text)
        return tariff_hash

    def charger(self, charger_id: str) -> Optional[dict]:
        """The enrolled charger's row with its key as bytes (pubkey_der), or None (a copy,
        cached for CACHE_S: an enrolment made by another process shows within that time)."""
        now = time.monotonic()
        hit = self._chargers.get(charger_id)
        if hit is not None and now - hit[0] < CACHE_S:
            return dict(hit[1]) if hit[1] is not None else None
        charger = self.db.charger(charger_id)
        if charger is not None:
            charger["pubkey_der"] = bytes.fromhex(charger["pubkey_hex"])
        if len(self._chargers) >= CACHE_MAX:
            self._chargers.clear()
        self._chargers[charger_id] = (now, charger)
        return dict(charger) if charger is not None else None

    def tree(self, charger_id: str) -> merkle.Tree:
        tree = self._trees.get(charger_id)
        if tree is None:
            tree = merkle.Tree()
            for h in self.db.leaf_hashes(charger_id):
                tree.append_hash(h)
            self._trees[charger_id] = tree
        return tree
