"""The fleet load (host_tools.bench.fleet, `make fleet-load` runs 10,000 chargers) in small: 200
simulated chargers with real keys and real receipts/checkpoints through Mosquitto -> two worker
processes (shared subscription) -> PostgreSQL: every record acknowledged, every receipt stored
exactly once, every newest checkpoint cosigned."""
from host_tools.bench.fleet import fleet_load


def test_200_chargers_all_acknowledged_stored_once_and_cosigned(tmp_path, postgres_server):
    report, checks = fleet_load(str(tmp_path), 200, postgres_server.create_database("fleet200"),
                                workers=2, rate=100, timeout_s=240)
    assert report["chargers"] == 200 and report["records"] == 400
    assert report["unacked"] == 0 and report["bad_acks"] == 0, report
    assert checks == {"lost": 0, "cosigned": 200, "stored": 200}, checks
    assert report["ack_p50_ms"] is not None and report["ack_p99_ms"] >= report["ack_p50_ms"]
