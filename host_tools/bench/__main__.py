"""`make bench`: run every benchmark module, print a table, write bench/results.json.

A benchmark module is host_tools/bench/<topic>.py with a function run() that returns
{"row_name": number, ...}. Rows are figures measured in this run, never constants.
"""
import importlib
import json
import sys
import time

from host_tools.paths import ROOT


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    results = {}
    modules = sorted(p.stem for p in (ROOT / "host_tools" / "bench").glob("*.py")
                     if not p.stem.startswith("_"))
    if argv:
        modules = [m for m in modules if any(a in m for a in argv)]
    for name in modules:
        t0 = time.perf_counter()
        rows = importlib.import_module("host_tools.bench." + name).run()
        print("# %s (%.1f s)" % (name, time.perf_counter() - t0), flush=True)
        results.update(rows)
    width = max([len(k) for k in results] + [10])
    print("%-*s  %s" % (width, "benchmark", "value"))
    for key in sorted(results):
        value = results[key]
        shown = ("%.3f" % value) if isinstance(value, float) else str(value)
        print("%-*s  %s" % (width, key, shown))
    out = ROOT / "bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() and argv else {}
    old.update(results)
    out.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    print("written to %s" % out.relative_to(ROOT))


if __name__ == "__main__":
    main()
