"""The worker's signature processes (host_tools.validator.verifypool): verdicts in order, a forged
signature refused through them, and a process killed mid-batch is no verdict: its chunks are
checked in the worker (pool_errors counted) and a new process takes the next batch."""
import os
import signal

from host_tools.sim.charger import SimCharger
from host_tools.validator.verifypool import VerifyPool
from host_tools.validator.workers import Worker
from host_tools.verify import formats
from host_tools.validator import checks


def _fleet(tmp_path, sessions):
    c = SimCharger(str(tmp_path / "cp"), "CP-0001", seed=3)
    receipts = [c.charge(energy_wh=2000 + n, duration_s=900)[0] for n in range(sessions)]
    return c, receipts


def _triples(c, receipts):
    out = []
    for topic, payload in receipts:
        rc = checks.parse_receipt(payload, formats.route(topic)[0])
        out += [(c.pubkey_der(), rc["signed"], rc["signature"]), (c.pubkey_der(), rc["ocmf_signed"], rc["ocmf_signature"])]
    return out


def test_verdicts_come_back_in_order_and_a_forgery_is_false(tmp_path):
    c, receipts = _fleet(tmp_path, 3)
    triples = _triples(c, receipts)
    forged = [(p, m + b" ", s) for p, m, s in triples[:2]]
    pool = VerifyPool(2)
    try:
        tickets = [pool.submit(triples[:3]), pool.submit(forged), pool.submit(triples[3:])]
        assert pool.result(tickets[2]) == [True] * 3          # asked out of order
        assert pool.result(tickets[1]) == [False, False]
        assert pool.result(tickets[0]) == [True] * 3
    finally:
        pool.close()


def test_a_killed_verify_process_is_no_verdict_and_is_replaced(tmp_path):
    c, receipts = _fleet(tmp_path, 6)
    w = Worker(str(tmp_path / "ledger.sqlite"), "val-1", tariffs=[c.tariff_json()], clock=lambda: c.now + 5,
               verify_procs=1)
    try:
        w.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
        results, _ = w.process_batch(receipts[:2])
        assert [r.status for r in results] == ["accepted", "accepted"]
        (pid,) = w._pool.pids()
        os.kill(pid, signal.SIGKILL)
        results, _ = w.process_batch(receipts[2:4])       # its answers never come: checked here
        assert [r.status for r in results] == ["accepted", "accepted"]
        assert w.counts.get("pool_errors", 0) >= 1
        results, _ = w.process_batch(receipts[4:])         # a new process
        assert [r.status for r in results] == ["accepted", "accepted"]
        assert w._pool.pids() and w._pool.pids() != [pid]
        assert len(w.db.sessions()) == 6
    finally:
        w.close()


def test_a_forged_receipt_is_refused_through_the_pool(tmp_path):
    c, receipts = _fleet(tmp_path, 2)
    topic, payload = receipts[1]
    body, _, sig = payload.rpartition(b"|")
    forged = body.replace(b'"reason":"', b'"reason":"X') + b"|" + sig
    w = Worker(str(tmp_path / "ledger.sqlite"), "val-1", tariffs=[c.tariff_json()], clock=lambda: c.now + 5,
               verify_procs=1)
    try:
        w.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
        results, _ = w.process_batch([receipts[0], (topic, forged)])
        assert [r.status for r in results] == ["accepted", "rejected"]
        assert results[1].reason == "bad-signature" and results[1].ack is None
        assert w.counts["sig_verifications"] >= 4          # went through the pool
    finally:
        w.close()
