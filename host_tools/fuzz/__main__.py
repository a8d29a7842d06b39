"""`make fuzz`: every parser that takes bytes from outside, >= 10,000 inputs each.

  python -m host_tools.fuzz [--inputs N] [--seed S] [--only NAME] [--no-write]

Prints one line per parser, writes rows into bench/results.json (fuzz_inputs_<parser>,
fuzz_inputs_per_parser_min, fuzz_failures, fuzz_slowest_ms, fuzz_slowest_parser) and exits 1
if any input raised an exception other than the parser's own error or took longer than
SLOW_MS. A failure prints its input (hex): reproduce with the same --seed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

from host_tools import paths
from host_tools.fuzz import SLOW_MS, device, host, seeds

DEFAULT_INPUTS = 10000


def fuzz(n: int, seed: int, only: str = "") -> List[Dict[str, Any]]:
    work = seeds.workdir()
    try:
        found = seeds.host_seeds(work)
        results = host.run(n, seed, work, found, only) + device.run(n, seed, work, found, only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def rows(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"fuzz_inputs_%s" % r["name"]: r["inputs"] for r in results}
    slowest = max(results, key=lambda r: r["slowest_us"])
    out.update(fuzz_inputs_per_parser_min=min(r["inputs"] for r in results),
               fuzz_failures=sum(r["failures"] for r in results),
               fuzz_slowest_ms=round(slowest["slowest_us"] / 1000, 1),
               fuzz_slowest_parser=slowest["name"])
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=DEFAULT_INPUTS, help="inputs per parser")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--only", default="", help="only parsers whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results.json")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    results = fuzz(args.inputs, args.seed, args.only)
    bad = False
    for r in results:
        slow = r["slowest_us"] / 1000 > SLOW_MS
        bad = bad or slow or r["failures"] > 0
        print("%-26s %6d inputs  %3d failures  slowest %7.1f ms (input %d)%s"
              % (r["name"], r["inputs"], r["failures"], r["slowest_us"] / 1000, r.get("slowest_input", -1),
                 "  SLOW" if slow else ""))
        for n, error, data in r.get("examples", []):
            print("    input %d: %s\n      %s" % (n, error, data))
    table = rows(results)
    print("seed %d, %.0f s" % (args.seed, time.monotonic() - t0))
    if not args.no_write and not args.only:
        out = paths.BENCH_RESULTS
        out.parent.mkdir(exist_ok=True)
        old = json.loads(out.read_text()) if out.exists() else {}
        old.update(table)
        out.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
        print("rows written to %s" % out.relative_to(paths.ROOT))
    return 1 if bad or table["fuzz_inputs_per_parser_min"] < min(args.inputs, DEFAULT_INPUTS) else 0


if __name__ == "__main__":
    sys.exit(main())
