"""The validator's view of the other layers' formats, in one place.

Everything the validator needs to know about the MQTT topic tree (firmware/uplink/topics.py,
docs/mqtt.md), the receipt envelope and OCMF record (host_tools/verify/receipt.py, host_tools/verify/ocmf.py),
the checkpoint note (host_tools/verify/checkpoint.py) and the tariff (host_tools/verify/tariff.py) goes
through the functions below, which reuse those modules rather than parse a second time. The
validator itself only sees plain dicts.
"""
from typing import Any, Dict, List, Optional, Tuple, Union
import json

from host_tools.verify import checkpoint as checkpoint_mod
from host_tools.verify import ocmf as ocmf_mod
from host_tools.verify import receipt as receipt_mod
from host_tools.verify import tariff as tariff_mod
from host_tools.verify import strictjson

PREFIX = "cp"
KINDS = ("receipt", "checkpoint")
# Published tariffs (firmware/uplink/topics.py): one retained, operator-signed message per id.
TARIFF_PREFIX = "tariff/"
TARIFF_FILTER = TARIFF_PREFIX + "+"
TARIFF_MAX = 4096


class FormatError(ValueError):
    """A message that cannot be read as what its topic says it is."""


# ---- MQTT (see docs/mqtt.md) -----------------------------------------------------------------
def subscriptions(prefix: str = PREFIX) -> List[str]:
    """Wildcard filters for every charger's outbox records."""
    return ["%s/+/%s/+" % (prefix, k) for k in KINDS]


def validator_subscriptions(prefix: str = PREFIX) -> List[str]:
    """What a validator subscribes to: published tariffs first (a new subscription gets the
    retained ones before any receipt that names them), then every charger's outbox records."""
    return [TARIFF_FILTER] + subscriptions(prefix)


def route(topic: Union[str, bytes], prefix: str = PREFIX) -> Optional[Tuple[str, str]]:
    """(charger id, kind) for cp/<charger>/<kind>/<seq>, else None."""
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[2] not in KINDS or not parts[1]:
        return None
    return parts[1], parts[2]


def unwrap(kind: str, payload: bytes, topic: Union[str, bytes]) -> Dict[str, Any]:
    """The outbox record: its seq (from the topic) and the exact signed bytes (the payload)."""
    if not payload:
        raise FormatError("empty %s message" % kind)
    return {"kind": kind, "body": bytes(payload), "outbox_seq": outbox_seq(topic)}


def outbox_seq(topic: Union[str, bytes]) -> int:
    """The outbox seq a charger put in the topic: a decimal >= 1 (what its ack parser accepts)."""
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    last = topic.rsplit("/", 1)[-1]
    if not (last.isascii() and last.isdigit()) or last[0] == "0":
        raise FormatError("no outbox sequence number in topic %r" % topic)
    return int(last)


def ack_topic(charger_id: str, validator_id: str, prefix: str = PREFIX) -> str:
    return "%s/%s/ack/%s" % (prefix, charger_id, validator_id)


def evidence_topic(charger_id: str, validator_id: str, prefix: str = PREFIX) -> str:
    """Where a validator reports misbehaviour of a charger (not part of the charger's tree of
    subscriptions: for operators, auditors and other validators)."""
    return "%s/%s/evidence/%s" % (prefix, charger_id, validator_id)


def evidence_payload(result: Any) -> bytes:
    return json.dumps({"kind": result.evidence, "reason": result.reason, "detail": result.detail,
                       "message": result.kind, "sha256": result.digest}, separators=(",", ":")).encode()


# ---- updates (firmware/app/ota.py; docs/mqtt.md, "Updates") ----------------------------------
OTA_FLEET_MANIFEST = "ota/manifest"      # retained: a manifest for every charger ("charger": "*")
OTA_LEAVES = ("manifest", "req", "chunk", "status")


def ota_topic(charger_id: str, leaf: str, prefix: str = PREFIX) -> str:
    """cp/<charger>/ota/<leaf>: manifest (operator, retained), req (charger asks for a chunk),
    chunk (the update server answers), status (charger, retained)."""
    if leaf not in OTA_LEAVES:
        raise ValueError("no ota topic %r" % leaf)
    return "%s/%s/ota/%s" % (prefix, charger_id, leaf)


def ota_filter(leaf: str, prefix: str = PREFIX) -> str:
    """Every charger's ota/<leaf> (the update server subscribes to req, the operator to status)."""
    return ota_topic("+", leaf, prefix)


def ota_route(topic: Union[str, bytes], prefix: str = PREFIX) -> Optional[Tuple[str, str]]:
    """(charger id, leaf) for cp/<charger>/ota/<leaf>, else None."""
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[2] != "ota" or not parts[1] \
            or parts[3] not in OTA_LEAVES:
        return None
    return parts[1], parts[3]


# ---- tariffs ---------------------------------------------------------------------------------
def tariff_topic(tariff_id: str) -> str:
    return TARIFF_PREFIX + tariff_id


def tariff_route(topic: Union[str, bytes]) -> Optional[str]:
    """The tariff id of tariff/<id>, else None."""
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    if not topic.startswith(TARIFF_PREFIX):
        return None
    name = topic[len(TARIFF_PREFIX):]
    return name if name and "/" not in name else None


def parse_signed_tariff(message: bytes, topic: Union[str, bytes],
                        operator_spki_der: Optional[bytes], backend: str = "fast") -> str:
    """The document text of a published tariff message (<document>|<hex DER signature>) if the
    operator key signed it, it is a valid version 2 tariff, and its id is the topic's. Without
    a key (None) the signature is not checked (for display only). Raises FormatError."""
    from host_tools.verify import sigcheck
    if not 0 < len(message) <= TARIFF_MAX:
        raise FormatError("tariff message of %d bytes (1..%d)" % (len(message), TARIFF_MAX))
    document, bar, sig_hex = bytes(message).rpartition(b"|")
    if not bar or not sig_hex.strip():
        raise FormatError("unsigned tariff")
    try:
        sig = bytes.fromhex(sig_hex.strip().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise FormatError("tariff signature is not hex")
    if operator_spki_der is not None and not sigcheck.verify(operator_spki_der, document, sig, backend):
        raise FormatError("tariff not signed by the operator key")
    try:
        t = tariff_mod.Tariff.load(document)
    except (tariff_mod.TariffError, UnicodeDecodeError) as exc:
        raise FormatError("bad tariff: %s" % exc)
    if t.version != 2:
        raise FormatError("a published tariff is version 2")
    if t.id != tariff_route(topic):
        where = topic if isinstance(topic, str) else topic.decode("utf-8", "replace")
        raise FormatError("tariff %s published on %s" % (t.id, where))
    return document.decode()


def tariff_in_force(tariff_text: str, begin_time: int) -> bool:
    """True if a session that began at begin_time may be billed by the tariff (its validity)."""
    try:
        t = _tariffs.get(tariff_text) or tariff_mod.Tariff.load(tariff_text)
    except tariff_mod.TariffError as exc:
        raise FormatError(str(exc))
    return t.in_force_at(begin_time)


def tariff_canonical(document: Union[str, bytes, bytearray, dict]) -> Tuple[str, str]:
    """(canonical JSON text, hash hex) of a tariff document given as text, bytes or dict."""
    if isinstance(document, (bytes, bytearray)):
        document = document.decode()
    if isinstance(document, str):
        try:
            document = strictjson.loads(document)
        except ValueError as exc:
            raise FormatError("tariff is not JSON: %s" % exc)
    try:
        tariff_mod.Tariff(document)          # validates the document
        return tariff_mod.canonical(document).decode(), tariff_mod.tariff_hash(document)
    except tariff_mod.TariffError as exc:
        raise FormatError("bad tariff: %s" % exc)


# ---- receipts (host_tools/verify/receipt.py and ocmf.py read them; format: firmware/ledger/receipt.py) --
def _whole_wh(value, what):
    if value != value.to_integral_value():
        raise FormatError("%s reading %s Wh is not a whole number of Wh" % (what, value))
    return int(value)


def parse_receipt(record: bytes) -> Dict[str, Any]:
    """A receipt record (<JSON>|<hex DER signature>) as the dict the validator checks. Parsing
    and the OCMF rules are host_tools.verify.receipt's and host_tools.verify.ocmf's; signatures are checked by
    the validator with its configured backend over the bytes named here."""
    try:
        rc = receipt_mod.parse(bytes(record))
        rec = rc.ocmf_record()
        begin, end = rec.begin_end()
    except (receipt_mod.ReceiptError, ocmf_mod.OcmfError) as exc:
        raise FormatError(str(exc))
    f = rc.fields
    return {
        "raw": rc.record, "signed": rc.body, "signature": rc.sig_der, "receipt": rc, "ocmf_record": rec,
        "charger_id": f["charger"], "seq": f["seq"], "index": f["index"],
        "begin_time": f["begin"], "end_time": f["end"], "charge_end": f["charge_end"],
        "energy_wh": f["energy_wh"], "segments": f["segments"], "tariff_hash": f["tariff"],
        "currency": f["currency"], "net": f["net"], "tax": f["tax"], "price_minor": f["price"],
        "reason": f["reason"], "ocmf": f["ocmf"], "ocmf_signed": rec.payload_text.encode("utf-8"),
        "ocmf_signature": rec.sig_der,
        "begin_wh": _whole_wh(begin["wh"], "begin"), "end_wh": _whole_wh(end["wh"], "end"),
        "meter_serial": rec.payload.get("MS"), "transaction_id": "%s/%d" % (f["charger"], f["seq"]),
    }


def receipt_inconsistency(rc: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """(reason, detail) where a receipt contradicts its own OCMF record or itself, else None."""
    try:
        rc["receipt"].check_against_ocmf(rc["ocmf_record"])
    except receipt_mod.Mismatch as exc:
        return exc.reason, str(exc)
    except ocmf_mod.OcmfError as exc:
        return "inconsistent", str(exc)
    if rc["net"] + rc["tax"] != rc["price_minor"]:
        return "inconsistent", "price %d is not net %d + tax %d" % (rc["price_minor"], rc["net"], rc["tax"])
    if not rc["begin_time"] <= rc["charge_end"] <= rc["end_time"]:
        return "inconsistent", "charging ends outside the session"
    return None


_tariffs: dict = {}          # canonical text -> host_tools.verify.tariff.Tariff (parsed once)


def recompute_price(tariff_text: str, rc: Dict[str, Any]) -> Tuple[int, int, int]:
    """(net, tax, total) in minor units, as host_tools.verify.tariff computes them for the receipt."""
    try:
        t = _tariffs.get(tariff_text)
        if t is None:
            t = _tariffs[tariff_text] = tariff_mod.Tariff.load(tariff_text)
        segments = [(int(a), int(b)) for a, b in rc["segments"]]
        net, tax, total = t.price(segments, rc["begin_time"], rc["charge_end"], rc["end_time"])
    except (tariff_mod.TariffError, TypeError, ValueError, ArithmeticError, OSError) as exc:
        raise FormatError(str(exc))
    if t.currency != rc["currency"]:
        raise FormatError("tariff currency %s, receipt currency %s" % (t.currency, rc["currency"]))
    return net, tax, total


# ---- checkpoints (host_tools/verify/checkpoint.py: C2SP tlog-checkpoint signed note) -------------
def parse_checkpoint(note: bytes, key_id_hex: Optional[str] = None) -> Dict[str, Any]:
    """The note as a dict; "signature"/"key_id" are those of the line by the origin's key name
    with key id key_id_hex (or the first such line if it has none, for the unknown-key report)."""
    try:
        cp = checkpoint_mod.parse(bytes(note))
    except (checkpoint_mod.CheckpointError, UnicodeDecodeError) as exc:
        raise FormatError(str(exc))
    mine = [(k, sig) for name, k, sig in cp.signatures if name == cp.origin]
    if not mine:
        raise FormatError("no signature line in the origin's name %r" % cp.origin)
    chosen = [(k, sig) for k, sig in mine if k.hex() == key_id_hex] or mine
    kid, sig = chosen[0]
    return {"origin": cp.origin, "size": cp.size, "root": cp.root, "time": cp.time,
            "signed": cp.text.encode("utf-8"), "key_id": kid.hex(), "signature": sig}


# ---- light-client bundle (host_tools/verify/receipt.py defines it) ------------------------------------
def make_bundle(receipt: bytes, index: int, size: int, inclusion: List[bytes], checkpoint: bytes,
                pubkey_hex: str, tariff: Optional[str]) -> Dict[str, Any]:
    bundle = json.loads(receipt_mod.make_bundle(receipt, index, size, inclusion, bytes(checkpoint).decode("utf-8"),
                                                json.loads(tariff) if tariff else None))
    bundle["pubkey"] = pubkey_hex        # convenience for the driver; the light client takes the key separately
    return bundle
