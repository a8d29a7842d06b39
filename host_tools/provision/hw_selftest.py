"""Run the board bring-up self-test (firmware/app/selftest.py) on a connected ESP32 via mpremote.

    python -m host_tools.provision.hw_selftest --port /dev/ttyUSB0 [--board /board.json] [--switch-contactor]

The firmware (with app/selftest.py) and the board file must already be on the board. No EV may
be plugged in; --switch-contactor pulses the coil (contactor unloaded!) to measure pick-up and
drop-out times against the board's settle_ms. Prints one line per check; exit status 1 if any
check fails, 2 if the board gave no result.
"""
import argparse
import json
import shutil
import subprocess
import sys

MARK = "SELFTEST "


def command(port, board_path, switch):
    mpremote = shutil.which("mpremote") or "mpremote"
    code = "from app.selftest import run_on_board; run_on_board(%r, %s)" % (board_path, bool(switch))
    return [mpremote, "connect", port, "exec", code]


def parse(output):
    """The self-test report from the board's output: {"board", "results": [...]}, or None."""
    for line in output.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return None


def render(report):
    lines = ["board %s" % report["board"]]
    for r in report["results"]:
        lines.append("%s  %-40s %s" % ("PASS" if r["ok"] else "FAIL", r["check"], r["detail"]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", required=True)
    ap.add_argument("--board", default="/board.json")
    ap.add_argument("--switch-contactor", action="store_true")
    args = ap.parse_args(argv)
    proc = subprocess.run(command(args.port, args.board, args.switch_contactor),
                          capture_output=True, text=True, timeout=120)
    report = parse(proc.stdout)
    if report is None:
        sys.stderr.write("no self-test result from the board:\n%s%s" % (proc.stdout, proc.stderr))
        return 2
    print(render(report))
    return 0 if all(r["ok"] for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
