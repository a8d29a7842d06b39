"""Device (firmware/session/tariff.py, run in the real MicroPython port) and host
(host_tools/verify/tariff.py, written separately) agree on hash and price for many generated
sessions, including band starts crossed mid-session and midnight in local time."""
import json
import random
import subprocess

import pytest

from host_tools.paths import FIRMWARE, MICROPYTHON
from host_tools.verify import tariff as host
from session import tariff as device

DEVICE_SCRIPT = r"""
import sys, json
from session.tariff import Tariff, EnergySplit, price
while True:
    line = sys.stdin.readline()
    if not line:
        break
    c = json.loads(line)
    t = Tariff.parse(c["tariff"])
    s = EnergySplit(t, c["samples"][0][0], c["samples"][0][1])
    for tm, wh in c["samples"][1:]:
        s.sample(tm, wh)
    print(json.dumps([t.hash, s.segments, s.charge_end,
                      list(price(t, s.segments, c["samples"][0][0], s.charge_end, c["end"]))]))
"""


def random_tariff(rng):
    starts = sorted(rng.sample(range(1, 1440), rng.randint(0, 5)))
    return {"v": 1, "currency": rng.choice(["EUR", "CHF", "SEK"]),
            "utc_offset_min": rng.choice([-300, 0, 60, 120, 330, 765]),
            "session_fee_minor": rng.choice([0, 35, 99, 150]),
            "bands": [{"start_min": s, "kwh_price_milli": rng.randint(0, 90000)}
                      for s in [0] + starts],
            "idle_min_price_milli": rng.choice([0, 1, 5000, 12345]),
            "idle_grace_min": rng.choice([0, 15, 60]),
            "tax_bp": rng.choice([0, 700, 1900, 2500, 7])}


def random_session(rng, doc):
    t = 1767225600 + rng.randint(0, 400 * 86400)     # 2026 and into 2027
    wh = rng.randint(0, 10 ** 8)
    samples = [[t, wh]]
    tar = device.Tariff(doc)
    for _ in range(rng.randint(0, 40)):
        if rng.random() < 0.3:
            t = tar.next_boundary(t)                   # a reading exactly at a band start
        else:
            t += rng.choice([1, 10, 59, 600, 3600, 5 * 3600, 20 * 3600])
        wh += rng.choice([0, 0, 1, 7, 333, 2500, 11000])
        samples.append([t, wh])
    end = t + rng.choice([0, 0, 60, 1799, 1800, 3601, 9000])
    samples.append([end, wh])
    return {"tariff": json.dumps(doc), "samples": samples, "end": end}


@pytest.fixture(scope="module")
def cases():
    rng = random.Random(9162)
    out = []
    for _ in range(400):
        doc = random_tariff(rng)
        out.append(random_session(rng, doc))
    return out


def test_micropython_device_and_host_agree(cases):
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=196608", "-c", DEVICE_SCRIPT],
                          input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True, text=True, timeout=300,
                          env={"MICROPYPATH": str(FIRMWARE)})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(cases)
    crossed = 0
    for case, (thash, segments, charge_end, dev_price) in zip(cases, results):
        doc = json.loads(case["tariff"])
        t = host.Tariff(doc)
        begin, end = case["samples"][0][0], case["end"]
        assert thash == t.hash
        assert sum(s[1] for s in segments) == case["samples"][-1][1] - case["samples"][0][1]
        assert tuple(dev_price) == t.price(segments, begin, charge_end, end), case
        crossed += len(segments) > 1
    assert crossed > 100          # the generator really exercises band crossings


def test_host_rejects_segments_that_skip_a_band_start(cases):
    for case in cases[:100]:
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


def test_canonical_forms_are_byte_identical(cases):
    for case in cases:
        doc = json.loads(case["tariff"])
        assert device.canonical(doc) == host.canonical(doc)


def test_both_sides_refuse_the_same_bad_documents():
    good = random_tariff(random.Random(1))
    bad = [dict(good, tax_bp=10001), dict(good, tax_bp=19.0), dict(good, tax_bp=True),
           dict(good, v=2), dict(good, currency="eur"), dict(good, utc_offset_min=900),
           dict(good, idle_grace_min=-1), dict(good, session_fee_minor="50"),
           dict(good, bands=[]), dict(good, bands=[{"start_min": 1440, "kwh_price_milli": 1}]),
           dict(good, bands=[{"start_min": 0, "kwh_price_milli": 1, "x": 1}]),
           dict(good, bands=[{"start_min": 0, "kwh_price_milli": 1}, {"start_min": 0, "kwh_price_milli": 2}]),
           dict(good, extra=1), {k: v for k, v in good.items() if k != "tax_bp"}]
    device.Tariff(good), host.Tariff(good)
    for doc in bad:
        with pytest.raises(device.TariffError):
            device.Tariff(doc)
        with pytest.raises(host.TariffError):
            host.Tariff(doc)
