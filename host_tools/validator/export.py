"""Ledger exports: JSON (receipts with their proofs, checkpoints) and the XML container that
S.A.F.E.'s Transparenzsoftware reads.

JSON (format "chargeproof-ledger", version 1):
  {"format": "chargeproof-ledger", "version": 1, "schema_version": n,
   "chargers": [{"charger_id", "pubkey_hex", "key_id_hex", "origin",
                 "checkpoints": [{"size", "root_hex", "note"}],
                 "receipts": [{"index", "seq", "status", "note", "energy_wh", "price_minor",
                               "currency", "tariff_hash", "begin_time", "end_time",
                               "receipt", "leaf_hash_hex",
                               "inclusion": {"tree_size", "inclusion_proof": [base64...]} or null}]}],
   "tariffs": [{"tariff_hash", "document"}],
   "evidence": [{"charger_id", "kind", "detail", "first", "second" (base64), "received_at"}]}
  Each inclusion proof is against the charger's latest checkpoint (null while no checkpoint
  covers the receipt yet); RFC 9162 §2.1.3.

Transparenzsoftware XML (see its XML_Format.md and xml/Value.java, PublicKey.java):
  <values><value transactionId="N" context="Transaction.End">
    <signedData format="OCMF" encoding="plain" transactionId="N">OCMF|...|...</signedData>
    <publicKey encoding="plain">3059...</publicKey></value>...</values>
  - transactionId is an integer there (BigInteger), so sessions are numbered 1..N in export order.
  - Our OCMF record carries both readings (B and E) under one signature, so a session is ONE
    value: the software pairs values by transactionId only when a transaction has separate
    Transaction.Begin and Transaction.End records; given the same record twice it would see two
    begin readings. A single record holding B and E is checked as a whole transaction. Its
    context is "Transaction.End" (OCPP's reading context of the record that closes a session).
  - publicKey encoding "plain" is the hex text as is: version 1.4.x decodes only "plain" and
    "base64" for keys (EncodingDecoder.decodeAsHex), not "hex".
  - signedData must have no whitespace around the record, or its signature cannot be checked.
"""
from typing import Any, Dict, Optional, Tuple
import base64
import xml.etree.ElementTree as ET

from host_tools.verify import merkle


def _tree(db, charger_id):
    tree = merkle.Tree()
    for h in db.leaf_hashes(charger_id):
        tree.append_hash(h)
    return tree


def export_json(db: Any) -> Dict[str, Any]:
    chargers = []
    for c in db.chargers():
        cid = c["charger_id"]
        tree = _tree(db, cid)
        cps = db.checkpoints(cid)
        latest = cps[-1] if cps else None
        receipts = []
        for r in db.sessions(cid):
            inclusion = None
            if latest is not None and r["log_index"] < latest["size"]:
                inclusion = {"tree_size": latest["size"],
                             "inclusion_proof": [base64.b64encode(h).decode()
                                                 for h in tree.inclusion_proof(r["log_index"], latest["size"])]}
            receipts.append({
                "index": r["log_index"], "seq": r["seq"], "status": r["status"], "note": r["note"],
                "energy_wh": r["energy_wh"], "price_minor": r["price_minor"], "currency": r["currency"],
                "tariff_hash": r["tariff_hash"], "begin_time": r["begin_time"], "end_time": r["end_time"],
                "receipt": r["receipt"].decode("utf-8"), "leaf_hash_hex": r["leaf_hash"].hex(),
                "inclusion": inclusion})
        chargers.append({
            "charger_id": cid, "pubkey_hex": c["pubkey_hex"], "key_id_hex": c["key_id_hex"],
            "origin": c["origin"],
            "checkpoints": [{"size": k["size"], "root_hex": k["root"].hex(), "note": k["note"].decode("utf-8")}
                            for k in cps],
            "receipts": receipts})
    return {"format": "chargeproof-ledger", "version": 1, "schema_version": db.schema_version(),
            "chargers": chargers,
            "tariffs": [{"tariff_hash": t["tariff_hash"], "document": t["document"]} for t in db.tariffs()],
            "evidence": [{"charger_id": e["charger_id"], "kind": e["kind"], "detail": e["detail"],
                          "first": base64.b64encode(e["first"]).decode(),
                          "second": base64.b64encode(e["second"]).decode(), "received_at": e["received_at"]}
                         for e in db.evidence()]}


def export_transparency_xml(db: Any, charger_id: Optional[str] = None,
                            statuses: Tuple[str, ...] = ("accepted", "flagged")) -> str:
    """The Transparenzsoftware's XML container with every billed session (status in statuses)."""
    root = ET.Element("values")
    number = 0
    for c in db.chargers():
        if charger_id is not None and c["charger_id"] != charger_id:
            continue
        for r in db.sessions(c["charger_id"]):
            if r["status"] not in statuses:
                continue
            number += 1
            value = ET.SubElement(root, "value", transactionId=str(number), context="Transaction.End")
            data = ET.SubElement(value, "signedData", format="OCMF", encoding="plain",
                                 transactionId=str(number))
            data.text = r["ocmf"].strip()
            key = ET.SubElement(value, "publicKey", encoding="plain")
            key.text = c["pubkey_hex"].upper()
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
