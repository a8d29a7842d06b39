# Device tariff: canonical hash, time-of-use bands in local time, energy split at band starts,
# and the integer price with its stated rounding (hand-computed expectations).
import json

from support.fwtest import raises
from session.tariff import EnergySplit, Tariff, TariffError, check_segments, price

DOC = {"v": 1, "currency": "EUR", "utc_offset_min": 60, "session_fee_minor": 50,
       "bands": [{"start_min": 0, "kwh_price_milli": 25000},      # 00:00 local  0.25 EUR/kWh
                 {"start_min": 420, "kwh_price_milli": 39000},    # 07:00 local  0.39 EUR/kWh
                 {"start_min": 1320, "kwh_price_milli": 29000}],  # 22:00 local  0.29 EUR/kWh
       "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900}

T0530 = 1768455000      # 2026-01-15 05:30 UTC = 06:30 local (UTC+1)
T0600 = 1768456800      # 07:00 local: band start
T0605 = 1768457100
T0620 = 1768458000
T0630 = 1768458600
T2030 = 1768509000      # 21:30 local
T2100 = T2030 + 1800    # 22:00 local: band start
T2300 = T2030 + 9000    # 00:00 local next day: band start


def tariff(**changes):
    doc = json.loads(json.dumps(DOC))
    doc.update(changes)
    return Tariff(doc)


def test_canonical_hash_ignores_key_order_and_whitespace():
    a = Tariff.parse(json.dumps(DOC))
    b = Tariff.parse('{ "tax_bp" : 1900, "idle_grace_min": 30, "v": 1, "utc_offset_min": 60,\n'
                     '"session_fee_minor": 50, "idle_min_price_milli": 10000, "currency": "EUR",'
                     '"bands": [{"kwh_price_milli": 25000, "start_min": 0},'
                     '{"start_min": 420, "kwh_price_milli": 39000},'
                     '{"start_min": 1320, "kwh_price_milli": 29000}]}')
    assert a.hash == b.hash and len(a.hash) == 64
    assert a.canonical.startswith(b'{"bands":[{"kwh_price_milli":25000,"start_min":0},')
    assert b" " not in a.canonical
    assert tariff(tax_bp=2000).hash != a.hash


def test_bad_tariffs_are_rejected():
    raises(TariffError, Tariff.parse, "not json")
    raises(TariffError, tariff, tax_bp=19.0)                 # floats never
    raises(TariffError, tariff, tax_bp=True)
    raises(TariffError, tariff, currency="euro")
    raises(TariffError, tariff, session_fee_minor=-1)
    raises(TariffError, tariff, bands=[{"start_min": 60, "kwh_price_milli": 1}])   # not from 0
    raises(TariffError, tariff, bands=[{"start_min": 0, "kwh_price_milli": 1},
                                       {"start_min": 0, "kwh_price_milli": 2}])
    raises(TariffError, tariff, extra=1)
    doc = json.loads(json.dumps(DOC))
    del doc["idle_grace_min"]
    raises(TariffError, Tariff, doc)


def test_bands_follow_local_time_and_boundaries():
    t = tariff()
    assert t.band_at(T0530) == 0
    assert t.band_at(T0600 - 1) == 0 and t.band_at(T0600) == 1
    assert t.next_boundary(T0530) == T0600
    assert t.next_boundary(T0600) == T2100
    assert t.band_at(T2100) == 2 and t.next_boundary(T2100) == T2300
    assert t.band_at(T2300) == 0


def test_energy_split_at_a_sample_on_the_boundary():
    t = tariff()
    s = EnergySplit(t, T0530, 1000000)
    s.sample(T0530 + 600, 1002000)
    s.sample(T0600, 1005000)          # the session layer read the meter at the band start
    s.sample(T0620, 1008000)
    s.sample(T0630, 1008000)          # charging stopped at 06:20
    assert s.segments == [[T0530, 5000], [T0600, 3000]]
    assert s.energy() == 8000 and s.charge_end == T0620
    # 5 kWh x 0.25 + 3 kWh x 0.39 + 0.50 fee = 2.92; idle 10 min < 30 grace; tax 55.48 -> 55
    assert price(t, s.segments, T0530, s.charge_end, T0630) == (292, 55, 347)


def test_energy_split_proportional_when_samples_straddle_a_boundary():
    t = tariff()
    s = EnergySplit(t, T0530, 0)
    s.sample(T0605, 1000)             # 1800 of 2100 s before 07:00 local: floor(857.14) = 857
    assert s.segments == [[T0530, 857], [T0600, 143]]
    s = EnergySplit(t, T2030, 500)
    s.sample(T2300 + 3600, 10500)     # crosses 22:00 and 00:00 local in one step (3 h 30)
    assert s.segments == [[T2030, 1428], [T2100, 5714], [T2300, 2858]]
    assert sum(x[1] for x in s.segments) == 10000


def test_rounding_half_up_once_then_tax_half_up():
    one = [{"start_min": 0, "kwh_price_milli": 500}]          # 0.5 cent per kWh
    t = tariff(bands=one, session_fee_minor=0, tax_bp=0)
    assert price(t, [[T0530, 1000]], T0530, T0530, T0530) == (1, 0, 1)    # 0.5 -> 1
    assert price(t, [[T0530, 999]], T0530, T0530, T0530) == (0, 0, 0)     # 0.4995 -> 0
    assert price(t, [[T0530, 3000]], T0530, T0530, T0530) == (2, 0, 2)    # 1.5 -> 2
    t = tariff(bands=one, session_fee_minor=50, tax_bp=1900)
    assert price(t, [[T0530, 0]], T0530, T0530, T0530) == (50, 10, 60)    # tax 9.5 -> 10


def test_idle_fee_counts_whole_minutes_after_grace():
    t = tariff()
    seg = [[T0600, 0]]
    end = T0600 + 45 * 60 + 59        # 45 min 59 s idle: 45 whole minutes, 15 after grace
    assert price(t, seg, T0600, T0600, end) == (50 + 150, 38, 238)
    assert price(t, seg, T0600, T0600, T0600 + 30 * 60 + 59) == (50, 10, 60)


def test_segments_must_follow_band_starts():
    t = tariff()
    raises(TariffError, price, t, [[T0530, 100]], T0530, T0530, T0620)   # 07:00 not split
    raises(TariffError, price, t, [[T0530, 1], [T0605, 1]], T0530, T0530, T0620)
    raises(TariffError, price, t, [[T0600, 1]], T0530, T0530, T0620)
    raises(TariffError, price, t, [[T0530, -5]], T0530, T0530, T0530 + 60)
    raises(TariffError, price, t, [[T0530, 5]], T0530, T0530 - 1, T0530 + 60)
    assert check_segments(t, [[T0530, 3], [T0600, 4]], T0530, T0620) == 7
    raises(TariffError, EnergySplit(t, T0530, 100).sample, T0530 + 1, 99)


def test_split_state_survives_a_reboot_mid_session():
    t = tariff()
    a = EnergySplit(t, T0530, 100)
    a.sample(T0530 + 600, 900)
    b = EnergySplit.restore(t, json.loads(json.dumps(a.state())))    # through flash as JSON
    for s in (a, b):
        s.sample(T0605, 2000)
        s.sample(T0620, 2500)
    assert b.segments == a.segments and b.charge_end == a.charge_end and b.energy() == 2400
