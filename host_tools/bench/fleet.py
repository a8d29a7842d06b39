"""Bench rows for the validator network on PostgreSQL, and the fleet load (`make fleet-load`,
part of `make bench`; CP_FLEET_CHARGERS=N for a smaller run):

  validator_pg_receipts_per_s_1worker   receipts checked and stored per second by one worker
                                        (Worker.process_batch: group commit, batches of 128) on
                                        a real PostgreSQL server (fsync=off: a throw-away test
                                        server; production keeps fsync on)
  validator_pg_receipts_per_s_2workers  the same with two worker processes on the same store at
                                        once (each takes its own chargers: store contention only)
  fleet_chargers                        simulated chargers driven through Mosquitto -> two worker
                                        processes (shared subscription) -> PostgreSQL
  fleet_receipts_lost                   receipts never acknowledged or not stored exactly once
  fleet_ack_p50_ms / fleet_ack_p99_ms   time from a record's first publish to its ack
  fleet_records_per_s                   acknowledged records (receipts + checkpoints) per second
  fleet_cosigned_checkpoints            chargers whose newest checkpoint the validator cosigned

Every charger has real keys (P-256, host_tools.sim.loadgen.HostKeys), one real session made by
the firmware's ledger code (receipt + checkpoint), and behaves as the firmware's outbox does
(resend until acked). Records go out open-loop at a fixed rate below the measured capacity.
"""
import multiprocessing
import os
import tempfile
import time

from host_tools.sim import loadgen
from host_tools.sim.postgres import PostgresServer
from host_tools.sim.valnet import FleetBroker, ValidatorNetwork
from host_tools.validator.store import open_ledger

FLEET_CHARGERS = int(os.environ.get("CP_FLEET_CHARGERS", "10000"))
PG_CHARGERS = 200
PG_SESSIONS = 5
BATCH = 128


def _receipts(fleet, part=0, parts=1):
    return [m for c in fleet["chargers"][part::parts] for m in c["messages"] if "/receipt/" in m[0]]


def _worker_run(dsn, fleet, part, parts, start, done):
    from host_tools.validator.workers import Worker
    w = Worker(dsn, "bench", "w%d" % part, clock=lambda: fleet["now"] + 5)
    msgs = _receipts(fleet, part, parts)
    start.wait()
    for i in range(0, len(msgs), BATCH):
        results, _ = w.process_batch(msgs[i:i + BATCH])
        bad = [r for r in results if r.status != "accepted"]
        if bad:
            raise RuntimeError("bench receipt not accepted: %r" % bad[0])
    done.put(len(msgs))
    w.close()


def pg_rate(server, fleet, workers):
    """Receipts per second stored by `workers` processes on one fresh database."""
    dsn = server.create_database("bench_pg_%d" % workers)
    net = ValidatorNetwork(tempfile.mkdtemp(prefix="bench-pg-"), dsn, "bench", "127.0.0.1", 0, workers=0,
                           cosign=False)
    net.prepare(fleet["chargers"], fleet["tariff"])
    ctx = multiprocessing.get_context("fork")
    start, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker_run, args=(dsn, fleet, i, workers, start, done)) for i in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1.0)                      # every worker connected and migrated before timing
    t0 = time.perf_counter()
    start.set()
    total = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    return round(total / elapsed, 1)


def fleet_load(workdir, chargers, store_dsn, workers=2, rate=None, timeout_s=1800):
    """Build a fleet, run it through Mosquitto -> workers -> store; returns (report, checks)."""
    t0 = time.perf_counter()
    fleet = loadgen.build_fleet(os.path.join(workdir, "fleet"), chargers, sessions=1, procs=2)
    build_s = time.perf_counter() - t0
    os.makedirs(os.path.join(workdir, "broker"), exist_ok=True)
    broker = FleetBroker(workdir=os.path.join(workdir, "broker")).start()
    net = ValidatorNetwork(os.path.join(workdir, "net"), store_dsn, "val-1", broker.host, broker.port,
                           workers=workers)
    try:
        net.prepare(fleet["chargers"], fleet["tariff"])
        net.start()
        load = loadgen.FleetLoad(fleet, broker.host, broker.port, "val-1", rate=rate or 200,
                                 connections=8, resend_s=30.0)
        report = load.run(timeout_s=timeout_s)
    finally:
        net.stop()
        broker.stop()
    report["build_s"] = round(build_s, 1)
    with open_ledger(store_dsn) as db:
        stored = {}
        for row in db._query("SELECT charger_id, COUNT(*) AS n, MIN(log_index) AS lo, MAX(log_index) AS hi"
                             " FROM receipts GROUP BY charger_id"):
            stored[row["charger_id"]] = (row["n"], row["lo"], row["hi"])
        cosigned = db._query("SELECT COUNT(*) FROM cosignatures c JOIN checkpoints k ON"
                             " k.charger_id=c.charger_id AND k.size=c.size AND k.root=c.root"
                             " WHERE c.cosigner='val-1'").fetchone()[0]
    lost = sum(1 for c in fleet["chargers"] if stored.get(c["charger_id"]) != (1, 0, 0))
    lost += report["unacked"]
    return report, {"lost": lost, "cosigned": cosigned, "stored": sum(v[0] for v in stored.values())}


def run():
    rows = {}
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            small = loadgen.build_fleet(os.path.join(tmp, "pg"), PG_CHARGERS, sessions=PG_SESSIONS, procs=2)
            rows["validator_pg_receipts_per_s_1worker"] = pg_rate(server, small, 1)
            rows["validator_pg_receipts_per_s_2workers"] = pg_rate(server, small, 2)
            # open loop below capacity: a session is two records (receipt, checkpoint)
            rate = max(30.0, 0.5 * rows["validator_pg_receipts_per_s_2workers"])
            report, checks = fleet_load(tmp, FLEET_CHARGERS, server.create_database("fleet"), rate=rate)
    finally:
        server.stop()
    print("fleet report: %r %r" % (report, checks), flush=True)
    rows.update({"fleet_chargers": report["chargers"], "fleet_receipts_lost": checks["lost"],
                 "fleet_ack_p50_ms": report["ack_p50_ms"], "fleet_ack_p99_ms": report["ack_p99_ms"],
                 "fleet_records_per_s": report["records_per_s"],
                 "fleet_cosigned_checkpoints": checks["cosigned"]})
    return rows


if __name__ == "__main__":
    print(run())
