"""Bench rows for the validator (`make bench`, `python -m host_tools.bench validator`):

  validator_receipts_per_s     receipts taken end to end by one worker on SQLite
                               (host_tools.validator.workers.Worker.process_batch on the raw
                               MQTT topic and payload: parse, both signatures, OCMF rules, log
                               position, meter continuity, time, tariff recomputation, stored in
                               a real SQLite file (WAL, synchronous=FULL), ack made): batches of
                               BATCH receipts in one transaction (group commit), signatures
                               checked by VERIFY_PROCS processes (default: one per spare core)
                               while the worker parses and stores; median of ROUNDS runs
  validator_receipts_per_s_no_pool     the same, signatures checked in the worker itself
  validator_receipts_per_s_unbatched   through Validator.process(): one fsync per receipt
  validator_sigs_per_receipt   k: signature verifications one receipt needs, counted while the
                               batch runs (the receipt's own and its OCMF record's)
  validator_verify_limit_pct   validator_receipts_per_s as a percentage of
                               cryptography_verify_per_s / k (the issue's goal: >= 50)
  validator_checkpoints_per_s  checkpoints verified (signature, root, RFC 9162 consistency and
                               inclusion proofs) and committed, same file
  cryptography_verify_per_s    raw ECDSA P-256 verify rate of cryptography (OpenSSL) on the same
                               receipts' signatures, keys parsed once, one process; measured
                               after every batch of the worker runs (interleaved), so both sides
                               of the ratio see the same load; median of the rounds
  python_ecdsa_verify_per_s    the same with python-ecdsa (the reference backend)
  validator_verify_limit_pct_no_pool   the same for the worker without the pool
  validator_us_parse / _signatures / _billing / _store_ack   where a receipt's time goes (one
                               process, CPU microseconds per receipt): parsing (strict JSON of the
                               receipt and its OCMF record), the two P-256 checks, the pure
                               billing checks (receipt vs OCMF, tariff price), and the rest of
                               the no-pool worker's CPU time (log position, sequence/time/meter
                               checks, insert, ack, commit)
  validator_bench_load_1min    the machine's 1-minute load average when the run ended

The receipts come from the firmware's ledger code (host_tools.sim.charger: ChargerLog with a
real KeyStore and the firmware tariff), generated before any timing starts.
"""
import os
import statistics
import tempfile
import time

from host_tools.verify import formats, sigcheck
from host_tools.sim.charger import SimCharger
from host_tools.validator import checks
from host_tools.validator.service import Validator
from host_tools.validator.workers import Worker, default_verify_procs

CHARGERS = 4
SESSIONS = 150          # per charger
BATCH = 128
VERIFY_PROCS = default_verify_procs()
ROUNDS = 3


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


def _signature_pairs(chargers, receipts):
    """Per receipt, its two (key, signed bytes, signature): what a raw verify burst checks."""
    keys = {c.charger_id: c.pubkey_der() for c in chargers}
    out = []
    for topic, payload in receipts:
        cid = formats.route(topic)[0]
        rc = checks.parse_receipt(payload, cid)
        out.append([(keys[cid], rc["signed"], rc["signature"]), (keys[cid], rc["ocmf_signed"], rc["ocmf_signature"])])
    return out


def _worker_run(path, chargers, receipts, sig_pairs, now, verify_procs):
    """One fresh worker on a fresh file. After each of its batches, the same receipts' raw
    signatures are verified in this process (one core, cryptography): the load of a shared
    machine changes by the second, so the two rates are taken interleaved, batch by batch.
    Returns (receipts/s, raw verify/s, signature verifications per receipt, worker CPU us per
    receipt)."""
    w = Worker(path, "bench", tariffs=[chargers[0].tariff_json()], clock=lambda: now,
               verify_procs=verify_procs)
    for c in chargers:
        w.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
    w.process_batch(receipts[:1])                    # pool started, keys parsed, before timing
    before = w.counts.get("sig_verifications", 0)
    t_batches = t_verify = cpu = 0.0
    verified = 0
    for i in range(1, len(receipts), BATCH):
        t0, c0 = time.perf_counter(), time.process_time()
        results, _ = w.process_batch(receipts[i:i + BATCH])
        t_batches += time.perf_counter() - t0
        cpu += time.process_time() - c0
        bad = [r for r in results if r.status != "accepted"]
        if bad:
            raise RuntimeError("bench receipt not accepted: %r" % bad[0])
        t0 = time.perf_counter()
        for pairs in sig_pairs[i:i + BATCH]:
            for pub, message, sig in pairs:
                if not sigcheck.verify_fast(pub, message, sig):
                    raise RuntimeError("bench signature did not verify")
                verified += 1
        t_verify += time.perf_counter() - t0
    n = len(receipts) - 1
    k = (w.counts.get("sig_verifications", 0) - before) / n
    w.close()
    return _rate(n, t_batches), _rate(verified, t_verify), k, cpu / n * 1e6


def _verify_rate(fn, pub, pairs, rounds):
    fn(pub, pairs[0][0], pairs[0][1])               # key parsed and cached before timing
    t0 = time.perf_counter()
    for _ in range(rounds):
        for body, sig in pairs:
            if not fn(pub, body, sig):
                raise RuntimeError("bench signature did not verify")
    return _rate(rounds * len(pairs), time.perf_counter() - t0)


def _per_receipt_us(fn, items):
    """CPU microseconds per item in this process (CPU time: less disturbed by other load)."""
    t0 = time.process_time()
    for item in items:
        fn(item)
    return round((time.process_time() - t0) / len(items) * 1e6, 1)


def _breakdown(chargers, receipts, tariff_text):
    """Microseconds per receipt of each stage, in this process (no pool)."""
    keys = {c.charger_id: c.pubkey_der() for c in chargers}
    routed = [(formats.route(t)[0], p) for t, p in receipts]
    parsed = [(cid, checks.parse_receipt(p, cid)) for cid, p in routed]
    return {
        "validator_us_parse": _per_receipt_us(lambda cp: checks.parse_receipt(cp[1], cp[0]), routed),
        "validator_us_signatures": _per_receipt_us(
            lambda cr: (sigcheck.verify_fast(keys[cr[0]], cr[1]["signed"], cr[1]["signature"])
                        and sigcheck.verify_fast(keys[cr[0]], cr[1]["ocmf_signed"], cr[1]["ocmf_signature"])),
            parsed),
        "validator_us_billing": _per_receipt_us(
            lambda cr: (formats.receipt_inconsistency(cr[1]), formats.recompute_price(tariff_text, cr[1])),
            parsed),
    }


def run():
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-validator-") as tmp:
        chargers, receipts, checkpoints = _make_fleet(tmp)
        now = max(c.now for c in chargers) + 5
        pub = chargers[0].pubkey_der()
        own = [p for t, p in receipts if t.startswith("cp/%s/" % chargers[0].charger_id)]
        pairs = [tuple(p.rsplit(b"|", 1)) for p in own]
        pairs = [(body, bytes.fromhex(sig.decode())) for body, sig in pairs]

        # Rounds of (worker with the verify pool, worker without), each interleaved batch by
        # batch with raw verify bursts: medians of the rounds.
        sig_pairs = _signature_pairs(chargers, receipts)
        tariff_text = formats.tariff_canonical(chargers[0].tariff_json())[0]
        runs = {"pool": [], "plain": []}
        parts = []                      # per round: the stages, measured right after the no-pool run
        for n in range(ROUNDS):
            for name, procs in (("pool", VERIFY_PROCS), ("plain", 0)):
                runs[name].append(_worker_run("%s/%s-%d.sqlite" % (tmp, name, n), chargers, receipts,
                                              sig_pairs, now, procs))
            stages = _breakdown(chargers, receipts, tariff_text)
            stages["validator_us_store_ack"] = round(runs["plain"][-1][3] - sum(stages.values()), 1)
            parts.append(stages)
        pooled = [r[0] for r in runs["pool"]]
        plain = [r[0] for r in runs["plain"]]
        verify = [r[1] for r in runs["pool"]]
        k = round(statistics.median(r[2] for r in runs["pool"]), 2)
        rows["cryptography_verify_per_s"] = statistics.median(verify)
        rows["validator_receipts_per_s"] = statistics.median(pooled)
        rows["validator_receipts_per_s_no_pool"] = statistics.median(plain)
        rows["validator_sigs_per_receipt"] = k
        # each run against the verify rate measured beside it, then the median
        rows["validator_verify_limit_pct"] = statistics.median(
            round(100.0 * r[0] / (r[1] / k), 1) for r in runs["pool"])
        rows["validator_verify_limit_pct_no_pool"] = statistics.median(
            round(100.0 * r[0] / (r[1] / k), 1) for r in runs["plain"])
        worker_cpu_us = statistics.median(r[3] for r in runs["plain"])
        rows["python_ecdsa_verify_per_s"] = _verify_rate(sigcheck.verify_reference, pub, pairs[:100], 1)

        v = Validator(tmp + "/ledger.sqlite", "bench", tariffs=[chargers[0].tariff_json()], clock=lambda: now)
        for c in chargers:
            v.enroll(c.charger_id, c.pubkey_der(), origin=c.origin)
        t0 = time.perf_counter()
        for topic, payload in receipts:
            r = v.process(topic, payload)
            if r.status != "accepted":
                raise RuntimeError("bench receipt not accepted: %r" % r)
        rows["validator_receipts_per_s_unbatched"] = _rate(len(receipts), time.perf_counter() - t0)
        t0 = time.perf_counter()
        for topic, payload in checkpoints:
            r = v.process(topic, payload)
            if r.status != "accepted":
                raise RuntimeError("bench checkpoint not accepted: %r" % r)
        rows["validator_checkpoints_per_s"] = _rate(len(checkpoints), time.perf_counter() - t0)
        v.close()

        for key in parts[0]:
            rows[key] = statistics.median(p[key] for p in parts)
        end_to_end = worker_cpu_us
    rows["validator_bench_load_1min"] = round(os.getloadavg()[0], 2)
    print("validator: raw verify/s beside each round %s, receipts/s with %d verify process(es) %s, "
          "without %s; CPU per receipt (us, no pool): parse %s + signatures %s + billing %s + "
          "store/ack/rest %s = %.0f; load %s" % (verify, VERIFY_PROCS, pooled, plain, rows["validator_us_parse"],
                       rows["validator_us_signatures"], rows["validator_us_billing"],
                       rows["validator_us_store_ack"], end_to_end, rows["validator_bench_load_1min"]),
          flush=True)
    return rows


if __name__ == "__main__":
    print(run())
