"""Bench rows for commands under a junk flood (docs/security.md, "Commands under flood").

command_flood_real_commands_executed  of 5 real operator commands sent in the middle of 1,000
                                      well-formed junk commands (valid JSON for the right
                                      charger, DER signatures of random numbers, half behind a
                                      made-up MAC), how many the charger executed. The whole
                                      charger app on the MicroPython unix port (the frozen
                                      32-bit build, 112 KiB heap), a real broker.
command_flood_junk_sig_checks         P-256 verifications the charger made in that run beyond
                                      one per real command (0: no junk reached the check).
command_flood_real_commands_executed_without_cmd_key / ..._junk_sig_checks_without_cmd_key
                                      the same run against a charger provisioned without a
                                      command key (signature-only, the state before the MAC):
                                      what the MAC saves.
command_junk_reject_us_micropython    microseconds to refuse one of the flood's junk commands
                                      (~230 bytes behind a made-up MAC: the MAC is computed and
                                      compared) on the unix port (frozen 32-bit build); an ESP32
                                      is ~150-270x slower for Python code (DESIGN.md), its
                                      SHA-256 runs in hardware.
command_junk_reject_4k_us_micropython the worst case: a 4 KB junk command (both SHA-256 runs
                                      over the whole message; the port's C SHA-256 dominates).
command_junk_sig_check_us_micropython for contrast: the same junk refused by a charger without a
                                      command key (one P-256 verification).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile

from host_tools.devtools import mp32, mprun
from host_tools.provision import operator_cmd as op
from host_tools.sim.attacks import junk_command
from host_tools.sim.cmd_flood import CHARGER, run_flood


_REJECT_BENCH = """
import time
from uplink import commands
v = commands.Verifier(%(path)r, %(spki)r, %(charger)r, lambda: 0, cmd_key="11" * 32)
bare = commands.Verifier(%(path)r + "b", %(spki)r, %(charger)r, lambda: 0)


def per_call(ver, msg, n):
    for _ in range(3):
        try:
            ver.verify(msg)
        except commands.CommandRejected:
            pass
    t = time.ticks_us()
    for _ in range(n):
        try:
            ver.verify(msg)
        except commands.CommandRejected:
            pass
    return time.ticks_diff(time.ticks_us(), t) / n


out = [per_call(v, m, %(reps)d) for m in %(msgs)r]
out.append(per_call(bare, %(msgs)r[0][65:], 20))
print(" ".join(str(x) for x in out), v.sig_checks)
"""


def reject_us(reps: int = 2000) -> dict:
    """Microseconds the MicroPython unix port (the frozen 32-bit build) takes to refuse one
    junk command: a flood's typical one (behind a made-up MAC, so the MAC is computed), the
    worst case (4 KB: both SHA-256 runs over the whole message), and for contrast the same
    typical junk on a charger without a command key (a P-256 verification)."""
    key = op.generate_key()
    rng = random.Random(1)
    msgs = [junk_command(rng, CHARGER, 7, True), junk_command(rng, CHARGER, 8, True, pad=3800)]
    with tempfile.TemporaryDirectory() as tmp:
        code = _REJECT_BENCH % {"path": tmp + "/n", "spki": op.public_spki_hex(key),
                                "charger": CHARGER, "msgs": msgs, "reps": reps}
        _, frozen = mp32.build(log=lambda *a: None)
        proc = subprocess.run([str(frozen), "-X", "heapsize=%d" % mprun.HEAP_32, "-c", code],
                              env=dict(os.environ, MICROPYPATH=".frozen"), capture_output=True,
                              text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("reject bench failed: %s" % proc.stderr)
    typical, worst, sig, checks = proc.stdout.split()
    if int(checks) != 0:
        raise RuntimeError("junk reached the signature check")
    return {"command_junk_reject_us_micropython": round(float(typical), 1),
            "command_junk_reject_4k_us_micropython": round(float(worst), 1),
            "command_junk_sig_check_us_micropython": round(float(sig), 1)}


def _kind() -> str:
    return "mosquitto" if shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto") else "amqtt"


def run() -> dict:
    kind = _kind()
    got = run_flood(kind)
    bare = run_flood(kind, with_cmd_key=False, wall_s=30)
    real_ok = sum(1 for name, _, result in got["executed"] if result == "ok")
    bare_ok = sum(1 for name, _, result in bare["executed"] if result == "ok")
    return {"command_flood_real_commands_executed": real_ok,
            "command_flood_junk_sig_checks": got["sig_checks"] - len(got["executed"]),
            "command_flood_junk_refused": got["junk_cmds"],
            "command_flood_real_commands_executed_without_cmd_key": bare_ok,
            "command_flood_junk_sig_checks_without_cmd_key": bare["sig_checks"] - len(bare["executed"]),
            **reject_us()}


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        print(json.dumps(run_flood(_kind(), with_cmd_key=False), indent=1))
    elif len(sys.argv) > 1 and sys.argv[1] == "reject":
        print(reject_us())
    else:
        print(json.dumps(run_flood(_kind()), indent=1))
