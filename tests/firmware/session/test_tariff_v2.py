# Version 2 tariffs on the device: validity, time bands on a daylight-saving local clock, dynamic
# slot prices, segments where the price changes; and the billing that schedules published
# tariffs (valid_from ahead) and keeps what it holds when a message is refused.
import json

from support.fwtest import raises
from session.billing import Billing, TariffRefused
from session.tariff import NEVER, EnergySplit, Tariff, TariffError, price

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"
DOC = {"v": 2, "id": "std-2026", "currency": "EUR", "valid_from": 1767225600, "tz": BERLIN,
       "session_fee_minor": 0,
       "bands": [{"start_min": 0, "kwh_price_milli": 20000},       # 00:00 local
                 {"start_min": 150, "kwh_price_milli": 30000},     # 02:30 local
                 {"start_min": 420, "kwh_price_milli": 40000}],    # 07:00 local
       "idle_min_price_milli": 0, "idle_grace_min": 30, "tax_bp": 0}
SPRING = 1774746000      # 2026-03-29 01:00 UTC: 02:00 CET becomes 03:00 CEST
AUTUMN = 1792890000      # 2026-10-25 01:00 UTC: 03:00 CEST becomes 02:00 CET
V1 = ('{"v":1,"currency":"EUR","utc_offset_min":60,"session_fee_minor":0,'
      '"bands":[{"start_min":0,"kwh_price_milli":30000}],"idle_min_price_milli":0,'
      '"idle_grace_min":30,"tax_bp":0}')


def doc(**changes):
    d = json.loads(json.dumps(DOC))
    d.update(changes)
    return d


def test_spring_forward_skips_a_band_start_and_the_change_is_the_boundary():
    t = Tariff(doc())
    midnight = SPRING - 3600                    # 00:00 CET
    assert t.kwh_price(midnight) == 20000
    # 02:30 local does not exist that night: the price changes when the clock jumps to 03:00
    assert t.next_boundary(midnight) == SPRING and t.kwh_price(SPRING) == 30000
    assert t.kwh_price(SPRING - 1) == 20000
    assert t.next_boundary(SPRING) == SPRING + 4 * 3600       # 07:00 CEST = 05:00 UTC


def test_fall_back_repeats_a_band_start():
    t = Tariff(doc())
    a = AUTUMN - 1800                           # 02:30 CEST, first time
    assert t.next_boundary(AUTUMN - 3 * 3600) == a and t.kwh_price(a) == 30000
    assert t.next_boundary(a) == AUTUMN and t.kwh_price(AUTUMN) == 20000     # 02:00 CET again
    assert t.next_boundary(AUTUMN) == AUTUMN + 1800                          # 02:30 CET again
    s = EnergySplit(t, AUTUMN - 3600, 0)
    s.sample(AUTUMN + 3600, 4000)              # two hours, evenly
    assert s.segments == [[AUTUMN - 3600, 1000], [a, 1000], [AUTUMN, 1000], [AUTUMN + 1800, 1000]]
    # 1 kWh x (0.20 + 0.30 + 0.20 + 0.30) = 1.00 EUR
    assert price(t, s.segments, AUTUMN - 3600, AUTUMN + 3600, AUTUMN + 3600) == (100, 0, 100)


def test_slot_prices_replace_the_band_price_where_they_cover():
    base = 1767254400                           # 2026-01-01 08:00 UTC = 09:00 CET (band 40000)
    t = Tariff(doc(slot_s=900, slots=[[base, 11000], [base + 900, 12500], [base + 2700, 9000]]))
    assert [t.kwh_price(x) for x in (base - 1, base, base + 899, base + 900, base + 1800,
                                     base + 2700, base + 3600)] == [40000, 11000, 11000, 12500,
                                                                    40000, 9000, 40000]
    s = EnergySplit(t, base - 900, 0)
    for i in range(1, 7):
        s.sample(base - 900 + i * 900, i * 2000)   # 2 kWh per quarter hour
    assert [x[0] - base for x in s.segments] == [-900, 0, 900, 1800, 2700, 3600]
    assert [x[1] for x in s.segments] == [2000, 2000, 2000, 2000, 2000, 2000]
    # 2 kWh x (0.40 + 0.11 + 0.125 + 0.40 + 0.09 + 0.40) = 3.05 EUR (+19 % tax = 0.5795 -> 0.58)
    t2 = Tariff(doc(slot_s=900, slots=[[base, 11000], [base + 900, 12500], [base + 2700, 9000]],
                    tax_bp=1900))
    assert price(t2, s.segments, base - 900, base + 4500, base + 4500) == (305, 58, 363)


def test_a_flat_price_has_no_boundary():
    t = Tariff(doc(bands=[{"start_min": 0, "kwh_price_milli": 30000}]))
    assert t.next_boundary(SPRING - 10) == NEVER
    s = EnergySplit(t, SPRING - 7200, 0)
    s.sample(SPRING + 86400 * 3, 90000)
    assert s.segments == [[SPRING - 7200, 90000]]


def test_documents_are_checked():
    Tariff(doc(valid_until=1767225601))
    for bad in (doc(valid_from=-1), doc(tz="CET-1CEST"), doc(id="a/b"), doc(id=""),
                doc(valid_until=1767225600), doc(slots=[[0, 1]]), doc(slot_s=900),
                doc(slot_s=900, slots=[[1000, 1], [1899, 2]]),        # overlap
                doc(slot_s=900, slots=[[0, 1], [8 * 86400, 2]]),       # more than 7 days
                doc(slot_s=59, slots=[[0, 1]]), doc(utc_offset_min=60), doc(extra=1)):
        raises(TariffError, Tariff, bad)
    assert Tariff(doc()).hash != Tariff(doc(id="std-2027")).hash


def test_billing_schedules_published_tariffs(tmp_path):
    d = tmp_path + "/tariff"
    b = Billing(d, V1)
    now = DOC["valid_from"] + 100
    t, status = b.offer(json.dumps(doc()), now, tariff_id="std-2026")
    assert status == "in-force" and b.tariff.hash == t.hash
    assert b.offer(json.dumps(doc()), now)[1] == "known"
    later = doc(id="std-2027", valid_from=now + 3600)
    assert b.offer(json.dumps(later), now)[1] == "scheduled"
    assert b.in_force(now + 3599).hash == t.hash           # a session starting before: the old one
    # after a reboot the schedule is still there
    b2 = Billing(d, V1)
    assert b2.tariff.hash == t.hash and len(b2.pending) == 1
    assert b2.in_force(now + 3600).id == "std-2027" and b2.pending == []
    assert Billing(d, V1).tariff.id == "std-2027"


def test_billing_refuses_and_keeps_what_it_has(tmp_path):
    d = tmp_path + "/tariff"
    b = Billing(d, V1)
    now = DOC["valid_from"] + 100
    b.offer(json.dumps(doc()), now)
    held = b.tariff.hash
    for text, tid, reason in ((json.dumps(doc(valid_from=1000)), None, "stale"),
                              (json.dumps(doc(id="x", valid_until=now)), None, "expired"),
                              (json.dumps(doc(id="x", valid_from=now + 5)), "y", "malformed"),
                              (V1, None, "malformed"), ("{", None, "malformed")):
        exc = raises(TariffRefused, b.offer, text, now, None, tid)
        assert exc.reason == reason, (reason, exc.reason, exc.detail)
        assert b.tariff.hash == held and b.pending == []
    for i in range(4):
        b.offer(json.dumps(doc(id="f%d" % i, valid_from=now + 10 + i)), now)
    assert raises(TariffRefused, b.offer, json.dumps(doc(id="f9", valid_from=now + 99)), now).reason \
        == "too-many-pending"
    assert Billing(d, V1).tariff.hash == held


def test_an_expired_tariff_prices_no_new_session(tmp_path):
    b = Billing(tmp_path + "/tariff", V1)
    now = DOC["valid_from"] + 100
    b.offer(json.dumps(doc(valid_until=now + 60)), now)
    assert b.start(now + 59, 0).tariff.id == "std-2026"
    raises(TariffError, b.start, now + 60, 0)
