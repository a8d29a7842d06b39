"""`make demo`'s report: demo-out/report.html, one self-contained file (no network, no server:
the chart library, the styles and every session's data are inlined) with the fleet's sessions,
their charging curves, the bills, and the verdicts of every validator.

    python -m host_tools.web.report LEDGER.sqlite [OTHER.sqlite ...] --out report.html
"""
import argparse
import json
import pathlib
import sys
import time

import jinja2

from host_tools.lightclient import check as lightclient
from host_tools.validator.service import proof_bundle
from host_tools.validator.store import LedgerDB, LedgerError
from host_tools.validator.timeseries import TimeSeries
from host_tools.web import bill

HERE = pathlib.Path(__file__).parent
STATIC = HERE / "static"


def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=jinja2.select_autoescape(["html"]))
    env.filters["money"] = bill.money
    env.filters["tzlabel"] = bill.offset_label
    env.filters["tojson_compact"] = lambda v: json.dumps(v, separators=(",", ":")).replace("</", "<\\/")
    return env


def _inline(path):
    # Nothing inside may close the element that holds it.
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script").replace("</style", "<\\/style")


def build(ledgers, serve_cmd="chargeproof serve --db demo-out/ledger.sqlite"):
    """The report's HTML text; ledgers[0] is the ledger shown, the others are compared with it."""
    dbs = [LedgerDB(str(p)) for p in ledgers]
    names = [pathlib.Path(p).stem for p in ledgers]
    main = dbs[0]
    series = TimeSeries(main.path)
    leaves = [{(r["charger_id"], r["log_index"]): (r["leaf_hash"], r["status"]) for r in db.sessions()} for db in dbs]
    sessions = []
    for row in main.sessions():
        cid, index = row["charger_id"], row["log_index"]
        doc_text = main.tariff(row["tariff_hash"])
        b = bill.breakdown(row["receipt"], json.loads(doc_text) if doc_text else None)
        points = series.telemetry(cid, row["begin_time"], row["end_time"])
        curve = bill.curve_from_telemetry(points) if len(points) >= 2 else bill.curve_from_receipt(b)
        bill.with_band_marks(curve, b)
        verdicts = []
        for name, held in zip(names, leaves):
            mine = held.get((cid, index))
            if mine is None:
                verdicts.append((name, "does not hold this receipt"))
            elif mine[0] != row["leaf_hash"]:
                verdicts.append((name, "holds a DIFFERENT receipt at this index"))
            else:
                verdicts.append((name, mine[1]))
        try:
            bundle = proof_bundle(main, cid, index=index)
            verdict = lightclient.check(json.dumps(bundle), bytes.fromhex(bundle["pubkey"]))
            verdicts.append(("light client", "VALID: " + verdict))
        except LedgerError as exc:
            verdicts.append(("light client", "no proof: %s" % exc))
        except lightclient.Invalid as exc:
            verdicts.append(("light client", "INVALID: %s" % exc))
        sessions.append({"b": b, "curve": curve, "verdicts": verdicts})
    chargers = []
    for c in main.chargers():
        cid = c["charger_id"]
        rows = [r for r in main.sessions(cid)]
        mine = main.leaf_hashes(cid)
        verdicts = []
        for db in dbs[1:]:
            theirs = db.leaf_hashes(cid)
            verdicts.append("agrees (%d receipts)" % len(mine) if theirs == mine else
                            "DISAGREES (%d vs %d receipts)" % (len(mine), len(theirs)))
        chargers.append({"charger_id": cid, "sessions": len(rows), "energy_wh": sum(r["energy_wh"] for r in rows),
                         "price_minor": sum(r["price_minor"] for r in rows),
                         "currency": rows[0]["currency"] if rows else "", "verdicts": verdicts})
    html = _env().get_template("report.html").render(
        sessions=sessions, chargers=chargers, validators=names, peers=names[1:],
        made_at=int(time.time()), serve_cmd=serve_cmd,
        uplot_js=_inline(STATIC / "vendor/uplot/uPlot.iife.min.js"),
        uplot_css=_inline(STATIC / "vendor/uplot/uPlot.min.css"),
        style_css=_inline(STATIC / "style.css"), dashboard_js=_inline(STATIC / "dashboard.js"))
    series.close()
    for db in dbs:
        db.close()
    return html


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ledgers", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    pathlib.Path(args.out).write_text(build(args.ledgers), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
