"""Proof bundles for light clients: a receipt, its inclusion proof against the latest
checkpoint that covers it, and optionally a consistency proof from an older checkpoint."""
from __future__ import annotations

import base64
from typing import Any, Optional

from host_tools.verify import formats, merkle
from host_tools.validator.store import LedgerError


def proof_bundle(db: Any, charger_id: str, seq: Optional[int] = None, index: Optional[int] = None,
                 tree: Optional[merkle.Tree] = None, old_size: Optional[int] = None) -> dict:
    """The light-client bundle for one receipt (by seq or log index): the receipt bytes, its
    inclusion proof against the latest checkpoint that covers it, that checkpoint, the
    charger's public key, the tariff document, and (if old_size is given) the consistency
    proof from old_size to that checkpoint."""
    row = db.receipt_by_seq(charger_id, seq) if index is None else db.receipt_at(charger_id, index)
    if row is None:
        raise LedgerError("no receipt %s %s for charger %s" % ("index" if index is not None else "seq",
                                                             index if index is not None else seq, charger_id))
    cp = db.latest_checkpoint(charger_id)
    if cp is None or cp["size"] <= row["log_index"]:
        raise LedgerError("no checkpoint of %s covers log index %d yet" % (charger_id, row["log_index"]))
    if tree is None:
        tree = merkle.Tree()
        for h in db.leaf_hashes(charger_id):
            tree.append_hash(h)
    charger = db.charger(charger_id)
    bundle = formats.make_bundle(
        receipt=row["receipt"], index=row["log_index"], size=cp["size"],
        inclusion=tree.inclusion_proof(row["log_index"], cp["size"]),
        checkpoint=cp["note"], pubkey_hex=charger["pubkey_hex"], tariff=db.tariff(row["tariff_hash"]))
    # witness cosignatures (C2SP tlog-cosignature) of that checkpoint: ours and the other
    # validators' we verified; a light client counts them against its quorum
    bundle["cosignatures"] = [c["line"] for c in db.cosignatures(charger_id, cp["size"]) if c["root"] == cp["root"]]
    if old_size is not None:
        bundle["consistency"] = _consistency(db, tree, charger_id, old_size, cp["size"])
    return bundle


def _consistency(db: Any, tree: merkle.Tree, charger_id: str, old_size: int, new_size: int) -> dict:
    old = db.checkpoint(charger_id, old_size)
    if old is None:
        raise LedgerError("no checkpoint of size %d for %s" % (old_size, charger_id))
    return {"old_size": old_size, "new_size": new_size, "old_checkpoint": old["note"].decode(),
            "proof": [base64.b64encode(h).decode() for h in tree.consistency_proof(old_size, new_size)]}
