"""Rebuild a ledger from another validator's JSON export, checking everything again.

A validator that joins late (or was down while the chargers only needed another validator's
ack) can never get the old records from the chargers: they left the chargers' flash when they
were acknowledged. It gets them from another validator's export instead, but trusts nothing in
it: every receipt and checkpoint goes through Validator.process() exactly as if it had come
from the broker. The same run is an audit: the verdicts reached here are compared with the
statuses the exporting validator recorded.

    chargeproof replay --db mine.sqlite --export theirs.json [--enroll-from-export]

Keys: by default the chargers must already be enrolled here (keys come from provisioning, not
from the file being checked); --enroll-from-export takes them from the file and says so.
"""
from typing import Any, Dict

from host_tools.validator.store import LedgerError

# What the exporting validator's status means for the verdict we should reach.
_EXPECTED = {"accepted": ("accepted",), "flagged": ("flagged",), "disputed": ("rejected",)}


def replay(validator: Any, doc: Any, enroll_from_export: bool = False) -> Dict[str, Any]:
    """Feed every record of export doc through validator. Returns a report dict:
    {"receipts": n, "checkpoints": n, "enrolled": [(charger, key id)], "disagreements": [...]},
    where a disagreement is (charger, kind, index or size, their status, our status, our reason)."""
    check_export(doc)
    report: Dict[str, Any] = {"receipts": 0, "checkpoints": 0, "enrolled": [], "disagreements": []}
    for t in doc.get("tariffs", ()):
        h = validator.publish_tariff(t["document"])
        if h != t["tariff_hash"]:
            raise LedgerError("tariff %s in the export hashes to %s" % (t["tariff_hash"], h))
    for c in doc["chargers"]:
        cid = c["charger_id"]
        held = validator.db.charger(cid)
        if held is None:
            if not enroll_from_export:
                raise LedgerError("charger %s is not enrolled here (enroll it, or --enroll-from-export)" % cid)
            kid = validator.enroll(cid, bytes.fromhex(c["pubkey_hex"]), origin=c["origin"])
            report["enrolled"].append((cid, kid))
        elif held["pubkey_hex"] != c["pubkey_hex"]:
            report["disagreements"].append((cid, "key", None, c.get("key_id_hex"), held["key_id_hex"], "other-key"))
            continue
        checkpoints = {k["size"]: k for k in c["checkpoints"]}
        for r in sorted(c["receipts"], key=lambda r: r["index"]):
            result = validator.process("cp/%s/receipt/1" % cid, r["receipt"].encode("utf-8"))
            report["receipts"] += 1
            ours = "accepted" if result.status == "duplicate" else result.status
            if ours not in _EXPECTED.get(r["status"], ()) and result.status != "duplicate":
                report["disagreements"].append((cid, "receipt", r["index"], r["status"], result.status, result.reason))
            k = checkpoints.pop(r["index"] + 1, None)
            if k is not None:
                _checkpoint(validator, cid, k, report)
        for size in sorted(checkpoints):           # checkpoints beyond the exported receipts
            _checkpoint(validator, cid, checkpoints[size], report)
    return report


# What a version 1 export holds, checked before anything is replayed: the file is input from
# another party, and a wrong shape must be a clear error, not a KeyError half-way.
_SHAPE = {"tariffs": {"tariff_hash": str, "document": str},
          "chargers": {"charger_id": str, "pubkey_hex": str, "receipts": list, "checkpoints": list},
          "receipts": {"index": int, "receipt": str, "status": str},
          "checkpoints": {"size": int, "note": str}}


def _rows(items, what):
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        raise LedgerError("export: %s must be a list of objects" % what)
    for r in items:
        for key, typ in _SHAPE[what].items():
            if not isinstance(r.get(key), typ) or isinstance(r.get(key), bool):
                raise LedgerError("export: every %s entry needs %s (%s)" % (what, key, typ.__name__))
    return items


def check_export(doc: Any) -> None:
    """Raise LedgerError unless doc has the shape of a chargeproof-ledger version 1 export."""
    if not isinstance(doc, dict) or doc.get("format") != "chargeproof-ledger" or doc.get("version") != 1:
        raise LedgerError("not a chargeproof-ledger version 1 export")
    _rows(doc.get("tariffs", []), "tariffs")
    for c in _rows(doc.get("chargers"), "chargers"):
        _rows(c["receipts"], "receipts")
        _rows(c["checkpoints"], "checkpoints")
        if c.get("origin") is not None and not isinstance(c["origin"], str):
            raise LedgerError("export: a charger's origin is a string")


def _checkpoint(validator, cid, k, report):
    result = validator.process("cp/%s/checkpoint/1" % cid, k["note"].encode("utf-8"))
    report["checkpoints"] += 1
    if result.status not in ("accepted", "duplicate"):
        report["disagreements"].append((cid, "checkpoint", k["size"], "accepted", result.status, result.reason))
