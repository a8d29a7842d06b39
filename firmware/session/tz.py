# POSIX TZ rules (IEEE 1003.1 "TZ", as in the footer of RFC 8536 TZif files), evaluated with
# integer arithmetic only: a tariff's time bands follow the local clock, daylight saving included.
#
#   std offset [dst [offset] [,start[/time],end[/time]]]
#   "CET-1CEST,M3.5.0,M10.5.0/3"     Berlin   "EST5EDT,M3.2.0,M11.1.0"   New York
#   "AEST-10AEDT,M10.1.0,M4.1.0/3"   Sydney (DST across the new year)   "<+0530>-5:30"  no DST
#
# The offset is west of Greenwich (POSIX's sign: CET-1 is UTC+1). Names are 3+ letters or <...>.
# start/end: Jn (1..365, 29 Feb never counted), n (0..365, counted), Mm.w.d (month m, week w of
# 1..5 with 5 = the last, weekday d with 0 = Sunday); time (default 02:00) is local wall time
# before the change, may be negative or up to 167 h (RFC 8536). A dst name without a rule is
# refused (POSIX leaves its default to the implementation).
_DAY = 86400
_MAX_LEN = 64


class TzError(ValueError):
    pass


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of the proleptic Gregorian date y-m-d (integer arithmetic after
    H. Hinnant's published `days_from_civil` derivation)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def year_of(days):
    """The year of the day `days` since 1970-01-01."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return yoe + era * 400 + (1 if mp >= 10 else 0)


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Reader:
    def __init__(self, s):
        self.s = s
        self.i = 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def num(self, lo, hi):
        j = self.i
        while self.i < len(self.s) and "0" <= self.s[self.i] <= "9" and self.i - j < 3:
            self.i += 1
        if self.i == j:
            raise TzError("tz: number expected at %d" % j)
        n = int(self.s[j:self.i])
        if not lo <= n <= hi:
            raise TzError("tz: %d out of %d..%d" % (n, lo, hi))
        return n

    def name(self):
        s = self.s
        j = self.i
        if self.peek() == "<":
            k = s.find(">", j)
            if k < 0:
                raise TzError("tz: unclosed <name>")
            body = s[j + 1:k]
            self.i = k + 1
        else:
            while self.i < len(s) and ("A" <= s[self.i] <= "Z" or "a" <= s[self.i] <= "z"):
                self.i += 1
            body = s[j:self.i]
        if len(body) < 3:
            raise TzError("tz: zone name of at least 3 characters expected at %d" % j)
        for c in body:
            if not ("A" <= c <= "Z" or "a" <= c <= "z" or "0" <= c <= "9" or c in "+-"):
                raise TzError("tz: bad character %r in a zone name" % c)
        return body

    def hms(self, max_h):
        """[+-]hh[:mm[:ss]] as signed seconds."""
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.peek() == "-" else 1
            self.i += 1
        sec = self.num(0, max_h) * 3600
        if self.peek() == ":":
            self.i += 1
            sec += self.num(0, 59) * 60
            if self.peek() == ":":
                self.i += 1
                sec += self.num(0, 59)
        return sign * sec

    def date(self):
        c = self.peek()
        if c == "M":
            self.i += 1
            m = self.num(1, 12)
            self.expect(".")
            w = self.num(1, 5)
            self.expect(".")
            d = self.num(0, 6)
            rule = ("M", m, w, d)
        elif c == "J":
            self.i += 1
            rule = ("J", self.num(1, 365), 0, 0)
        else:
            rule = ("n", self.num(0, 365), 0, 0)
        t = 7200
        if self.peek() == "/":
            self.i += 1
            t = self.hms(167)
        return rule, t

    def expect(self, ch):
        if self.peek() != ch:
            raise TzError("tz: %r expected at %d" % (ch, self.i))
        self.i += 1


def _day_of(y, rule):
    """Days since 1970-01-01 of the rule's date in year y."""
    kind, a, w, d = rule
    if kind == "J":
        return days_from_civil(y, 1, 1) + a - 1 + (1 if _leap(y) and a >= 60 else 0)
    if kind == "n":
        return days_from_civil(y, 1, 1) + a
    first = days_from_civil(y, a, 1)
    wd = (first + 4) % 7                    # 1970-01-01 was a Thursday (4)
    day = (d - wd) % 7 + (w - 1) * 7        # 0-based day of the month
    mlen = _MDAYS[a - 1] + (1 if a == 2 and _leap(y) else 0)
    while day >= mlen:
        day -= 7
    return first + day


class TzRule:
    """A parsed POSIX TZ string. offset(t): seconds east of UTC in force at epoch second t;
    next_change(t): the first instant strictly after t where the offset changes (None without
    daylight saving)."""

    def __init__(self, text):
        if not isinstance(text, str) or not 0 < len(text) <= _MAX_LEN:
            raise TzError("tz: a string of 1..%d characters" % _MAX_LEN)
        r = _Reader(text)
        self.text = text
        self.std_name = r.name()
        self.std = -r.hms(24)
        self.dst = None
        self._cache = (None, None)
        if r.peek() == "":
            return
        self.dst_name = r.name()
        self.dst = self.std + 3600
        if r.peek() not in (",", ""):
            self.dst = -r.hms(24)
        if r.peek() != ",":
            raise TzError("tz: a daylight-saving zone needs its rule (,start,end)")
        r.i += 1
        self.start, self.start_t = r.date()
        r.expect(",")
        self.end, self.end_t = r.date()
        if r.peek() != "":
            raise TzError("tz: unexpected %r at %d" % (r.peek(), r.i))

    def _changes(self, t):
        """Offset changes of the years around t: [(instant, offset after), ...] in time order
        (the last year's list is kept: sessions ask about the same year again and again)."""
        y = year_of((t + self.std) // _DAY)
        if self._cache[0] == y:
            return self._cache[1]
        out = []
        for yy in (y - 1, y, y + 1):
            out.append((_day_of(yy, self.start) * _DAY + self.start_t - self.std, self.dst))
            out.append((_day_of(yy, self.end) * _DAY + self.end_t - self.dst, self.std))
        out.sort()
        self._cache = (y, out)
        return out

    def offset(self, t):
        if self.dst is None:
            return self.std
        off = None
        for when, after in self._changes(t):
            if when <= t:
                off = after
            elif off is None:
                off = self.std if after == self.dst else self.dst
        return off

    def next_change(self, t):
        if self.dst is None:
            return None
        cur = self.offset(t)
        while True:
            for when, after in self._changes(t):
                if when > t and after != cur:
                    return when
            t += 365 * _DAY     # only when a year's rule yields no change (start == end)
            if t > 4102444800:
                return None
