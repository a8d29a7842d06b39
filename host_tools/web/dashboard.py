"""The operator's dashboard (Flask blueprint): fleet overview, live sessions, session history
with filters and CSV export, one session's page, and the evidence page. Read-only over the
validator's ledger (host_tools.validator.store) and its time series (timeseries.py).

Pages are rendered on the server (Jinja2); numbers and times are formatted in the browser
(static/dashboard.js: the reader's locale, the charger's local time = UTC + its tariff's offset);
charts are uPlot, vendored under static/vendor/uplot (MIT, LICENSE beside it)."""
import csv
import hmac
import io
import json
import time

import segno
from flask import (Blueprint, Response, abort, current_app, jsonify, redirect, render_template,
                   request, url_for)

from host_tools.lightclient import check as lightclient
from host_tools.validator.service import proof_bundle
from host_tools.validator.store import LedgerError, open_ledger
from host_tools.validator.timeseries import TimeSeries
from host_tools.web import bill

pages = Blueprint("dashboard", __name__, template_folder="templates")
LIVE_WINDOW_S = 120          # a charger whose telemetry arrived this recently is charging now
COOKIE = "chargeproof_operator"


def _ctx():
    return current_app.extensions["chargeproof.dashboard"]


class Dashboard:
    def __init__(self, proofs, operator_key=None, peers=()):
        self.proofs = proofs
        self.db = proofs.db
        path = getattr(self.db, "path", None)       # curves from SQLite ledgers' time series
        self.series = TimeSeries(path) if path else _NoSeries()
        self.operator_key = operator_key
        self.peers = [open_ledger(p) for p in peers]
        self.peer_names = [str(p) for p in peers]

    def tariff_doc(self, tariff_hash):
        text = self.db.tariff(tariff_hash)
        return json.loads(text) if text else None

    def offset_of(self, charger_id):
        last = self.db.last_receipt(charger_id, any_meter=True)
        doc = self.tariff_doc(last["tariff_hash"]) if last else None
        return doc["utc_offset_min"] if doc else 0

    def agreement(self, charger_id):
        """How each peer validator's copy of this charger's log compares with ours."""
        if not self.peers:
            return "no peer ledger given"
        mine = self.db.leaf_hashes(charger_id)
        verdicts = []
        for name, peer in zip(self.peer_names, self.peers):
            theirs = peer.leaf_hashes(charger_id)
            n = min(len(mine), len(theirs))
            if mine[:n] != theirs[:n]:
                verdicts.append("DISAGREES")
            elif len(mine) == len(theirs):
                verdicts.append("agrees (%d of %d)" % (n, len(mine)))
            else:
                verdicts.append("agrees on %d, %s behind" % (n, "peer" if len(theirs) < len(mine) else "we are"))
        return "; ".join(verdicts)

    def fleet(self):
        health = self.series.latest_health()
        seen = self.series.last_seen()
        rows = []
        for c in self.db.chargers():
            cid = c["charger_id"]
            h = health.get(cid, {})
            rows.append({"charger_id": cid, "state": h.get("state"), "fault": h.get("fault"),
                         "last_seen": seen.get(cid), "heap_min": h.get("heap_min"),
                         "outbox_pending": h.get("outbox_pending"), "log_size": h.get("log_size"),
                         "receipts": c["receipts"], "checkpoint_size": c["checkpoint_size"],
                         "agreement": self.agreement(cid), "offset_min": self.offset_of(cid),
                         "key_id": c["key_id_hex"]})
        return rows

    def sessions(self, charger=None, status=None, since=None, until=None):
        out = []
        for r in self.db.sessions(charger or None):
            if status and r["status"] != status:
                continue
            if since is not None and r["begin_time"] < since:
                continue
            if until is not None and r["begin_time"] > until:
                continue
            out.append(r)
        return out

    def session(self, charger_id, index):
        row = self.db.receipt_at(charger_id, index)
        if row is None:
            return None
        doc = self.tariff_doc(row["tariff_hash"])
        b = bill.breakdown(row["receipt"], doc)
        points = self.series.telemetry(charger_id, row["begin_time"], row["end_time"])
        curve = bill.curve_from_telemetry(points) if len(points) >= 2 else bill.curve_from_receipt(b)
        curve["source"] = "telemetry" if len(points) >= 2 else "receipt"
        bill.with_band_marks(curve, b)
        try:
            bundle = proof_bundle(self.db, charger_id, index=index, tree=self.proofs.trees.get(charger_id))
        except LedgerError as exc:
            bundle, check = None, "no proof yet: %s" % exc
        else:
            try:
                check = "VALID: " + lightclient.check(json.dumps(bundle), bytes.fromhex(bundle["pubkey"]))
            except lightclient.Invalid as exc:
                check = "INVALID: %s" % exc
        return {"row": row, "bill": b, "curve": curve, "bundle": bundle, "check": check,
                "token": self.proofs.tokens.token(charger_id, row["leaf_hash"])}


class _NoSeries:
    """No time series (a PostgreSQL ledger): no live values; curves come from receipts."""

    def telemetry(self, *args, **kw):
        return []

    def recent_telemetry(self, *args, **kw):
        return {}

    def latest_health(self):
        return {}

    def last_seen(self):
        return {}


def _parse_day(text, end=False):
    if not text:
        return None
    t = time.strptime(text, "%Y-%m-%d")
    return int(time.mktime(t) - time.timezone) + (86399 if end else 0)


@pages.before_request
def _operator_only():
    ctx = _ctx()
    if ctx.operator_key is None or request.endpoint == "dashboard.login":
        return None
    if hmac.compare_digest(request.cookies.get(COOKIE, ""), ctx.operator_key):
        return None
    return render_template("login.html"), 403


@pages.get("/login")
def login():
    ctx = _ctx()
    key = request.args.get("key", "")
    if ctx.operator_key is None or not hmac.compare_digest(key, ctx.operator_key):
        return render_template("login.html", failed=bool(key)), 403
    resp = redirect(url_for("dashboard.fleet"))
    resp.set_cookie(COOKIE, key, httponly=True, samesite="Strict")
    return resp


@pages.get("/")
def fleet():
    return render_template("fleet.html", rows=_ctx().fleet(), page="fleet")


@pages.get("/live")
def live():
    return render_template("live.html", page="live")


@pages.get("/api/live")
def api_live():
    ctx = _ctx()
    now = time.time()
    recent = ctx.series.recent_telemetry(now - LIVE_WINDOW_S)
    health = ctx.series.latest_health()
    chargers = {}
    for cid, points in recent.items():
        points = current_session(points)
        chargers[cid] = {"curve": bill.curve_from_telemetry(points), "offset_min": ctx.offset_of(cid),
                         "state": health.get(cid, {}).get("state"),
                         "currency": _currency(ctx, cid)}
    return jsonify({"now": now, "chargers": chargers})


def current_session(points):
    """The trailing run of telemetry of one session: a session's energy only rises, so a drop
    (or a gap of more than an hour of charger time) starts the next one."""
    start = 0
    for i in range(1, len(points)):
        if points[i]["wh"] < points[i - 1]["wh"] or points[i]["t"] - points[i - 1]["t"] > 3600:
            start = i
    return points[start:]


def _currency(ctx, cid):
    last = ctx.db.last_receipt(cid, any_meter=True)
    return last["currency"] if last else ""


@pages.get("/sessions")
def sessions():
    ctx = _ctx()
    args = request.args
    try:
        since, until = _parse_day(args.get("from")), _parse_day(args.get("to"), end=True)
    except ValueError:
        abort(400, "dates are YYYY-MM-DD")
    rows = ctx.sessions(args.get("charger"), args.get("status"), since, until)
    if args.get("format") == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["charger", "seq", "log_index", "begin_utc", "end_utc", "energy_wh", "price_minor",
                    "currency", "status", "note", "tariff_hash", "transaction_id"])
        for r in rows:
            w.writerow([r["charger_id"], r["seq"], r["log_index"],
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["begin_time"])),
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["end_time"])),
                        r["energy_wh"], r["price_minor"], r["currency"], r["status"], r["note"],
                        r["tariff_hash"], r["transaction_id"]])
        return Response(buf.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=sessions.csv"})
    offsets = {c["charger_id"]: ctx.offset_of(c["charger_id"]) for c in ctx.db.chargers()}
    return render_template("sessions.html", rows=rows, offsets=offsets, page="sessions",
                           chargers=sorted(offsets), args=args)


@pages.get("/session/<charger_id>/<int:index>")
def session(charger_id, index):
    s = _ctx().session(charger_id, index)
    if s is None:
        abort(404, "no receipt %d of %s" % (index, charger_id))
    verify_url = request.host_url + "verify.html#t=" + s["token"]
    qr = segno.make(verify_url, error="m").svg_inline(scale=3, dark="#111")
    return render_template("session.html", s=s, b=s["bill"], page="sessions", qr=qr,
                           verify_url=verify_url, fragment=bill.fragment_for(s["bundle"]) if s["bundle"] else None)


@pages.get("/session/<charger_id>/<int:index>/bundle.json")
def session_bundle(charger_id, index):
    s = _ctx().session(charger_id, index)
    if s is None or s["bundle"] is None:
        abort(404, "no bundle for receipt %d of %s" % (index, charger_id))
    return Response(json.dumps(s["bundle"], indent=1), mimetype="application/json",
                    headers={"Content-Disposition": "attachment; filename=receipt-%s-%d.json"
                             % (charger_id, s["row"]["seq"])})


@pages.get("/evidence")
def evidence():
    ctx = _ctx()
    rejections = ctx.db.rejections()
    for r in rejections:
        r["raw_size"] = len(r.get("raw") or b"")
    return render_template("evidence.html", rejections=rejections, evidence=ctx.db.evidence(),
                           page="evidence")


def install(app, proofs, operator_key=None, peers=()):
    app.extensions["chargeproof.dashboard"] = Dashboard(proofs, operator_key, peers)
    app.jinja_env.filters["money"] = bill.money
    app.jinja_env.filters["local"] = bill.local_time
    app.jinja_env.filters["tzlabel"] = bill.offset_label
    app.jinja_env.filters["tojson_compact"] = lambda v: json.dumps(v, separators=(",", ":"))
    app.register_blueprint(pages)
