# Declarative tariff and the session price, in integers only (device side).
#
# Tariff document (JSON object, every key required, no others allowed):
#   "v": 1                      format version
#   "currency": "EUR"           ISO 4217 code
#   "utc_offset_min": 60        local time = UTC + this (fixed; the tariff names no DST rule)
#   "session_fee_minor": 50     per session, in minor units (cents)
#   "bands": [{"start_min": 0, "kwh_price_milli": 29000}, ...]
#                               time-of-use bands by local minute of the day; sorted, the first
#                               starts at 0; price per kWh in 1/1000 minor unit (29000 = 0.29 EUR)
#   "idle_min_price_milli": 10000  per whole idle minute after the grace period, 1/1000 minor unit
#   "idle_grace_min": 30        free minutes between the end of charging and unplugging
#   "tax_bp": 1900              tax rate in basis points (1900 = 19.00 %)
#
# Version 2 (a tariff the operator publishes on cp/tariff/<id>, README "Publish a tariff"):
# the keys of version 1 without "utc_offset_min", and
#   "v": 2
#   "id": "std-2027"            1..32 of A-Z a-z 0-9 . _ -  (the topic level it is published on)
#   "valid_from": 1798758000    UTC epoch s: applies to sessions that START at or after it
#   "tz": "CET-1CEST,M3.5.0,M10.5.0/3"   POSIX TZ rule (session/tz.py): the local time of the bands
#   optional "valid_until": UTC epoch s, > valid_from: no session starts under it from then on
#   optional "slot_s": 900 and "slots": [[start_utc, kwh_price_milli], ...]: dynamic prices
#               (published a day ahead); slot i covers [start_i, start_i + slot_s), starts
#               strictly increasing and not overlapping, all within 7 days; where a slot covers
#               the time its price applies, elsewhere the band's.
# In version 2 a segment starts where the price per kWh changes (a band start on the local
# clock, a change of the UTC offset, a slot's start or end) and nowhere else; version 1 keeps
# its rule (every band start).
#
# Canonical form (hashed by device and host alike): keys sorted, no whitespace, integers in
# decimal, strings printable ASCII without '"' or '\'. tariff hash = SHA-256(canonical), hex.
#
# Price rules (README "Pricing"):
#  1. Energy is split into segments at every band start (local time) crossed during the session;
#     a segment's energy is charged at the price of the band in force at its start.
#     When two meter samples straddle a boundary, the energy between them is split in
#     proportion to time, rounded down for the part before the boundary (the rest goes after).
#  2. idle minutes = max(0, floor((end_time - charge_end_time) / 60) - idle_grace_min).
#  3. Everything is summed exactly in 1e-6 minor units:
#       sum(wh * kwh_price_milli) + idle_minutes * idle_min_price_milli * 1000
#       + session_fee_minor * 1000000
#     then rounded ONCE, half up, to a whole minor unit: the net price.
#  4. tax = net * tax_bp / 10000 rounded half up; total = net + tax.
import json
from hashlib import sha256
from binascii import hexlify

from session.tz import TzError, TzRule
from store import atomic

_DAY = 86400
_KEYS = ("bands", "currency", "idle_grace_min", "idle_min_price_milli", "session_fee_minor",
         "tax_bp", "utc_offset_min", "v")
_KEYS_V2 = ("bands", "currency", "id", "idle_grace_min", "idle_min_price_milli",
            "session_fee_minor", "tax_bp", "tz", "v", "valid_from")
_OPTIONAL_V2 = ("slot_s", "slots", "valid_until")
MAX_TIME = 4102444800       # 2100-01-01: no later instant anywhere in a tariff
NEVER = MAX_TIME            # next_boundary of a price that never changes again
MAX_SLOTS = 200
_SLOT_SPAN = 7 * _DAY
_BAND_KEYS = ("kwh_price_milli", "start_min")
_MAX_PRICE = 100000000      # 100 000 minor units per kWh / per minute: beyond is a typo


class TariffError(Exception):
    pass


def _int(doc, key, lo, hi):
    x = doc.get(key)
    if type(x) is not int or not lo <= x <= hi:
        raise TariffError("tariff: %s must be an integer in %d..%d" % (key, lo, hi))
    return x


def _canon(x, out, idle=None):
    """x as canonical JSON text, in pieces appended to out; idle() between the members of a
    dict at the top (the safety watch: ~25 calls of this cost ~200 us on the 32-bit build)."""
    t = type(x)
    if t is dict:
        out.append("{")
        first = True
        for k in sorted(x):
            if idle is not None:
                idle()
            if not first:
                out.append(",")
            first = False
            _canon(k, out)
            out.append(":")
            _canon(x[k], out)
        out.append("}")
    elif t is list:
        out.append("[")
        for i, v in enumerate(x):
            if i:
                out.append(",")
            _canon(v, out)
        out.append("]")
    elif t is int:
        out.append("%d" % x)
    elif t is str:
        # Printable ASCII without quote or backslash; min/max scan the string in C (a loop
        # over its characters here cost ~200 us per tariff on the 32-bit build).
        if x and (min(x) < " " or max(x) > "~") or '"' in x or "\\" in x:
            raise TariffError("tariff: string %r not canonical ASCII" % x)
        out.append('"' + x + '"')
    else:
        raise TariffError("tariff: value of type %s not allowed" % t.__name__)


def _same_keys(d, keys):
    return len(d) == len(keys) and all(k in d for k in keys)


def _same_keys_plus(d, keys, optional):
    return len(d) == len(keys) + optional and all(k in d for k in keys)


def canonical(doc):
    out = []
    _canon(doc, out, atomic.idle)
    return "".join(out).encode()


class Tariff:
    """A parsed, validated tariff. Build with Tariff.parse(json_text_or_bytes)."""

    def __init__(self, doc):
        # MicroPython's json accepts non-string keys ({1:2}): compare them as given, unsorted
        if type(doc) is dict and doc.get("v") == 2:
            self._v2(doc)
        elif type(doc) is not dict or not _same_keys(doc, _KEYS):
            raise TariffError("tariff: keys must be exactly %s" % ",".join(_KEYS))
        else:
            _int(doc, "v", 1, 1)
            self.v = 1
            self.id = None
            self.valid_from = 0
            self.valid_until = None
            self.tz = None
            self.offset = _int(doc, "utc_offset_min", -720, 840) * 60
            self.slot_starts = ()
        self._common(doc)

    def _v2(self, doc):
        n = 0
        for k in _OPTIONAL_V2:
            if k in doc:
                n += 1
        if not _same_keys_plus(doc, _KEYS_V2, n) or ("slots" in doc) != ("slot_s" in doc):
            raise TariffError("tariff v2: keys must be %s (and optionally %s; slots with slot_s)"
                              % (",".join(_KEYS_V2), ",".join(_OPTIONAL_V2)))
        self.v = 2
        tid = doc["id"]
        if type(tid) is not str or not 0 < len(tid) <= 32:
            raise TariffError("tariff: id must be 1..32 characters")
        for c in tid:
            if not ("A" <= c <= "Z" or "a" <= c <= "z" or "0" <= c <= "9" or c in "._-"):
                raise TariffError("tariff: id %r: only A-Z a-z 0-9 . _ -" % tid)
        self.id = tid
        self.valid_from = _int(doc, "valid_from", 0, MAX_TIME)
        self.valid_until = None
        if "valid_until" in doc:
            self.valid_until = _int(doc, "valid_until", self.valid_from + 1, MAX_TIME)
        try:
            self.tz = TzRule(doc["tz"])
        except TzError as exc:
            raise TariffError("tariff: %s" % exc)
        self.offset = None
        self.slot_starts = []
        self.slot_prices = []
        self.slot_s = 0
        if "slots" in doc:
            self.slot_s = _int(doc, "slot_s", 60, _DAY)
            slots = doc["slots"]
            if type(slots) is not list or not 0 < len(slots) <= MAX_SLOTS:
                raise TariffError("tariff: slots must be a list of 1..%d [start, price]" % MAX_SLOTS)
            end = -1
            for sl in slots:
                if type(sl) is not list or len(sl) != 2:
                    raise TariffError("tariff: a slot is [start_utc, kwh_price_milli]")
                st, pr = sl
                if type(st) is not int or type(pr) is not int or not 0 <= st <= MAX_TIME - _DAY \
                        or not 0 <= pr <= _MAX_PRICE:
                    raise TariffError("tariff: slot %r out of range" % (sl,))
                if st < end:
                    raise TariffError("tariff: slots must increase and not overlap")
                end = st + self.slot_s
                self.slot_starts.append(st)
                self.slot_prices.append(pr)
            if end - self.slot_starts[0] > _SLOT_SPAN:
                raise TariffError("tariff: slots span more than 7 days")
        self._slots_end = self.slot_starts[-1] + self.slot_s if self.slot_starts else 0

    def _common(self, doc):
        cur = doc["currency"]
        if type(cur) is not str or len(cur) != 3 or not ("A" <= cur[0] <= "Z" and
                                                         "A" <= cur[1] <= "Z" and "A" <= cur[2] <= "Z"):
            raise TariffError("tariff: currency must be an ISO 4217 code")
        self.currency = cur
        self.session_fee = _int(doc, "session_fee_minor", 0, _MAX_PRICE)
        self.idle_price = _int(doc, "idle_min_price_milli", 0, _MAX_PRICE)
        self.idle_grace = _int(doc, "idle_grace_min", 0, 1440)
        self.tax_bp = _int(doc, "tax_bp", 0, 10000)
        bands = doc["bands"]
        if type(bands) is not list or not 1 <= len(bands) <= 48:
            raise TariffError("tariff: bands must be a list of 1..48 bands")
        self.starts = []      # band start, seconds of the local day
        self.prices = []
        for b in bands:
            if type(b) is not dict or not _same_keys(b, _BAND_KEYS):
                raise TariffError("tariff: a band has exactly start_min and kwh_price_milli")
            start = _int(b, "start_min", 0, 1439) * 60
            if (not self.starts and start != 0) or (self.starts and start <= self.starts[-1]):
                raise TariffError("tariff: bands must start at 0 and be strictly increasing")
            self.starts.append(start)
            self.prices.append(_int(b, "kwh_price_milli", 0, _MAX_PRICE))
        self.canonical = canonical(doc)         # the watch between its members
        atomic.idle()
        self.hash = hexlify(sha256(self.canonical).digest()).decode()

    @classmethod
    def parse(cls, text):
        try:
            if isinstance(text, (bytes, bytearray)):
                text = bytes(text).decode()
            doc = json.loads(text)
        except ValueError:                 # UnicodeError is a ValueError on both interpreters
            raise TariffError("tariff: not JSON")
        atomic.idle()                       # the safety watch (the app's) between the pieces
        return cls(doc)

    def local(self, t):
        """Local wall-clock seconds (since 1970-01-01 local) at epoch second t."""
        return t + (self.offset if self.tz is None else self.tz.offset(t))

    def band_at(self, t):
        """Index of the band in force at epoch second t (UTC)."""
        sod = self.local(t) % _DAY
        i = len(self.starts) - 1
        while self.starts[i] > sod:
            i -= 1
        return i

    def slot_at(self, t):
        """Index of the slot covering t, or -1."""
        starts = self.slot_starts
        lo, hi = 0, len(starts)
        while lo < hi:                      # the last slot starting at or before t
            mid = (lo + hi) // 2
            if starts[mid] <= t:
                lo = mid + 1
            else:
                hi = mid
        i = lo - 1
        if i >= 0 and t < starts[i] + self.slot_s:
            return i
        return -1

    def kwh_price(self, t):
        """Price per kWh (1/1000 minor unit) in force at epoch second t."""
        if self.slot_starts:
            i = self.slot_at(t)
            if i >= 0:
                return self.slot_prices[i]
        return self.prices[self.band_at(t)]

    def _candidate(self, t):
        """The first instant after t where the price might change (v2)."""
        off = self.tz.offset(t)
        local = t + off
        sod = local % _DAY
        nxt = local - sod + _DAY
        for s in self.starts:
            if s > sod:
                nxt = local - sod + s
                break
        nxt -= off
        ch = self.tz.next_change(t)
        if ch is not None and ch < nxt:
            nxt = ch
        if self.slot_starts and t < self._slots_end:
            i = self.slot_at(t)
            if i >= 0:
                edge = self.slot_starts[i] + self.slot_s
            else:                           # before the first slot or in a gap
                edge = self.slot_starts[0]
                for st in self.slot_starts:
                    if st > t:
                        edge = st
                        break
            if edge < nxt:
                nxt = edge
        return nxt

    def next_boundary(self, t):
        """The first segment boundary strictly after epoch second t (the session layer reads
        the meter there so no energy needs to be apportioned): v1 every band start, v2 the
        first change of the price per kWh (NEVER if it does not change again)."""
        if self.v == 2:
            p = self.kwh_price(t)
            horizon = (t if t > self._slots_end else self._slots_end) + 3 * _DAY
            c = t
            while True:
                c = self._candidate(c)
                if c > horizon:
                    return NEVER
                if self.kwh_price(c) != p:
                    return c
        local = t + self.offset
        sod = local % _DAY
        day0 = local - sod
        for s in self.starts:
            if s > sod:
                return day0 + s - self.offset
        return day0 + _DAY - self.offset


class EnergySplit:
    """Energy per tariff segment, fed with meter samples (epoch s, register Wh) in time order.
    segments: [[start_time, wh], ...], a new one at every band start crossed."""

    def __init__(self, tariff, t0, wh0):
        self.tariff = tariff
        self.segments = [[t0, 0]]
        self.t = t0
        self.wh = wh0
        self.begin_time = t0
        self.begin_wh = wh0
        self.charge_end = t0        # time of the last sample that showed energy flowing
        self._next = tariff.next_boundary(t0)

    def sample(self, t, wh):
        if t < self.t or wh < self.wh:
            raise TariffError("sample goes back in time or energy (%d, %d)" % (t, wh))
        if wh > self.wh:
            self.charge_end = t
        while self._next <= t:
            b = self._next
            part = (wh - self.wh) * (b - self.t) // (t - self.t)
            self.segments[-1][1] += part
            self.wh += part
            self.t = b
            self.segments.append([b, 0])
            self._next = self.tariff.next_boundary(b)
        self.segments[-1][1] += wh - self.wh
        self.t = t
        self.wh = wh

    def energy(self):
        return self.wh - self.begin_wh

    def state(self):
        """Plain data to journal on flash, so a reboot mid-session resumes the split."""
        return [self.begin_time, self.begin_wh, self.t, self.wh, self.charge_end, self.segments]

    @classmethod
    def restore(cls, tariff, state):
        """The split journalled by state(), under the same tariff."""
        begin_time, begin_wh, t, wh, charge_end, segments = state
        s = cls(tariff, begin_time, begin_wh)
        s.t, s.wh, s.charge_end = t, wh, charge_end
        s.segments = [[x[0], x[1]] for x in segments]
        s._next = tariff.next_boundary(t)
        return s


def check_segments(tariff, segments, begin_time, end_time):
    """Raise TariffError unless segments start at begin_time and at every band start crossed
    before end_time, and nowhere else; return the total energy in Wh."""
    if not segments or segments[0][0] != begin_time or end_time < begin_time:
        raise TariffError("segments must start at the session's begin")
    total = 0
    for i, seg in enumerate(segments):
        if len(seg) != 2 or type(seg[0]) is not int or type(seg[1]) is not int or seg[1] < 0:
            raise TariffError("segment %d malformed" % i)
        nb = tariff.next_boundary(seg[0])
        if i + 1 < len(segments):
            if segments[i + 1][0] != nb:
                raise TariffError("segment %d does not end at a band start" % i)
        elif nb < end_time:
            raise TariffError("band start crossed after the last segment")
        total += seg[1]
    return total


def price(tariff, segments, begin_time, charge_end_time, end_time):
    """(net, tax, total) in minor units for a session; see the rules at the top of this file."""
    check_segments(tariff, segments, begin_time, end_time)
    if not begin_time <= charge_end_time <= end_time:
        raise TariffError("charge end outside the session")
    micro = tariff.session_fee * 1000000
    for seg in segments:
        micro += seg[1] * tariff.kwh_price(seg[0])
    idle = (end_time - charge_end_time) // 60 - tariff.idle_grace
    if idle > 0:
        micro += idle * tariff.idle_price * 1000
    net = (micro + 500000) // 1000000
    tax = (net * tariff.tax_bp + 5000) // 10000
    return net, tax, net + tax
