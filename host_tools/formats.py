"""The validator's view of the other layers' formats, in one place.

Everything the validator needs to know about the MQTT topic tree (firmware/uplink/topics.py,
docs/mqtt.md), the receipt envelope and OCMF record (host_tools/receipt.py, host_tools/ocmf.py),
the checkpoint note (host_tools/checkpoint.py) and the tariff (host_tools/tariff.py) goes
through the functions below, which reuse those modules rather than parse a second time. The
validator itself only sees plain dicts.
"""
import hashlib
import json

from host_tools import tariff as tariff_mod

PREFIX = "cp"
KINDS = ("receipt", "checkpoint")


class FormatError(ValueError):
    """A message that cannot be read as what its topic says it is."""


# ---- MQTT (see docs/mqtt.md) -----------------------------------------------------------------
def subscriptions(prefix=PREFIX):
    """Wildcard filters for every charger's outbox records."""
    return ["%s/+/%s/+" % (prefix, k) for k in KINDS]


def route(topic, prefix=PREFIX):
    """(charger id, kind) for cp/<charger>/<kind>/<seq>, else None."""
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[2] not in KINDS or not parts[1]:
        return None
    return parts[1], parts[2]


def unwrap(kind, payload, topic):
    """The outbox record: its seq (from the topic) and the exact signed bytes (the payload)."""
    if not payload:
        raise FormatError("empty %s message" % kind)
    return {"kind": kind, "body": bytes(payload), "outbox_seq": outbox_seq(topic)}


def outbox_seq(topic):
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    try:
        return int(topic.rsplit("/", 1)[1])
    except (ValueError, IndexError):
        raise FormatError("no outbox sequence number in topic %r" % topic)


def ack_topic(charger_id, validator_id, prefix=PREFIX):
    return "%s/%s/ack/%s" % (prefix, charger_id, validator_id)


def ack_payload(envelope, result):
    """{"seq": N, "sha256": hex of the acked bytes}: the charger drops outbox record N only if
    the hash matches what it sent (a replayed message under another seq acks nothing).
    "status" and "reason" tell operators the verdict; the charger ignores them."""
    doc = {"seq": envelope["outbox_seq"], "sha256": hashlib.sha256(envelope["body"]).hexdigest(),
           "status": result.status}
    if result.reason:
        doc["reason"] = result.reason
    return json.dumps(doc, separators=(",", ":")).encode()


# ---- tariffs ---------------------------------------------------------------------------------
def tariff_canonical(document):
    """(canonical JSON text, hash hex) of a tariff document given as text, bytes or dict."""
    if isinstance(document, (bytes, bytearray)):
        document = document.decode()
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise FormatError("tariff is not JSON: %s" % exc)
    try:
        tariff_mod.Tariff(document)          # validates the document
        return tariff_mod.canonical(document).decode(), tariff_mod.tariff_hash(document)
    except tariff_mod.TariffError as exc:
        raise FormatError("bad tariff: %s" % exc)


# ---- receipts (firmware/ledger/receipt.py, ocmf.py) ------------------------------------------
def _wh(rv, unit):
    """An OCMF reading value (a JSON number, parsed as Decimal) as integer Wh, exactly."""
    from decimal import Decimal
    value = Decimal(str(rv)) * (1000 if unit == "kWh" else 1) if unit in ("kWh", "Wh") else None
    if value is None or value != value.to_integral_value():
        raise FormatError("reading %s %s is not a whole number of Wh" % (rv, unit))
    return int(value)


def parse_receipt(record):
    """A receipt record (<JSON>|<hex DER signature>) as the dict the validator checks."""
    from decimal import Decimal
    record = bytes(record)
    cut = record.rfind(b"|")
    if cut < 0 or not record.startswith(b"{"):
        raise FormatError("not a receipt record")
    signed = record[:cut]
    try:
        signature = bytes.fromhex(record[cut + 1:].decode("ascii"))
        doc = json.loads(signed)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError("receipt is not JSON|hex: %s" % exc)
    need = {"v": int, "charger": str, "seq": int, "index": int, "begin": int, "end": int,
            "charge_end": int, "energy_wh": int, "segments": list, "tariff": str, "currency": str,
            "net": int, "tax": int, "price": int, "reason": str, "ocmf": str}
    for key, typ in need.items():
        if not isinstance(doc.get(key), typ) or isinstance(doc.get(key), bool):
            raise FormatError("receipt field %r missing or not %s" % (key, typ.__name__))
    if doc["v"] != 1:
        raise FormatError("unknown receipt version %r" % doc["v"])
    ocmf = doc["ocmf"]
    if not ocmf.startswith("OCMF|"):
        raise FormatError("receipt carries no OCMF record")
    payload_s, sig_s = ocmf[5:].rsplit("|", 1) if ocmf.count("|") >= 2 else (None, None)
    if payload_s is None:
        raise FormatError("OCMF record has no signature section")
    try:
        payload = json.loads(payload_s, parse_float=Decimal)
        sig = json.loads(sig_s)
        ocmf_sig = bytes.fromhex(sig["SD"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError("OCMF record unreadable: %s" % exc)
    if sig.get("SA", "ECDSA-secp256r1-SHA256") != "ECDSA-secp256r1-SHA256" or sig.get("SE", "hex") != "hex":
        raise FormatError("OCMF signature algorithm/encoding %s/%s not supported" % (sig.get("SA"), sig.get("SE")))
    readings = payload.get("RD") if isinstance(payload, dict) else None
    if not isinstance(readings, list) or len(readings) < 2:
        raise FormatError("OCMF record needs begin and end readings")
    begin, end = readings[0], readings[-1]
    if begin.get("TX") != "B":
        raise FormatError("first OCMF reading is not a begin (TX B)")
    return {
        "raw": record, "signed": signed, "signature": signature,
        "charger_id": doc["charger"], "seq": doc["seq"], "index": doc["index"],
        "begin_time": doc["begin"], "end_time": doc["end"], "charge_end": doc["charge_end"],
        "energy_wh": doc["energy_wh"], "segments": doc["segments"], "tariff_hash": doc["tariff"],
        "currency": doc["currency"], "net": doc["net"], "tax": doc["tax"], "price_minor": doc["price"],
        "reason": doc["reason"], "ocmf": ocmf, "ocmf_signed": payload_s.encode("utf-8"),
        "ocmf_signature": ocmf_sig, "ocmf_payload": payload,
        "begin_wh": _wh(begin.get("RV"), begin.get("RU")), "end_wh": _wh(end.get("RV"), end.get("RU")),
        "meter_serial": payload.get("MS"), "transaction_id": "%s/%d" % (doc["charger"], doc["seq"]),
    }


def receipt_inconsistency(rc):
    """What in a receipt contradicts its own OCMF record, or "" (both are signed already)."""
    p = rc["ocmf_payload"]
    if p.get("GS") not in (None, rc["charger_id"]):
        return "OCMF GS %r is not the receipt's charger %r" % (p.get("GS"), rc["charger_id"])
    if p.get("PG") != "T%d" % rc["seq"]:
        return "OCMF PG %r does not match receipt seq %d" % (p.get("PG"), rc["seq"])
    if rc["end_wh"] - rc["begin_wh"] != rc["energy_wh"]:
        return "energy %d Wh, but OCMF readings differ by %d Wh" % (rc["energy_wh"], rc["end_wh"] - rc["begin_wh"])
    if sum(s[1] for s in rc["segments"] if isinstance(s, list) and len(s) == 2) != rc["energy_wh"]:
        return "tariff segments do not add up to the energy"
    if rc["net"] + rc["tax"] != rc["price_minor"]:
        return "price %d is not net %d + tax %d" % (rc["price_minor"], rc["net"], rc["tax"])
    return ""


def recompute_price(tariff_text, rc):
    """The total price (minor units) host_tools.tariff computes for the receipt's session."""
    try:
        t = tariff_mod.Tariff.load(tariff_text)
        segments = [(int(a), int(b)) for a, b in rc["segments"]]
        net, tax, total = t.price(segments, rc["begin_time"], rc["charge_end"], rc["end_time"])
    except (tariff_mod.TariffError, TypeError, ValueError) as exc:
        raise FormatError(str(exc))
    if t.currency != rc["currency"]:
        raise FormatError("tariff currency %s, receipt currency %s" % (t.currency, rc["currency"]))
    return total


# ---- checkpoints (firmware/ledger/checkpoint.py: C2SP tlog-checkpoint signed note) -----------
def parse_checkpoint(note):
    import base64
    try:
        text = bytes(note).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("checkpoint is not UTF-8")
    cut = text.rfind("\n\n")
    if cut < 0 or not text.endswith("\n"):
        raise FormatError("checkpoint has no signature block")
    body = text[:cut + 1]
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not lines[1].isdigit() or (len(lines[1]) > 1 and lines[1][0] == "0"):
        raise FormatError("checkpoint needs origin, decimal size and root lines")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise FormatError("checkpoint root is not base64")
    if len(root) != 32:
        raise FormatError("checkpoint root is not 32 bytes")
    time_ = None
    for ext in lines[3:]:
        if ext.startswith("time ") and ext[5:].isdigit():
            time_ = int(ext[5:])
    sig_lines = text[cut + 2:-1].split("\n")
    parts = sig_lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "\u2014":
        raise FormatError("bad checkpoint signature line")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except ValueError:
        raise FormatError("checkpoint signature is not base64")
    if len(raw) < 5:
        raise FormatError("checkpoint signature too short")
    return {"origin": lines[0], "size": int(lines[1]), "root": root, "time": time_,
            "signed": body.encode("utf-8"), "key_name": parts[1], "key_id": raw[:4].hex(),
            "signature": raw[4:]}


# ---- light-client bundle ---------------------------------------------------------------------
def make_bundle(receipt, index, size, inclusion, checkpoint, pubkey_hex, tariff):
    return {"receipt": bytes(receipt).decode("utf-8"), "index": index, "tree_size": size,
            "inclusion": [h.hex() for h in inclusion], "checkpoint": bytes(checkpoint).decode("utf-8"),
            "pubkey": pubkey_hex, "tariff": json.loads(tariff) if tariff else None}
