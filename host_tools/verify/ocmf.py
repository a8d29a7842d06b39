"""Strict OCMF reader for the host (S.A.F.E. e.V., OCMF-en.md): parse a record, verify its
ECDSA-secp256r1-SHA256 signature over the payload bytes exactly as transmitted, and read the
begin/end readings as exact decimals. Independent of firmware/ledger/ocmf.py."""
from typing import Any, Dict, Tuple
import datetime
import re
from decimal import Decimal

from host_tools.verify import sigcheck
from host_tools.verify import strictjson

SIG_ALGORITHM = "ECDSA-secp256r1-SHA256"
_TM = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d),(\d{3})([+-])(\d\d)(\d\d) ([UIRS])$")
_PG = re.compile(r"^[TF][1-9][0-9]*$|^[TF]0$")
END_TX = "ELRAP"
MAX_RECORD = 4096                 # OCPP carries at most 2500 characters of base64
MAX_READINGS = 64
MAX_READING = 10 ** 12            # kWh or Wh: more than any meter register counts


_EPOCH = datetime.datetime(1970, 1, 1)
_SECOND = datetime.timedelta(seconds=1)
_FV = re.compile(r"^\d+\.\d+$")
_STRING_KEYS = ("FV", "GI", "GS", "GV", "PG", "MV", "MM", "MS", "MF", "IL", "IT", "ID", "CT", "CI")


class OcmfError(ValueError):
    """The record is not well-formed OCMF (message says which rule it breaks)."""


def parse_time(tm: Any) -> Tuple[Decimal, str]:
    """(epoch seconds as Decimal, clock status letter) of an OCMF TM string."""
    m = _TM.match(tm) if isinstance(tm, str) else None
    if not m:
        raise OcmfError("TM %r is not 'YYYY-MM-DDThh:mm:ss,fff+zzzz S'" % (tm,))
    y, mo, d, h, mi, s, ms, sign, oh, om, status = m.groups()
    try:
        # naive: validates the calendar date; the offset is applied in whole seconds
        dt = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError as exc:
        raise OcmfError("TM %r: %s" % (tm, exc))
    offset = (int(oh) * 3600 + int(om) * 60) * (1 if sign == "+" else -1)
    if abs(offset) >= 86400:
        raise OcmfError("TM %r: UTC offset of a day or more" % (tm,))
    seconds = (dt - _EPOCH) // _SECOND - offset
    return (Decimal(seconds) if ms == "000" else Decimal(seconds) + Decimal(int(ms)) / 1000), status


class Record:
    """A parsed OCMF record: payload_text (the signed bytes, as str), payload (dict, numbers
    as Decimal), signature (dict), sig_der (bytes), and the readings."""

    def __init__(self, text):
        if not isinstance(text, str):
            raise OcmfError("an OCMF record is text")
        if len(text) > MAX_RECORD:
            raise OcmfError("an OCMF record is at most %d characters" % MAX_RECORD)
        parts = text.split("|")
        if len(parts) != 3 or parts[0] != "OCMF":
            raise OcmfError("not 'OCMF|<payload>|<signature>'")
        self.text = text
        self.payload_text = parts[1]
        try:
            # Bounded depth and number syntax before any conversion ("RV":1e999999 is refused
            # here, not turned into a million-digit integer later).
            self.payload = strictjson.loads(parts[1])
            self.signature = strictjson.loads(parts[2])
        except ValueError as exc:
            raise OcmfError("section is not JSON: %s" % exc)
        if not isinstance(self.payload, dict) or not isinstance(self.signature, dict):
            raise OcmfError("sections must be JSON objects")
        self._check_payload()
        self._check_signature()

    def _check_payload(self):
        p = self.payload
        for key in _STRING_KEYS:
            if key in p and type(p[key]) is not str:
                raise OcmfError("%s must be a string" % key)
        fv = p.get("FV", "1.0")
        if not isinstance(fv, str) or not _FV.match(fv):
            raise OcmfError("FV must be '<major>.<minor>'")
        if not isinstance(p.get("PG"), str) or not _PG.match(p["PG"]):
            raise OcmfError("PG must be T<n> or F<n>")
        if not (isinstance(p.get("MS"), str) or isinstance(p.get("GS"), str)):
            raise OcmfError("a meter (MS) or gateway (GS) serial is mandatory")
        if p["PG"][0] == "T":
            if not isinstance(p.get("IS"), bool) or not isinstance(p.get("IT"), str):
                raise OcmfError("a transaction record needs IS (boolean) and IT")
            if "IF" in p and (not isinstance(p["IF"], list) or len(p["IF"]) > 4):
                raise OcmfError("IF must be an array of at most 4 strings")
        rd = p.get("RD")
        if not isinstance(rd, list) or not 0 < len(rd) <= MAX_READINGS:
            raise OcmfError("RD must be a non-empty array of at most %d readings" % MAX_READINGS)
        inherited = {}
        self.readings = []
        for i, r in enumerate(rd):
            if not isinstance(r, dict):
                raise OcmfError("reading %d is not an object" % i)
            full = dict(inherited)
            full.update(r)
            inherited = full                    # omitted fields repeat the previous reading's
            for key in ("TM", "RV", "RU", "ST"):
                if key not in full:
                    raise OcmfError("reading %d lacks %s" % (i, key))
            if not isinstance(full["RV"], (int, Decimal)) or isinstance(full["RV"], bool):
                raise OcmfError("reading %d: RV must be a JSON number" % i)
            if not 0 <= full["RV"] <= MAX_READING:
                raise OcmfError("reading %d: RV %s out of 0..%d" % (i, full["RV"], MAX_READING))
            if full["RU"] not in ("kWh", "Wh"):
                raise OcmfError("reading %d: unit %r is not energy" % (i, full["RU"]))
            for key in ("TX", "RI", "ST", "EF"):
                if key in full and not isinstance(full[key], str):
                    raise OcmfError("reading %d: %s must be a string" % (i, key))
            t, status = parse_time(full["TM"])
            self.readings.append({"time": t, "clock": status, "tx": full.get("TX"),
                                  "wh": Decimal(full["RV"]) * (1000 if full["RU"] == "kWh" else 1),
                                  "ri": full.get("RI"), "st": full["ST"], "ef": full.get("EF", "")})

    def _check_signature(self):
        s = self.signature
        if s.get("SA", None) != SIG_ALGORITHM:
            raise OcmfError("SA must be %s" % SIG_ALGORITHM)
        if s.get("SE", "hex") != "hex" or s.get("SM", "application/x-der") != "application/x-der":
            raise OcmfError("only hex-encoded DER signatures are supported")
        try:
            self.sig_der = bytes.fromhex(s["SD"])
        except (KeyError, TypeError, ValueError):
            raise OcmfError("SD must be the signature in hex")

    def verify(self, pubkey_der) -> bool:
        """True iff SD is the key's ECDSA-P256-SHA256 signature over the payload bytes."""
        return sigcheck.verify(pubkey_der, self.payload_text.encode("utf-8"), self.sig_der,
                               backend="both")

    def begin_end(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(begin reading, end reading) of a transaction record: TX B first, E/L/R/A/P last."""
        if len(self.readings) < 2:
            raise OcmfError("a session record needs a begin and an end reading")
        b, e = self.readings[0], self.readings[-1]
        if b["tx"] != "B" or e["tx"] not in END_TX:
            raise OcmfError("readings must run from TX B to an end (E, L, R, A, P)")
        for r in (b, e):
            if r["ri"] is None or r["st"] != "G" or "E" in (r["ef"] or ""):
                raise OcmfError("a reading is not a usable register value (RI, ST G, EF)")
        return b, e


def parse(text) -> Record:
    return Record(text)
