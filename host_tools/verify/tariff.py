"""Host-side tariff: canonical hash and price, written independently of
firmware/session/tariff.py so a validator that recomputes a receipt's price does not share the
device's bugs. Integer arithmetic throughout (tests/host/verify/test_tariff_exact.py checks it
against a datetime + Fraction + Decimal reference on random tariffs and sessions).

The rules (also in README "Pricing") are those stated in firmware/session/tariff.py.
"""
from typing import List, Tuple, Union
import datetime
import hashlib
import json
import re

from host_tools.verify import strictjson

KEYS = {"v", "currency", "utc_offset_min", "session_fee_minor", "bands",
        "idle_min_price_milli", "idle_grace_min", "tax_bp"}


MAX_BOUNDARIES = 64       # the firmware closes a session after 40 band starts (segment-limit)
MAX_TIME = 4102444800     # 2100-01-01


class TariffError(Exception):
    pass


def _check_strings(x):
    if isinstance(x, dict):
        for k, v in x.items():
            _check_strings(k)
            _check_strings(v)
    elif isinstance(x, list):
        for v in x:
            _check_strings(v)
    elif isinstance(x, str):
        if any(not (" " <= c <= "~") or c in '"\\' for c in x):
            raise TariffError("string %r not canonical ASCII" % x)
    elif isinstance(x, bool) or not isinstance(x, int):
        raise TariffError("value %r not allowed (integers and ASCII strings only)" % (x,))


def canonical(doc) -> bytes:
    _check_strings(doc)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def tariff_hash(doc) -> str:
    return hashlib.sha256(canonical(doc)).hexdigest()


class Tariff:
    # (key, lowest, highest) for every integer field; the device enforces the same ranges.
    RANGES = (("v", 1, 1), ("utc_offset_min", -720, 840), ("session_fee_minor", 0, 10 ** 8),
              ("idle_min_price_milli", 0, 10 ** 8), ("idle_grace_min", 0, 1440), ("tax_bp", 0, 10000))

    def __init__(self, doc):
        if not isinstance(doc, dict) or set(doc) != KEYS:
            raise TariffError("tariff keys must be exactly %s" % sorted(KEYS))
        for key, lo, hi in self.RANGES:
            if type(doc[key]) is not int or not lo <= doc[key] <= hi:
                raise TariffError("%s must be an integer in %d..%d" % (key, lo, hi))
        if not isinstance(doc["currency"], str) or not re.fullmatch(r"[A-Z]{3}", doc["currency"]):
            raise TariffError("currency must be an ISO 4217 code")
        bands = doc["bands"]
        if not isinstance(bands, list) or not 1 <= len(bands) <= 48:
            raise TariffError("bands must be a list of 1..48 bands")
        for b in bands:
            if not isinstance(b, dict) or set(b) != {"start_min", "kwh_price_milli"} or any(
                    type(v) is not int for v in b.values()):
                raise TariffError("a band is {start_min, kwh_price_milli}, integers")
            if not 0 <= b["start_min"] < 1440 or not 0 <= b["kwh_price_milli"] <= 10 ** 8:
                raise TariffError("band out of range: %r" % b)
        self.doc = doc
        self.hash = tariff_hash(doc)
        self.offset_s = doc["utc_offset_min"] * 60
        self.tz = datetime.timezone(datetime.timedelta(minutes=doc["utc_offset_min"]))
        self.bands = [(b["start_min"], b["kwh_price_milli"]) for b in bands]
        if self.bands[0][0] != 0 or any(a[0] >= b[0] for a, b in zip(self.bands, self.bands[1:])):
            raise TariffError("bands must start at 0 and increase")
        self.currency = doc["currency"]

    @classmethod
    def load(cls, text: Union[str, bytes]) -> "Tariff":
        try:
            return cls(strictjson.loads(text))
        except strictjson.JsonError as exc:
            raise TariffError("tariff is not JSON: %s" % exc)

    def _local(self, t):
        return datetime.datetime.fromtimestamp(t, self.tz)

    def kwh_price(self, t) -> int:
        """Price (1/1000 minor per kWh) of the band in force at epoch t."""
        minute = (t + self.offset_s) % 86400 // 60        # fixed UTC offset: no DST
        return [p for start, p in self.bands if start <= minute][-1]

    def boundaries(self, begin: int, end: int, limit: int = MAX_BOUNDARIES) -> List[int]:
        """Every band start s with begin < s <= end, as epoch seconds (at most limit of them:
        a longer list cannot match a receipt's segments, and a years-long session must not
        cost years of iterations)."""
        out: List[int] = []
        day = begin - (begin + self.offset_s) % 86400     # local midnight, epoch seconds
        while True:
            for start, _ in self.bands:
                s = day + start * 60
                if s > end:
                    return out
                if s > begin:
                    out.append(s)
                    if len(out) > limit:
                        raise TariffError("session crosses more than %d band starts" % limit)
            day += 86400

    def check_segments(self, segments: List[Tuple[int, int]], begin: int, end: int) -> int:
        if not (type(begin) is int and type(end) is int and 0 <= begin <= end <= MAX_TIME):
            raise TariffError("session times out of range")
        starts = [s[0] for s in segments]
        crossed = self.boundaries(begin, end)
        # A segment may start exactly at end (a reading taken at the boundary); otherwise the
        # segment starts are the session begin and every boundary strictly before the end.
        expected = [begin] + [b for b in crossed if b < end]
        if starts not in (expected, expected + [end] if end in crossed else expected):
            raise TariffError("segments %s do not follow the band starts %s" % (starts, expected))
        if any(s[1] < 0 for s in segments):
            raise TariffError("negative segment energy")
        return sum(s[1] for s in segments)

    def price(self, segments: List[Tuple[int, int]], begin: int, charge_end: int, end: int) -> Tuple[int, int, int]:
        """(net, tax, total) in minor units, per the rules. Exact integer arithmetic in
        millionths of a minor unit (Wh x milli-minor/kWh is exactly that); every term is
        non-negative, so rounding half up is adding one half and flooring."""
        self.check_segments(segments, begin, end)
        if not begin <= charge_end <= end:
            raise TariffError("charge end outside the session")
        d = self.doc
        micro = d["session_fee_minor"] * 1000000
        for t, wh in segments:
            micro += wh * self.kwh_price(t)
        idle_minutes = max(0, (end - charge_end) // 60 - d["idle_grace_min"])
        micro += idle_minutes * d["idle_min_price_milli"] * 1000
        net = (micro + 500000) // 1000000
        tax = (net * d["tax_bp"] + 5000) // 10000
        return net, tax, net + tax
