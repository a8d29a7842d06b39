"""The web application without a browser: the operator's key guards the dashboard but not the
proof API or the driver's check; the telemetry time series refuses junk and stays bounded."""
import json

import pytest

from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator
from host_tools.validator.timeseries import TimeSeries
from host_tools.web.app import create_app


@pytest.fixture
def ledger(tmp_path):
    c = SimCharger(tmp_path / "cp", "CP-0007", seed=7)
    v = Validator(str(tmp_path / "l.sqlite"), "val-1", tariffs=[c.tariff_json()], clock=lambda: c.now)
    v.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
    for _ in range(2):
        for t, p in c.charge():
            assert v.process(t, p).status == "accepted"
    v.close()
    return str(tmp_path / "l.sqlite")


def test_operator_key_guards_the_dashboard_only(ledger):
    app = create_app(ledger, operator_key="s3cret-key")
    web = app.test_client()
    for page in ("/", "/sessions", "/sessions?format=csv", "/session/CP-0007/0", "/live", "/api/live", "/evidence"):
        assert web.get(page).status_code == 403, page
    assert web.get("/login?key=wrong").status_code == 403
    token = app.extensions["chargeproof.proofs"].token_for("CP-0007", seq=1)
    assert web.get("/proof/" + token).status_code == 200          # the driver needs no login
    assert web.get("/verify.html").status_code == 200
    assert web.get("/chargers").status_code == 200
    r = web.get("/login?key=s3cret-key")
    assert r.status_code == 302
    assert web.get("/").status_code == 200 and b"CP-0007" in web.get("/").data
    csv_text = web.get("/sessions?format=csv").data.decode()
    assert csv_text.count("\nCP-0007,") == 2


def test_session_page_without_telemetry_draws_the_receipt(ledger):
    web = create_app(ledger).test_client()
    page = web.get("/session/CP-0007/1").data.decode()
    assert "receipt&#39;s tariff segments" in page and "Light client: VALID" in page
    assert web.get("/session/CP-0007/9").status_code == 404
    bundle = json.loads(web.get("/session/CP-0007/1/bundle.json").data)
    assert bundle["index"] == 1 and bundle["pubkey"]


def test_time_series_refuses_junk_and_strangers(ledger):
    ts = TimeSeries(ledger)
    assert ts.record("cp/CP-0007/telemetry", b'{"w":7400,"wh":10,"price":3,"t":1768455000}')
    assert ts.record("cp/CP-0007/health", b'{"state":"charging","fault":null,"heap_min":50000,'
                                          b'"outbox_pending":0,"log_size":2,"uptime_s":60}')
    for topic, payload in [("cp/NOBODY/telemetry", b'{"w":1,"wh":1,"price":1}'),        # not enrolled
                           ("cp/CP-0007/telemetry", b'{"w":1e999999,"wh":1,"price":1}'),
                           ("cp/CP-0007/telemetry", b'{"w":"1","wh":1,"price":1}'),
                           ("cp/CP-0007/telemetry", b'[' * 100000),
                           ("cp/CP-0007/telemetry", b'{"w":1,"wh":1,"price":1,"pad":"%s"}' % (b"x" * 600)),
                           ("cp/CP-0007/health", b'{"state":"%s"}' % (b"x" * 100)),
                           ("cp/CP-0007/status", b'online'), ("cp/CP-0007/telemetry", b'\xff')]:
        assert not ts.record(topic, payload), (topic, payload[:40])
    assert ts.dropped == 8
    assert [p["wh"] for p in ts.telemetry("CP-0007")] == [10]
    assert ts.latest_health()["CP-0007"]["log_size"] == 2


def test_time_series_retention_is_bounded(ledger, monkeypatch):
    from host_tools.validator import timeseries
    monkeypatch.setattr(timeseries, "PRUNE_EVERY", 50)
    now = [1000000.0]
    ts = TimeSeries(ledger, keep_s=3600, max_rows=100, clock=lambda: now[0])
    for i in range(500):
        now[0] += 1
        assert ts.record("cp/CP-0007/telemetry", b'{"w":1,"wh":%d,"price":0,"t":%d}' % (i, i))
    assert len(ts.telemetry("CP-0007")) <= 100 + 50
    now[0] += 7200                                  # two hours later everything is old
    for i in range(50):
        ts.record("cp/CP-0007/telemetry", b'{"w":1,"wh":%d,"price":0,"t":%d}' % (i, 10 ** 6 + i))
    assert [p["t"] for p in ts.telemetry("CP-0007")] == [10 ** 6 + i for i in range(50)]


def test_validator_stores_telemetry_from_the_broker_off_its_network_thread(tmp_path, amqtt_broker):
    """A running validator (amqtt) keeps telemetry and health of enrolled chargers through its
    writer thread; telemetry never reaches process() (no rejection, no evidence)."""
    import time
    import paho.mqtt.client as mqtt
    c = SimCharger(tmp_path / "cp", "CP-0009", seed=9)
    v = Validator(str(tmp_path / "v.sqlite"), "val-1", tariffs=[c.tariff_json()])
    v.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
    v.start("127.0.0.1", amqtt_broker["broker_port"])
    assert v.subscribed.wait(10)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cp-test")
    pub.connect("127.0.0.1", amqtt_broker["broker_port"])
    pub.loop_start()
    ts = TimeSeries(str(tmp_path / "v.sqlite"))
    try:
        deadline = time.monotonic() + 20
        i = 0
        while len(ts.telemetry("CP-0009")) < 5 and time.monotonic() < deadline:
            pub.publish("cp/CP-0009/telemetry", b'{"w":11000,"wh":%d,"price":%d,"t":%d}' % (i * 30, i, 1768455000 + 10 * i))
            pub.publish("cp/CP-0009/health", b'{"state":"charging","fault":null,"heap_min":60000,'
                                             b'"outbox_pending":0,"log_size":0,"uptime_s":%d}' % i)
            pub.publish("cp/STRANGER/telemetry", b'{"w":1,"wh":1,"price":1}')
            i += 1
            time.sleep(0.1)
        rows = ts.telemetry("CP-0009")
        assert len(rows) >= 5 and [r["t"] for r in rows] == sorted(r["t"] for r in rows)
        assert ts.latest_health()["CP-0009"]["state"] == "charging"
        assert ts.telemetry("STRANGER") == []
        assert v.db.rejections() == [] and v.db.evidence() == []
    finally:
        pub.loop_stop()
        pub.disconnect()
        v.close()
        ts.close()
