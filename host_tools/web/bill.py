"""A receipt as a person reads it: energy, times, the price by tariff band, idle fee, tax, and
the charging curve; computed from the stored receipt and tariff with the host's own rules
(host_tools.verify.tariff, docs/ledger.md §5), for the dashboard and the demo report."""
import base64
import datetime
import json
from fractions import Fraction

from host_tools.verify import ocmf as ocmf_mod
from host_tools.verify import receipt as receipt_mod
from host_tools.verify import tariff as tariff_mod


def local_time(epoch, offset_min):
    """'YYYY-MM-DD HH:MM' in the charger's local time (UTC + the tariff's fixed offset)."""
    tz = datetime.timezone(datetime.timedelta(minutes=offset_min))
    return datetime.datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")


def offset_label(offset_min):
    sign = "+" if offset_min >= 0 else "-"
    return "UTC%s%02d:%02d" % (sign, abs(offset_min) // 60, abs(offset_min) % 60)


def breakdown(receipt_bytes, tariff_doc):
    """Everything a bill shows, as plain data (money in minor units, energy in Wh)."""
    rc = receipt_mod.parse(receipt_bytes)
    f = rc.fields
    out = {"charger": f["charger"], "seq": f["seq"], "index": f["index"], "begin": f["begin"],
           "end": f["end"], "charge_end": f["charge_end"], "energy_wh": f["energy_wh"],
           "currency": f["currency"], "net": f["net"], "tax": f["tax"], "price": f["price"],
           "reason": f["reason"], "segments": [], "readings": [], "offset_min": 0}
    try:
        rec = ocmf_mod.parse(f["ocmf"])
        out["readings"] = [{"tx": r["tx"], "tm": raw.get("TM", ""),
                            "wh": int(r["wh"]) if r["wh"] % 1 == 0 else float(r["wh"]),
                            "status": r["st"]} for r, raw in zip(rec.readings, _raw_readings(rec))]
        out["meter"] = {k: rec.payload.get(k) for k in ("MV", "MM", "MS")}
        out["identification"] = {k: rec.payload.get(k) for k in ("IT", "ID", "IL")}
    except ocmf_mod.OcmfError as exc:
        out["ocmf_error"] = str(exc)
    if tariff_doc is None:
        return out
    tar = tariff_mod.Tariff(tariff_doc)
    out["offset_min"] = tar.doc["utc_offset_min"]
    out["tariff_hash"] = tar.hash
    ends = [s[0] for s in f["segments"][1:]] + [f["end"]]
    for (t, wh), t_end in zip(f["segments"], ends):
        rate = tar.kwh_price(t)
        out["segments"].append({"start": t, "end": t_end, "wh": wh, "kwh_price_milli": rate,
                                "band_start_min": [s for s, p in tar.bands if s <= _local_minute(tar, t)][-1],
                                "amount_micro": wh * rate})
    idle_min = max(0, (f["end"] - f["charge_end"]) // 60 - tar.doc["idle_grace_min"])
    out["idle"] = {"minutes": idle_min, "grace_min": tar.doc["idle_grace_min"],
                   "min_price_milli": tar.doc["idle_min_price_milli"],
                   "amount_micro": idle_min * tar.doc["idle_min_price_milli"] * 1000}
    out["session_fee_minor"] = tar.doc["session_fee_minor"]
    out["tax_bp"] = tar.doc["tax_bp"]
    try:
        out["recomputed"] = tar.price(f["segments"], f["begin"], f["charge_end"], f["end"])
    except tariff_mod.TariffError as exc:
        out["recomputed_error"] = str(exc)
    return out


def _local_minute(tar, t):
    local = tar._local(t)
    return local.hour * 60 + local.minute


def _raw_readings(rec):
    inherited = {}
    for r in rec.payload["RD"]:
        inherited = dict(inherited, **r)
        yield inherited


def curve_from_receipt(b):
    """A charging curve when no telemetry was kept: cumulative energy at each segment start,
    the charge end and the unplug (average power in between)."""
    t, wh, w = [], [], []
    total = 0
    points = [(s["start"], s["wh"]) for s in b["segments"]]
    if not points:
        return {"t": [b["begin"], b["end"]], "w": [0, 0], "wh": [0, b["energy_wh"]]}
    charge_end = max(b["charge_end"], points[-1][0])
    for i, (start, seg_wh) in enumerate(points):
        stop = points[i + 1][0] if i + 1 < len(points) else charge_end
        avg = seg_wh * 3600 // max(1, stop - start)
        t += [start]
        wh += [total]
        w += [avg]
        total += seg_wh
    t += [charge_end, b["end"]]
    wh += [total, total]
    w += [0, 0]
    return {"t": t, "w": w, "wh": wh}


def curve_from_telemetry(points):
    return {"t": [p["t"] for p in points], "w": [p["w"] for p in points],
            "wh": [p["wh"] for p in points], "price": [p["price"] for p in points]}


def with_band_marks(curve, b):
    """Mark each segment start after the first on the curve: a tariff band begins there."""
    curve["marks"] = [{"t": s["start"], "label": "band %02d:%02d, %s/kWh" % (
        s["band_start_min"] // 60, s["band_start_min"] % 60, money_milli(s["kwh_price_milli"], b["currency"]))}
        for s in b["segments"][1:]]
    return curve


def money_milli(milli, currency):
    return "%d.%03d %s" % (milli // 100000, milli % 100000 // 100, currency)


def money(minor, currency):
    sign = "-" if minor < 0 else ""
    return "%s%d.%02d %s" % (sign, abs(minor) // 100, abs(minor) % 100, currency)


def micro_to_minor_text(micro, currency):
    """An exact amount in 10^-6 minor units, shown to 1/10000 of a minor unit."""
    q = Fraction(micro, 10 ** 6) / 100
    return "%.4f %s" % (float(q), currency)


def fragment_for(bundle) -> str:
    """verify.html#b=<base64url of the bundle JSON>."""
    text = bundle if isinstance(bundle, str) else json.dumps(bundle, separators=(",", ":"))
    return "b=" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
