"""ocmf.parse_time (naive datetime + offset in seconds) gives the same epoch and clock status as
a plain timezone-aware reference, and refuses the same texts, on random TM strings including
impossible dates, hours, minutes and offsets."""
import datetime
import random
from decimal import Decimal

from host_tools.verify import ocmf


def reference(tm):
    y, mo, d, h, mi, s, ms, sign, oh, om, status = ocmf._TM.match(tm).groups()
    tz = datetime.timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    dt = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=datetime.timezone(tz))
    return Decimal(int(dt.timestamp())) + Decimal(int(ms)) / 1000, status


def test_parse_time_matches_the_aware_reference():
    rng = random.Random(7)
    accepted = 0
    for _ in range(20000):
        tm = "%04d-%02d-%02dT%02d:%02d:%02d,%03d%s%02d%02d %s" % (
            rng.randrange(1970, 2100), rng.randrange(0, 14), rng.randrange(0, 33), rng.randrange(0, 25),
            rng.randrange(0, 61), rng.randrange(0, 61), rng.choice([0, 0, rng.randrange(1000)]),
            rng.choice("+-"), rng.randrange(0, 30), rng.randrange(0, 100), rng.choice("UIRS"))
        try:
            want = reference(tm)
        except ValueError:
            want = "refused"
        try:
            got = ocmf.parse_time(tm)
        except ocmf.OcmfError:
            got = "refused"
        assert got == want, tm
        accepted += want != "refused"
    assert accepted > 5000
