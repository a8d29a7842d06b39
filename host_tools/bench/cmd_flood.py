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
command_junk_reject_us_micropython    microseconds to refuse one junk command (the MAC screen,
                                      4 KB message behind a made-up MAC, the worst case) on the
                                      unix port; an ESP32 is ~150-270x slower (DESIGN.md).
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
msg = %(msg)r
n = %(reps)d
for _ in range(10):
    try:
        v.screen(msg)
    except commands.CommandRejected:
        pass
t = time.ticks_us()
for _ in range(n):
    try:
        v.screen(msg)
    except commands.CommandRejected:
        pass
print(time.ticks_diff(time.ticks_us(), t) / n, v.sig_checks)
"""


def reject_us(reps: int = 2000) -> float:
    """Microseconds the MicroPython unix port takes to refuse a 4 KB junk command behind a
    made-up MAC (the screen's worst case: both SHA-256 runs over the whole message)."""
    key = op.generate_key()
    rng = random.Random(1)
    msg = junk_command(rng, CHARGER, 7, True, pad=3800)
    with tempfile.TemporaryDirectory() as tmp:
        code = _REJECT_BENCH % {"path": tmp + "/n", "spki": op.public_spki_hex(key),
                                "charger": CHARGER, "msg": msg, "reps": reps}
        _, frozen = mp32.build(log=lambda *a: None)
        proc = subprocess.run([str(frozen), "-X", "heapsize=%d" % mprun.HEAP_32, "-c", code],
                              env=dict(os.environ, MICROPYPATH=".frozen"), capture_output=True,
                              text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("reject bench failed: %s" % proc.stderr)
    us, checks = proc.stdout.split()
    if int(checks) != 0:
        raise RuntimeError("junk reached the signature check")
    return round(float(us), 1)


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
            "command_junk_reject_us_micropython": reject_us()}


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        print(json.dumps(run_flood(_kind(), with_cmd_key=False), indent=1))
    elif len(sys.argv) > 1 and sys.argv[1] == "reject":
        print(reject_us())
    else:
        print(json.dumps(run_flood(_kind()), indent=1))
