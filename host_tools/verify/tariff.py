"""Host-side tariff: canonical hash and price, written independently of
firmware/session/tariff.py so a validator that recomputes a receipt's price does not share the
device's bugs. Integer arithmetic throughout (tests/host/verify/test_tariff_exact.py checks it
against a datetime + Fraction + Decimal reference on random tariffs and sessions).

The rules (also in README "Pricing") are those stated in firmware/session/tariff.py.
Version 2's POSIX TZ rule is evaluated by CPython's own zoneinfo (the rule becomes the footer
of a TZif file with no transitions, RFC 8536 section 3.3), not by the device's hand-written
arithmetic; its change instants are found by bisection on zoneinfo's offsets.
"""
from typing import List, Optional, Tuple, Union
import bisect
import datetime
import hashlib
import io
import json
import re
import struct
import zoneinfo

from host_tools.verify import strictjson

KEYS = {"v", "currency", "utc_offset_min", "session_fee_minor", "bands",
        "idle_min_price_milli", "idle_grace_min", "tax_bp"}
KEYS_V2 = (KEYS - {"utc_offset_min"}) | {"id", "valid_from", "tz"}
OPTIONAL_V2 = {"valid_until", "slot_s", "slots"}
MAX_SLOTS = 200
SLOT_SPAN = 7 * 86400
DAY = 86400
# The POSIX TZ grammar the device accepts (firmware/session/tz.py): names of 3+ letters or <...>,
# hh[:mm[:ss]] offsets, Jn / n / Mm.w.d dates with an optional /time; dst only with its rule.
_NAME = r"(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)"
_HMS = r"[+-]?\d{1,3}(?::\d{1,3}(?::\d{1,3})?)?"
_DATE = r"(?:M\d{1,3}\.\d{1,3}\.\d{1,3}|J\d{1,3}|\d{1,3})(?:/" + _HMS + ")?"
TZ_RE = re.compile(_NAME + _HMS + "(?:" + _NAME + "(?:" + _HMS + ")?," + _DATE + "," + _DATE + ")?")


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


def posix_zone(rule: str) -> datetime.tzinfo:
    """A tzinfo that follows the POSIX TZ rule, evaluated by zoneinfo: a version-2 TZif file
    with no transitions and one (unused) local time type, whose footer is the rule."""
    if not isinstance(rule, str) or len(rule) > 64 or not TZ_RE.fullmatch(rule):
        raise TariffError("tz %r is not a POSIX TZ rule the device accepts" % (rule,))

    def block() -> bytes:   # header: isutcnt isstdcnt leapcnt timecnt typecnt charcnt
        return (b"TZif2" + bytes(15) + struct.pack(">6l", 0, 0, 0, 0, 1, 4)
                + struct.pack(">lBB", 0, 0, 0) + b"UTC\0")
    try:
        return zoneinfo.ZoneInfo.from_file(io.BytesIO(block() + block() + b"\n" + rule.encode() + b"\n"))
    except ValueError as exc:
        raise TariffError("tz %r: %s" % (rule, exc))


class Tariff:
    # (key, lowest, highest) for every integer field; the device enforces the same ranges.
    RANGES = (("v", 1, 1), ("utc_offset_min", -720, 840), ("session_fee_minor", 0, 10 ** 8),
              ("idle_min_price_milli", 0, 10 ** 8), ("idle_grace_min", 0, 1440), ("tax_bp", 0, 10000))
    RANGES_V2 = (("v", 2, 2), ("valid_from", 0, MAX_TIME), ("session_fee_minor", 0, 10 ** 8),
                 ("idle_min_price_milli", 0, 10 ** 8), ("idle_grace_min", 0, 1440), ("tax_bp", 0, 10000))

    def __init__(self, doc):
        self.version = doc.get("v") if isinstance(doc, dict) else None
        self.id: Optional[str] = None
        self.valid_from = 0
        self.valid_until: Optional[int] = None
        self.slots: List[Tuple[int, int]] = []
        self.slot_s = 0
        ranges = self.RANGES
        if self.version == 2 and type(doc["v"]) is int:
            ranges = self.RANGES_V2
            self._init_v2(doc)
        elif not isinstance(doc, dict) or set(doc) != KEYS:
            raise TariffError("tariff keys must be exactly %s" % sorted(KEYS))
        for key, lo, hi in ranges:
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
        if self.version == 2:
            self.offset_s = None
            self.tz = posix_zone(doc["tz"])
        else:
            self.offset_s = doc["utc_offset_min"] * 60
            self.tz = datetime.timezone(datetime.timedelta(minutes=doc["utc_offset_min"]))
        self.bands = [(b["start_min"], b["kwh_price_milli"]) for b in bands]
        if self.bands[0][0] != 0 or any(a[0] >= b[0] for a, b in zip(self.bands, self.bands[1:])):
            raise TariffError("bands must start at 0 and increase")
        self.currency = doc["currency"]

    def _init_v2(self, doc: dict) -> None:
        keys = set(doc)
        if not KEYS_V2 <= keys or not keys <= KEYS_V2 | OPTIONAL_V2 or ("slots" in keys) != ("slot_s" in keys):
            raise TariffError("tariff v2 keys: %s, optionally %s (slots with slot_s)"
                              % (sorted(KEYS_V2), sorted(OPTIONAL_V2)))
        if not isinstance(doc["id"], str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", doc["id"]):
            raise TariffError("id must be 1..32 of A-Z a-z 0-9 . _ -")
        self.id = doc["id"]
        self.valid_from = doc["valid_from"]
        if "valid_until" in doc:
            vu = doc["valid_until"]
            if type(vu) is not int or type(self.valid_from) is not int or not self.valid_from < vu <= MAX_TIME:
                raise TariffError("valid_until must be an integer after valid_from")
            self.valid_until = vu
        if "slots" in doc:
            self.slot_s = doc["slot_s"]
            if type(self.slot_s) is not int or not 60 <= self.slot_s <= DAY:
                raise TariffError("slot_s must be an integer in 60..86400")
            slots = doc["slots"]
            if not isinstance(slots, list) or not 0 < len(slots) <= MAX_SLOTS:
                raise TariffError("slots must be a list of 1..%d [start, price]" % MAX_SLOTS)
            for sl in slots:
                if (not isinstance(sl, list) or len(sl) != 2 or any(type(x) is not int for x in sl)
                        or not 0 <= sl[0] <= MAX_TIME - DAY or not 0 <= sl[1] <= 10 ** 8):
                    raise TariffError("slot %r: [start_utc, kwh_price_milli], integers in range" % (sl,))
            self.slots = [(a, b) for a, b in slots]
            if any(b[0] < a[0] + self.slot_s for a, b in zip(self.slots, self.slots[1:])):
                raise TariffError("slots must increase and not overlap")
            if self.slots[-1][0] + self.slot_s - self.slots[0][0] > SLOT_SPAN:
                raise TariffError("slots span more than 7 days")

    def in_force_at(self, t: int) -> bool:
        """True if a session starting at t may be billed by this tariff (its validity)."""
        return self.valid_from <= t and (self.valid_until is None or t < self.valid_until)

    @classmethod
    def load(cls, text: Union[str, bytes]) -> "Tariff":
        try:
            return cls(strictjson.loads(text))
        except strictjson.JsonError as exc:
            raise TariffError("tariff is not JSON: %s" % exc)

    def _local(self, t):
        return datetime.datetime.fromtimestamp(t, self.tz)

    def _slot_price(self, t: int) -> Optional[int]:
        i = bisect.bisect_right(self.slots, (t, 10 ** 9)) - 1
        if i >= 0 and t < self.slots[i][0] + self.slot_s:
            return self.slots[i][1]
        return None

    def kwh_price(self, t) -> int:
        """Price (1/1000 minor per kWh) in force at epoch t: the slot's, else the band's."""
        if self.slots:
            p = self._slot_price(t)
            if p is not None:
                return p
        if self.offset_s is not None:
            minute = (t + self.offset_s) % 86400 // 60    # fixed UTC offset: no DST
        else:
            local = self._local(t)                        # the rule's offset, by zoneinfo
            minute = local.hour * 60 + local.minute
        return [p for start, p in self.bands if start <= minute][-1]

    def _offset_changes(self, begin: int, end: int) -> List[int]:
        """Instants s (begin < s <= end) where the UTC offset changes: zoneinfo sampled every
        6 hours, each change pinned to the second by bisection."""
        def off(t: int) -> Optional[datetime.timedelta]:
            return datetime.datetime.fromtimestamp(t, self.tz).utcoffset()
        out = []
        a = begin
        while a < end:
            b = min(a + 6 * 3600, end)
            if off(a) != off(b):
                lo, hi = a, b          # off(lo) differs from off(hi): find the first second of hi's
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if off(mid) == off(a):
                        lo = mid
                    else:
                        hi = mid
                out.append(hi)
            a = b
        return out

    def _changes_v2(self, begin: int, end: int, limit: int) -> List[int]:
        """Every instant s (begin < s <= end) where the price per kWh changes."""
        cand = set(self._offset_changes(begin, end))
        for a, _ in self.slots:
            cand.update((a, a + self.slot_s))
        day = self._local(begin).date() - datetime.timedelta(days=1)
        last = self._local(end).date() + datetime.timedelta(days=1)
        while day <= last:
            for start, _ in self.bands:
                wall = datetime.datetime.combine(day, datetime.time(start // 60, start % 60))
                for fold in (0, 1):
                    s = int(wall.replace(tzinfo=self.tz, fold=fold).timestamp())
                    if self._local(s).replace(tzinfo=None) == wall:     # exists on the local clock
                        cand.add(s)
            day += datetime.timedelta(days=1)
        out = []
        for s in sorted(c for c in cand if begin < c <= end):
            if self.kwh_price(s) != self.kwh_price(s - 1):
                out.append(s)
                if len(out) > limit:
                    raise TariffError("session crosses more than %d price changes" % limit)
        return out

    def boundaries(self, begin: int, end: int, limit: int = MAX_BOUNDARIES) -> List[int]:
        """Version 2: every change of the price per kWh s with begin < s <= end. Version 1:
        every band start s with begin < s <= end, as epoch seconds (at most limit of them:
        a longer list cannot match a receipt's segments, and a years-long session must not
        cost years of iterations)."""
        if self.version == 2:
            if end - begin > 40 * DAY:
                raise TariffError("session longer than 40 days")
            return self._changes_v2(begin, end, limit)
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
