"""Version 2 tariffs: the device (firmware/session/tariff.py and tz.py, run in the real MicroPython
port) and the host (host_tools/verify/tariff.py: CPython's zoneinfo evaluates the POSIX rule,
Fraction/Decimal price) agree on hash, segments and price for random sessions (fixed seed)
across daylight-saving changes in both hemispheres and dynamic slot prices."""
import json
import random
import subprocess

import pytest

from host_tools.paths import FIRMWARE, MICROPYTHON
from host_tools.verify import tariff as host
from session import tariff as device

from host.verify.test_tariff_agreement import DEVICE_SCRIPT

RULES = ("CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0", "AEST-10AEDT,M10.1.0,M4.1.0/3",
         "IST-1GMT0,M10.5.0,M3.5.0/1", "<+0530>-5:30")
# Sessions start near the 2026 changes of those zones (and anywhere in the year).
NEAR = (1774746000, 1792890000, 1773558000, 1793599200, 1775404800, 1791475200)


def random_tariff(rng, begin):
    starts = sorted(rng.sample(range(1, 1440), rng.randint(0, 5)))
    doc = {"v": 2, "id": "t%d" % rng.randint(0, 999), "currency": rng.choice(["EUR", "USD", "AUD"]),
           "valid_from": begin - rng.randint(0, 10 ** 6), "tz": rng.choice(RULES),
           "session_fee_minor": rng.choice([0, 35, 150]),
           "bands": [{"start_min": s, "kwh_price_milli": rng.choice([20000, 30000, rng.randint(0, 90000)])}
                     for s in [0] + starts],
           "idle_min_price_milli": rng.choice([0, 1, 5000]), "idle_grace_min": rng.choice([0, 15, 60]),
           "tax_bp": rng.choice([0, 700, 1900, 7])}
    if rng.random() < 0.5:
        slot_s = rng.choice([900, 3600])
        first = (begin // slot_s) * slot_s + rng.randint(-8, 8) * slot_s
        slots, t = [], first
        for _ in range(rng.randint(1, 60)):
            slots.append([t, rng.randint(0, 60000)])
            t += slot_s * rng.choice([1, 1, 1, 2])
        doc.update(slot_s=slot_s, slots=slots)
    if rng.random() < 0.2:
        doc["valid_until"] = begin + 10 ** 6
    return doc


def random_session(rng):
    begin = rng.choice(NEAR) + rng.randint(-6 * 3600, 6 * 3600) if rng.random() < 0.7 \
        else 1767225600 + rng.randint(0, 365 * 86400)
    doc = random_tariff(rng, begin)
    tar = device.Tariff(doc)
    t, wh = begin, rng.randint(0, 10 ** 7)
    samples = [[t, wh]]
    split = device.EnergySplit(tar, t, wh)
    for _ in range(rng.randint(0, 30)):
        if len(split.segments) >= 30:      # the charger closes a session at 40 (segment-limit)
            break
        if rng.random() < 0.3:
            nb = tar.next_boundary(t)
            t = nb if nb < device.NEVER else t + 600       # a reading exactly where the price changes
        else:
            t += rng.choice([1, 59, 600, 900, 3600, 4 * 3600])
        wh += rng.choice([0, 1, 333, 2500, 11000])
        samples.append([t, wh])
        split.sample(t, wh)
    end = t + rng.choice([0, 60, 1800, 3601])
    samples.append([end, wh])
    return {"tariff": json.dumps(doc), "samples": samples, "end": end}


@pytest.fixture(scope="module")
def cases():
    rng = random.Random(20261025)
    return [random_session(rng) for _ in range(250)]


def test_micropython_device_and_host_agree(cases):
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=196608", "-c", DEVICE_SCRIPT],
                          input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True,
                          text=True, timeout=300, env={"MICROPYPATH": str(FIRMWARE)})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(cases)
    across_dst = with_slots = 0
    for case, (thash, segments, charge_end, dev_price) in zip(cases, results):
        doc = json.loads(case["tariff"])
        t = host.Tariff(doc)
        begin, end = case["samples"][0][0], case["end"]
        assert thash == t.hash
        assert sum(s[1] for s in segments) == case["samples"][-1][1] - case["samples"][0][1]
        assert [s[0] for s in segments][1:] == [b for b in t.boundaries(begin, end) if b < end] or \
            [s[0] for s in segments][1:] == t.boundaries(begin, end), case
        assert tuple(dev_price) == t.price(segments, begin, charge_end, end), case
        offsets = {int(t._local(x).utcoffset().total_seconds()) for x in (begin, end)}
        across_dst += len(offsets) > 1 and len(segments) > 1
        with_slots += "slots" in doc and len(segments) > 2
    assert across_dst > 10 and with_slots > 30     # the generator reaches what it is meant to


def test_host_rejects_segments_that_skip_a_price_change(cases):
    checked = 0
    for case in cases:
        doc = json.loads(case["tariff"])
        t = device.Tariff(doc)
        s = device.EnergySplit(t, *case["samples"][0])
        for tm, wh in case["samples"][1:]:
            s.sample(tm, wh)
        if len(s.segments) < 2 or s.segments[1][0] == case["end"]:
            continue
        merged = [[s.segments[0][0], s.segments[0][1] + s.segments[1][1]]] + s.segments[2:]
        with pytest.raises(host.TariffError):
            host.Tariff(doc).price(merged, case["samples"][0][0], s.charge_end, case["end"])
        checked += 1
    assert checked > 50


def test_both_sides_refuse_the_same_bad_documents():
    good = random_tariff(random.Random(3), 1774746000)
    good.pop("valid_until", None)
    bad = [dict(good, tz="CET-1CEST"), dict(good, tz="CET-1CEST,M3.5.0,M13.5.0"), dict(good, tz="X"),
           dict(good, id="a/b"), dict(good, valid_until=good["valid_from"]), dict(good, slots=[[0, 1]]),
           dict(good, slot_s=900), dict(good, slot_s=900, slots=[[0, 1], [899, 1]]),
           dict(good, slot_s=900, slots=[[0, 1], [9 * 86400, 1]]), dict(good, utc_offset_min=60),
           dict(good, valid_from=-5), dict(good, v=3)]
    device.Tariff(good), host.Tariff(good)
    for doc in bad:
        with pytest.raises(device.TariffError):
            device.Tariff(doc)
        with pytest.raises(host.TariffError):
            host.Tariff(doc)
