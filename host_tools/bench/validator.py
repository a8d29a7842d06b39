"""Bench rows for the validator (`make bench`, `python -m host_tools.bench validator`):

  validator_receipts_per_s     receipts verified (both signatures, OCMF rules, log position,
                               meter continuity, time, tariff recomputation) and committed to a
                               real SQLite file (WAL, synchronous=FULL) by one worker
                               (host_tools.validator.workers.Worker.process_batch): batches of
                               BATCH receipts in one transaction (group commit: one fsync per
                               batch; acks wait for it), signatures checked by VERIFY_PROCS
                               processes in parallel with the store work
  validator_receipts_per_s_unbatched   the same through Validator.process(): one fsync per receipt
  validator_sigs_per_receipt   k: signature verifications one receipt needs, counted while the
                               batch runs (the receipt's own and its OCMF record's)
  validator_verify_limit_pct   validator_receipts_per_s as a percentage of
                               cryptography_verify_per_s / k (the issue's goal: >= 50)
  validator_checkpoints_per_s  checkpoints verified (signature, root, RFC 9162 consistency and
                               inclusion proofs) and committed, same file
  cryptography_verify_per_s    raw ECDSA P-256 verify rate of cryptography (OpenSSL) on the same
                               receipts' signatures, key parsed once
  python_ecdsa_verify_per_s    the same with python-ecdsa (the reference backend)

The receipts come from the firmware's ledger code (host_tools.sim.charger: ChargerLog with a
real KeyStore and the firmware tariff), generated before any timing starts.
"""
import tempfile
import time

from host_tools.verify import sigcheck
from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator
from host_tools.validator.workers import Worker

CHARGERS = 4
SESSIONS = 150          # per charger
BATCH = 128
VERIFY_PROCS = 1


def _make_fleet(tmp):
    chargers = [SimCharger("%s/cp%d" % (tmp, i), "CP-%04d" % i, seed=100 + i) for i in range(CHARGERS)]
    receipts, checkpoints = [], []
    for n in range(SESSIONS):
        for c in chargers:
            (rt, rp), (ct, cp) = c.charge(energy_wh=3000 + 17 * n, duration_s=1800 + 97 * n)
            receipts.append((rt, rp))
            checkpoints.append((ct, cp))
    return chargers, receipts, checkpoints


def _rate(count, seconds):
    return round(count / seconds, 1) if seconds > 0 else 0.0


def run():
    with tempfile.TemporaryDirectory(prefix="bench-validator-") as tmp:
        chargers, receipts, checkpoints = _make_fleet(tmp)
        now = max(c.now for c in chargers) + 5
        v = Validator(tmp + "/ledger.sqlite", "bench", tariffs=[chargers[0].tariff_json()], clock=lambda: now)
        for c in chargers:
            v.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)

        t0 = time.perf_counter()
        for topic, payload in receipts:
            r = v.process(topic, payload)
            if r.status != "accepted":
                raise RuntimeError("bench receipt not accepted: %r" % r)
        t_unbatched = time.perf_counter() - t0

        w = Worker(tmp + "/ledger-batched.sqlite", "bench", tariffs=[chargers[0].tariff_json()],
                   clock=lambda: now, verify_procs=VERIFY_PROCS)
        for c in chargers:
            w.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
        w.process_batch(receipts[:1])                    # pool started, keys parsed, before timing
        before = w.counts.get("sig_verifications", 0)
        t0 = time.perf_counter()
        for i in range(1, len(receipts), BATCH):
            results, _ = w.process_batch(receipts[i:i + BATCH])
            bad = [r for r in results if r.status != "accepted"]
            if bad:
                raise RuntimeError("bench receipt not accepted: %r" % bad[0])
        t_receipts = time.perf_counter() - t0
        verifications = w.counts.get("sig_verifications", 0) - before
        w.close()

        t0 = time.perf_counter()
        for topic, payload in checkpoints:
            r = v.process(topic, payload)
            if r.status != "accepted":
                raise RuntimeError("bench checkpoint not accepted: %r" % r)
        t_checkpoints = time.perf_counter() - t0
        v.close()

        pub = chargers[0].pubkey_der()
        own = [p for t, p in receipts if t.startswith("cp/%s/" % chargers[0].charger_id)]
        pairs = [tuple(p.rsplit(b"|", 1)) for p in own]
        pairs = [(body, bytes.fromhex(sig.decode())) for body, sig in pairs]
        rows = {}
        for name, fn, rounds in (("cryptography_verify_per_s", sigcheck.verify_fast, 10),
                                 ("python_ecdsa_verify_per_s", sigcheck.verify_reference, 1)):
            fn(pub, pairs[0][0], pairs[0][1])           # key parsed and cached before timing
            t0 = time.perf_counter()
            for _ in range(rounds):
                for body, sig in pairs:
                    if not fn(pub, body, sig):
                        raise RuntimeError("bench signature did not verify")
            rows[name] = _rate(rounds * len(pairs), time.perf_counter() - t0)

    rows["validator_receipts_per_s"] = _rate(len(receipts) - 1, t_receipts)
    rows["validator_receipts_per_s_unbatched"] = _rate(len(receipts), t_unbatched)
    rows["validator_sigs_per_receipt"] = k = round(verifications / (len(receipts) - 1), 2)
    rows["validator_verify_limit_pct"] = round(100.0 * rows["validator_receipts_per_s"]
                                               / (rows["cryptography_verify_per_s"] / k), 1)
    rows["validator_checkpoints_per_s"] = _rate(len(checkpoints), t_checkpoints)
    return rows


if __name__ == "__main__":
    print(run())
