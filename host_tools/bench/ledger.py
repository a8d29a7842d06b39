"""Ledger benchmarks: the device's receipt path in the MicroPython unix port, and the host's
proofs and light client on CPython, measured in this run.

Rows:
  ledger_append_session_ms_micropython   median ChargerLog.append_session: OCMF + receipt +
                                         checkpoint signatures, Merkle append, atomic commit
                                         (on tmpfs; 192 KiB heap)
  ledger_append_min_heap_kib_micropython smallest -X heapsize (KiB) in which a fresh MicroPython
                                         compiles the .py sources, loads key and log and
                                         records two sessions; _mpy: the same from .mpy files
                                         (as deployed; 64-bit objects, ~1.75x an ESP32's need)
  merkle_frontier_append_us_micropython  mean Frontier.append over 5000 leaves (amortised merges)
  tariff_price_us_micropython            mean session/tariff.price for a 2-segment session
  receipt_bytes / ocmf_base64_chars / checkpoint_bytes   sizes of one real receipt
  frontier_bytes_at_1M_leaves            the flash record the charger keeps for a 10^6-leaf log
  proof_inclusion_us_100k / proof_consistency_us_100k    host proof generation + RFC 9162
                                         verification in a 100 000-leaf tree (median)
  lightclient_check_ms                   full offline check of one receipt bundle (CPython)
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from host_tools import paths
from host_tools.paths import MP_SIDE, ROOT
MICROPYTHON = paths.MICROPYTHON
HEAPSIZE = 192 * 1024
paths.firmware_on_path()
if str(MP_SIDE) not in sys.path:          # ledgerdata: the session data both benches and tests use
    sys.path.insert(0, str(MP_SIDE))

_MP = r"""
import sys, time, json, os
from ledger.keys import KeyStore
from ledger.log import ChargerLog
from ledger.merkle import Frontier
from session.tariff import Tariff, price
from ledgerdata import session, FixedClock, T_BEGIN
d = sys.argv[1]
n = int(sys.argv[2])
key = KeyStore(d + "/key")
log = ChargerLog(d + "/log", key, "CP-0001", "chargeproof.example/CP-0001", FixedClock())
app = []
for i in range(n):
    s = session()
    a = time.ticks_us()
    rec, cp, idx = log.append_session(s)
    app.append(time.ticks_diff(time.ticks_us(), a))
out = {"append": app, "receipt": len(rec), "checkpoint": len(cp)}
if n > 2:
    f = Frontier()
    a = time.ticks_us()
    for i in range(5000):
        f.append(b"leaf")
    out["frontier"] = time.ticks_diff(time.ticks_us(), a) / 5000
    t = Tariff({"v": 1, "currency": "EUR", "utc_offset_min": 60, "session_fee_minor": 50,
                "bands": [{"start_min": 0, "kwh_price_milli": 25000}, {"start_min": 420, "kwh_price_milli": 39000},
                          {"start_min": 1320, "kwh_price_milli": 29000}],
                "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900})
    segs = [[T_BEGIN, 5000], [T_BEGIN + 1800, 6111]]
    a = time.ticks_us()
    for i in range(1000):
        price(t, segs, T_BEGIN, T_BEGIN + 4800, T_BEGIN + 5400)
    out["price"] = time.ticks_diff(time.ticks_us(), a) / 1000
print(json.dumps(out))
"""


def _compile_mpy(out):
    """ledger, store, session/tariff and the test session data as .mpy, as deployed."""
    fw = ROOT / "firmware"
    pairs = [(p, "%s/%s" % (pkg, p.stem)) for pkg in ("ledger", "store") for p in (fw / pkg).glob("*.py")]
    pairs += [(fw / "session" / "tariff.py", "session/tariff"),
              (MP_SIDE / "ledgerdata.py", "ledgerdata")]
    for src, name in pairs:
        dst = pathlib.Path(out) / (name + ".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([paths.MPY_CROSS, "-o", str(dst), str(src)], check=True)
    return out


def _mp(heap, n, d, path=None):
    env = dict(os.environ, MICROPYPATH=path or os.pathsep.join(
        [str(ROOT / "firmware"), str(MP_SIDE)]))
    return subprocess.run([MICROPYTHON, "-X", "heapsize=%d" % heap, "-c", _MP, d, str(n)],
                          env=env, capture_output=True, text=True, timeout=600)


def _min_heap(path=None):
    lo, hi = 16, 192          # KiB: fails at lo (assumed), works at hi
    while hi - lo > 2:
        mid = (lo + hi) // 2
        with tempfile.TemporaryDirectory() as d:
            ok = _mp(mid * 1024, 2, d, path).returncode == 0
        if ok:
            hi = mid
        else:
            lo = mid
    return hi


def _median_us(fn, n):
    out = []
    for _ in range(n):
        a = time.perf_counter()
        fn()
        out.append((time.perf_counter() - a) * 1e6)
    return statistics.median(out)


def run():
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        proc = _mp(HEAPSIZE, 30, d)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
        mp = json.loads(proc.stdout)
    rows["ledger_append_session_ms_micropython"] = statistics.median(mp["append"]) / 1000
    rows["merkle_frontier_append_us_micropython"] = mp["frontier"]
    rows["tariff_price_us_micropython"] = mp["price"]
    rows["receipt_bytes"] = mp["receipt"]
    rows["checkpoint_bytes"] = mp["checkpoint"]
    rows["ledger_append_min_heap_kib_micropython"] = _min_heap()
    with tempfile.TemporaryDirectory() as mpy:
        rows["ledger_append_min_heap_kib_micropython_mpy"] = _min_heap(_compile_mpy(mpy))

    from host_tools.lightclient import check as lightclient
    from host_tools.verify import merkle
    from host_tools.verify import receipt as host_receipt
    from ledger import checkpoint as fw_cp
    from ledger import receipt as fw_receipt
    from ledger.keys import KeyStore
    from ledger.log import ChargerLog
    from ledger.merkle import Frontier
    from ledgerdata import FixedClock, session
    import base64

    with tempfile.TemporaryDirectory() as d:
        key = KeyStore(d + "/key", urandom=os.urandom)
        log = ChargerLog(d + "/log", key, "CP-0001", "chargeproof.example/CP-0001", FixedClock())
        recs = [log.append_session(session())[0] for _ in range(5)]
        rec_ocmf = json.loads(fw_receipt.split(recs[2])[0])["ocmf"]
        rows["ocmf_base64_chars"] = len(base64.b64encode(rec_ocmf.encode()))
        tree = merkle.Tree(recs)
        note = fw_cp.build("chargeproof.example/CP-0001", tree.size, tree.root(), 1, key)
        tdoc = {"v": 1, "currency": "EUR", "utc_offset_min": 0, "session_fee_minor": 0,
                "bands": [{"start_min": 0, "kwh_price_milli": 0}], "idle_min_price_milli": 0,
                "idle_grace_min": 0, "tax_bp": 0}
        bundle = host_receipt.make_bundle(recs[2], 2, tree.size, tree.inclusion_proof(2), note, tdoc)
        pub = key.public_key_der()

        def check():
            try:
                lightclient.check(bundle, pub)
            except lightclient.Invalid as exc:      # price differs from this toy tariff: fine,
                if exc.reason != "tariff-hash-mismatch":   # every signature was checked first
                    raise
        rows["lightclient_check_ms"] = _median_us(check, 50) / 1000

    f = Frontier()
    f.size = 10 ** 6
    f.hashes = [bytes(32)] * bin(10 ** 6).count("1")
    rows["frontier_bytes_at_1M_leaves"] = len(f.to_bytes())

    big = merkle.Tree(b"%d" % i for i in range(100000))
    root = big.root()
    idx = iter(range(7, 100000, 997))

    def incl():
        i = next(idx)
        merkle.verify_inclusion(big.leaf(i), i, big.size, big.inclusion_proof(i), root)
    rows["proof_inclusion_us_100k"] = _median_us(incl, 100)
    olds = iter(range(3, 100000, 991))

    def cons():
        m = next(olds)
        merkle.verify_consistency(m, big.size, big.root(m), root, big.consistency_proof(m))
    rows["proof_consistency_us_100k"] = _median_us(cons, 100)
    return rows
