"""host_tools.verify.tariff prices in integers: the same (net, tax, total) and band starts as a
plain reference in datetime + Fraction + Decimal (the form it was first written in), on random
tariffs (offsets, bands, fees, tax) and sessions crossing midnight and band starts."""
import datetime
import random
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from host_tools.verify import tariff


def _round_half_up(x):
    with localcontext() as ctx:
        ctx.prec = 100
        q = Decimal(x.numerator) / Decimal(x.denominator)
        return int(q.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def ref_band_price(t, tz, bands):
    local = datetime.datetime.fromtimestamp(t, tz)
    minute = local.hour * 60 + local.minute
    return [p for start, p in bands if start <= minute][-1]


def ref_boundaries(begin, end, tz, bands):
    out = []
    day = datetime.datetime.fromtimestamp(begin, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    while True:
        for start, _ in bands:
            s = int((day + datetime.timedelta(minutes=start)).timestamp())
            if s > end:
                return out
            if s > begin:
                out.append(s)
        day = day + datetime.timedelta(days=1)


def ref_price(doc, segments, charge_end, end):
    tz = datetime.timezone(datetime.timedelta(minutes=doc["utc_offset_min"]))
    bands = [(b["start_min"], b["kwh_price_milli"]) for b in doc["bands"]]
    amount = Fraction(doc["session_fee_minor"])
    for t, wh in segments:
        amount += Fraction(wh, 1000) * Fraction(ref_band_price(t, tz, bands), 1000)
    idle_minutes = max(0, (end - charge_end) // 60 - doc["idle_grace_min"])
    amount += idle_minutes * Fraction(doc["idle_min_price_milli"], 1000)
    net = _round_half_up(amount)
    tax = _round_half_up(Fraction(net * doc["tax_bp"], 10000))
    return net, tax, net + tax


def test_integer_price_and_band_starts_match_the_fraction_reference():
    rng = random.Random(20261128)
    for _ in range(400):
        starts = sorted({0} | {rng.randrange(1, 1440) for _ in range(rng.randrange(0, 5))})
        doc = {"v": 1, "currency": "EUR", "utc_offset_min": rng.randrange(-720, 841),
               "session_fee_minor": rng.choice([0, 50, 99, rng.randrange(0, 10 ** 6)]),
               "bands": [{"start_min": s, "kwh_price_milli": rng.randrange(0, 10 ** 6)} for s in starts],
               "idle_min_price_milli": rng.randrange(0, 10 ** 5), "idle_grace_min": rng.randrange(0, 120),
               "tax_bp": rng.randrange(0, 10001)}
        t = tariff.Tariff(doc)
        tz = datetime.timezone(datetime.timedelta(minutes=doc["utc_offset_min"]))
        bands = t.bands
        begin = rng.randrange(1_600_000_000, 1_900_000_000)
        end = begin + rng.choice([0, 59, 3600, rng.randrange(0, 3 * 86400)])
        crossed = t.boundaries(begin, end)
        assert crossed == ref_boundaries(begin, end, tz, bands)[:len(crossed)]
        starts_at = [begin] + [b for b in crossed if b < end]
        segments = [(s, rng.randrange(0, 30000)) for s in starts_at]
        charge_end = rng.randrange(begin, end + 1)
        assert t.price(segments, begin, charge_end, end) == ref_price(doc, segments, charge_end, end)
        for s in [begin, end] + crossed:
            assert t.kwh_price(s) == ref_band_price(s, tz, bands)
