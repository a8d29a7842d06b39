"""ChargeProof receipts on the host: parse the record `<receipt JSON>|<DER signature hex>`
(format in firmware/ledger/receipt.py), verify the charger's signature, check the receipt
against its OCMF record, and build/read the bundle a driver gets.

Bundle (JSON file handed to the driver, checked offline by host_tools.lightclient):
  {"format": "chargeproof-receipt-bundle/1",
   "receipt": "<receipt record, exactly as signed>",
   "index": <leaf index>, "tree_size": <size the proof is for>,
   "inclusion_proof": ["<base64 hash>", ...],          # RFC 9162 PATH, leaf side first
   "checkpoint": "<C2SP checkpoint note of that size>",
   "tariff": {<tariff document>}}
"""
from typing import Any, Dict, Union
import base64
import json
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from host_tools.verify import ocmf
from host_tools.verify import sigcheck
from host_tools.verify import strictjson

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

BUNDLE_FORMAT = "chargeproof-receipt-bundle/1"
MAX_RECORD = 8192                 # bytes; the firmware's RECEIPT_MAX is 2048
MAX_TIME = 4102444800             # 2100-01-01: times beyond are not a charger's clock
MAX_INT = 10 ** 15                # energy, money, counters: far above any real session
MAX_SEGMENTS = 64
FIELDS = ("v", "charger", "seq", "index", "begin", "end", "charge_end", "energy_wh", "segments",
          "tariff", "currency", "net", "tax", "price", "reason", "ocmf")
_INT_FIELDS = tuple((key, MAX_TIME if key in ("begin", "end", "charge_end") else MAX_INT)
                    for key in ("seq", "index", "begin", "end", "charge_end", "energy_wh", "net", "tax", "price"))


class ReceiptError(ValueError):
    """Malformed receipt or bundle."""


class Mismatch(ValueError):
    """The receipt disagrees with its OCMF record; .reason is a short code."""

    def __init__(self, reason, detail):
        ValueError.__init__(self, detail)
        self.reason = reason


class Receipt:
    def __init__(self, record):
        if isinstance(record, str):
            record = record.encode("utf-8")
        if not isinstance(record, (bytes, bytearray)) or len(record) > MAX_RECORD:
            raise ReceiptError("a receipt record is at most %d bytes" % MAX_RECORD)
        body, sep, sig_hex = bytes(record).rpartition(b"|")
        if not sep or not body.startswith(b"{") or len(sig_hex) > 160:
            raise ReceiptError("not '<receipt JSON>|<signature hex>'")
        try:
            self.sig_der = bytes.fromhex(sig_hex.decode("ascii"))
            self.fields = strictjson.loads(body)     # bounded before any number is converted
        except (ValueError, UnicodeError) as exc:
            raise ReceiptError("receipt is not JSON|hex: %s" % exc)
        self.record, self.body = bytes(record), body
        self._check_fields(self.fields)

    @staticmethod
    def _check_fields(f):
        if not isinstance(f, dict) or tuple(f) != FIELDS or f["v"] != 1 or type(f["v"]) is not int:
            raise ReceiptError("receipt fields must be exactly %s (v 1)" % ", ".join(FIELDS))
        for key, top in _INT_FIELDS:
            value = f[key]
            if type(value) is not int or not 0 <= value <= top:
                raise ReceiptError("%s must be an integer in 0..%d" % (key, top))
        for key in ("charger", "tariff", "currency", "reason", "ocmf"):
            if not isinstance(f[key], str):
                raise ReceiptError("%s must be a string" % key)
        segs = f["segments"]
        if not isinstance(segs, list) or len(segs) > MAX_SEGMENTS:
            raise ReceiptError("segments must be at most %d [[time, Wh], ...]" % MAX_SEGMENTS)
        for seg in segs:          # a plain loop: this runs on every receipt a validator takes
            if not (isinstance(seg, list) and len(seg) == 2 and type(seg[0]) is int and type(seg[1]) is int
                    and 0 <= seg[0] <= MAX_INT and 0 <= seg[1] <= MAX_INT):
                raise ReceiptError("segments must be at most %d [[time, Wh], ...]" % MAX_SEGMENTS)

    def __getitem__(self, key):
        return self.fields[key]

    def canonical_signature(self) -> bool:
        """Strict DER with low S: the only form the charger emits, so a receipt has exactly
        one valid encoding (no malleated copy can pose as a second leaf)."""
        try:
            r, s = decode_dss_signature(self.sig_der)
        except ValueError:
            return False
        return encode_dss_signature(r, s) == self.sig_der and 0 < s <= P256_N >> 1

    def verify(self, pub_der) -> bool:
        return self.canonical_signature() and sigcheck.verify(pub_der, self.body, self.sig_der, backend="both")

    def ocmf_record(self) -> ocmf.Record:
        return ocmf.parse(self.fields["ocmf"])

    def check_against_ocmf(self, rec: ocmf.Record) -> None:
        """Raise Mismatch(reason, detail) unless the receipt says what its OCMF record says."""
        f, p = self.fields, rec.payload
        b, e = rec.begin_end()
        if b["time"] > e["time"]:
            raise Mismatch("begin-after-end", "OCMF begin reading %s is after the end reading %s"
                           % (p["RD"][0]["TM"], p["RD"][-1]["TM"]))
        if p.get("GS") != f["charger"]:
            raise Mismatch("charger-mismatch", "OCMF GS %r is not charger %r" % (p.get("GS"), f["charger"]))
        if p["PG"] != "T%d" % f["seq"]:
            raise Mismatch("pagination-mismatch", "OCMF PG %s is not receipt seq %d" % (p["PG"], f["seq"]))
        if (b["time"], e["time"]) != (Decimal(f["begin"]), Decimal(f["end"])):
            raise Mismatch("time-mismatch", "receipt times %d..%d are not OCMF's" % (f["begin"], f["end"]))
        energy = e["wh"] - b["wh"]
        if energy != f["energy_wh"]:
            raise Mismatch("energy-mismatch", "receipt says %d Wh, OCMF end - begin = %s Wh"
                           % (f["energy_wh"], energy.normalize() if energy % 1 else int(energy)))
        if sum(s[1] for s in f["segments"]) != f["energy_wh"]:
            raise Mismatch("energy-mismatch", "tariff segments do not add up to the energy")


def parse(record) -> Receipt:
    return Receipt(record)


def make_bundle(record, index, tree_size, proof, checkpoint_note, tariff_doc) -> str:
    return json.dumps({"format": BUNDLE_FORMAT,
                       "receipt": bytes(record).decode("utf-8"),
                       "index": index, "tree_size": tree_size,
                       "inclusion_proof": [base64.b64encode(h).decode() for h in proof],
                       "checkpoint": checkpoint_note, "tariff": tariff_doc}, indent=1)


def read_bundle(text: Union[str, bytes]) -> Dict[str, Any]:
    try:
        b = strictjson.loads(text, parse_float=float)
        if not isinstance(b, dict) or b.get("format") != BUNDLE_FORMAT:
            raise ReceiptError("not a %s file" % BUNDLE_FORMAT)
        proof = b.get("inclusion_proof", [])
        if not isinstance(proof, list) or len(proof) > 64:
            raise ReceiptError("inclusion_proof must be a list of at most 64 hashes")
        b["inclusion_proof"] = [base64.b64decode(h, validate=True) for h in proof]
        return b
    except (ValueError, TypeError, AttributeError) as exc:
        raise ReceiptError("bad bundle: %s" % exc)
