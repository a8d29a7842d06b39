"""Several worker processes of one validator identity on one PostgreSQL store, fed by a fleet of
simulated chargers through real Mosquitto (MQTT shared subscriptions): in-process ordering with
messages shuffled (parking), and SIGKILLs of random workers at random moments while the fleet
publishes: nothing lost (every record acknowledged, every receipt stored), nothing doubled (one
row per receipt, billed once), every charger's log in order, checkpoints cosigned."""
import random
import threading
import time

import pytest

from host_tools.sim import loadgen
from host_tools.sim.valnet import FleetBroker, ValidatorNetwork
from host_tools.validator.store import open_ledger
from host_tools.validator.workers import Worker
from host_tools.verify import cosignature as cs

SESSIONS = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return loadgen.build_fleet(str(tmp_path_factory.mktemp("fleet")), 24, sessions=SESSIONS, procs=1)


def _assert_complete(db, fleet, cosigner=None):
    """Every charger's whole log, in order, once; its newest checkpoint stored and cosigned."""
    chargers = fleet["chargers"]
    rows = db.sessions()
    assert len(rows) == len(chargers) * SESSIONS
    for c in chargers:
        mine = [r for r in rows if r["charger_id"] == c["charger_id"]]
        assert [r["log_index"] for r in mine] == list(range(SESSIONS))
        assert [r["seq"] for r in mine] == list(range(1, SESSIONS + 1))
        assert {r["status"] for r in mine} == {"accepted"}
        assert db.latest_checkpoint(c["charger_id"])["size"] == SESSIONS
        if cosigner is not None:
            (cosig,) = [x for x in db.cosignatures(c["charger_id"], SESSIONS) if x["cosigner"] == cosigner]
            assert cosig["root"] == db.latest_checkpoint(c["charger_id"])["root"]
    assert sum(t["sessions"] for t in db.totals()) == len(chargers) * SESSIONS
    assert db.parked() == [] and db.evidence() == []


def test_shuffled_messages_in_batches_are_stored_in_log_order(fleet, pg_dsn):
    w = Worker(pg_dsn, "val-1", "w0", cosigner=cs.Cosigner("val-1"), tariffs=[fleet["tariff"]],
               clock=lambda: fleet["now"] + 5, verify_procs=1)
    try:
        for c in fleet["chargers"]:
            w.enroll(c["charger_id"], c["pubkey_der"], origin=c["origin"])
        msgs = [m for c in fleet["chargers"] for m in c["messages"]]
        random.Random(7).shuffle(msgs)
        acked = set()
        for i in range(0, len(msgs), 9):
            results, publish = w.process_batch(msgs[i:i + 9])
            for (topic, payload), r in zip(msgs[i:i + 9], results):
                assert r.status in ("accepted", "parked"), r
            acked |= {t for t, p, retain in publish if "/ack/" in t}
            acked |= {r.ack_topic for r in results if r.ack is not None}
        assert w.counts["parked"] > 0                 # the shuffle did put successors first
        _assert_complete(w.db, fleet, "val-1")
        # a resend of everything is a duplicate each: acked again, stored once
        results, _ = w.process_batch(msgs[:20])
        assert {r.status for r in results} == {"duplicate"}
        _assert_complete(w.db, fleet, "val-1")
    finally:
        w.close()


def test_sigkill_of_random_workers_while_the_fleet_publishes(fleet, pg_dsn, tmp_path):
    (tmp_path / "broker").mkdir()
    broker = FleetBroker(workdir=str(tmp_path / "broker")).start()
    net = ValidatorNetwork(tmp_path / "net", pg_dsn, "val-1", broker.host, broker.port, workers=3)
    try:
        net.prepare(fleet["chargers"], fleet["tariff"])
        net.start()
        load = loadgen.FleetLoad(fleet, broker.host, broker.port, "val-1", rate=20, connections=3,
                                 resend_s=2.0)
        rng = random.Random(2026)

        def killer():
            # while the fleet publishes (~7 s at 20 records/s): kill a random worker at a random
            # moment, restart it a random while later; then bring every worker back
            for _ in range(8):
                time.sleep(rng.uniform(0.2, 1.0))
                i = rng.randrange(net.count)
                net.kill(i)
                time.sleep(rng.uniform(0.0, 0.6))
                net.restart(i)
        t = threading.Thread(target=killer, daemon=True)
        t.start()
        report = load.run(timeout_s=240)
        t.join()
        assert net.kills >= 8
        assert report["unacked"] == 0 and report["acked"] == report["records"], report
        assert report["bad_acks"] == 0
        with open_ledger(pg_dsn) as db:
            _assert_complete(db, fleet, "val-1")
    finally:
        net.stop()
        broker.stop()


def test_a_worker_expires_a_parked_record_into_a_gap_when_its_charger_comes_back(fleet, tmp_path):
    """The engine's parking bound in a worker: a record whose predecessor never came is a
    `gap` (evidence, published) once it has waited park_expire_s and its charger is in a batch."""
    later = [0]
    w = Worker(str(tmp_path / "ledger.sqlite"), "val-1", "w0", tariffs=[fleet["tariff"]],
               clock=lambda: fleet["now"] + 5 + later[0], park_expire_s=300)
    try:
        c = fleet["chargers"][0]
        w.enroll(c["charger_id"], c["pubkey_der"], origin=c["origin"])
        receipts = [m for m in c["messages"] if "/receipt/" in m[0]]
        results, _ = w.process_batch([receipts[0], receipts[2]])
        assert [r.status for r in results] == ["accepted", "parked"]
        later[0] = 299
        results, publish = w.process_batch([receipts[2]])          # a resend, within the bound
        assert [r.status for r in results] == ["parked"] and w.db.evidence() == []
        later[0] = 301
        results, publish = w.process_batch([receipts[2]])          # the charger resends again
        assert [e["kind"] for e in w.db.evidence()] == ["gap"]
        assert [r["reason"] for r in w.db.rejections()] == ["gap"]
        assert any("/evidence/" in t for t, p, retain in publish)
        assert [r.status for r in results] == ["parked"]           # the resend waits anew
        results, publish = w.process_batch([receipts[1]])          # the missing one after all
        assert [r.status for r in results] == ["accepted"]
        assert w.db.log_size(c["charger_id"]) == 3 and w.db.parked() == []
    finally:
        w.close()
