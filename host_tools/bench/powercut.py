"""Bench rows: a power cut at every flash write of a whole charging session.

session_power_cut_points    block writes (programs and erases) of littlefs during one whole
                            session (boot, plug in, journal, readings, tariff update, end,
                            three signatures, log commit, outbox put, ack deletion); the
                            power is cut after each of them in turn, on the 32-bit build with
                            the firmware frozen in (host_tools/devtools/mp/powercut.py)
session_power_cut_failures  cut points after which the reboot found the session billed other
                            than once, the log or its checkpoint not verifying, an
                            unacknowledged record missing, or the contactor closed (goal 0)
"""
import json
import re

from host_tools.devtools import build_mpy, mp32, mprun
from host_tools.paths import DEFAULT_BOARD

FLASH_ROOM = 2 * 256 * 1024 + 64 * 1024      # the simulated chip and its starting image


def run():
    build_mpy.build()
    mp32.build()
    proc = mprun.run_firmware_test("powercut", "sweep", {"board": str(DEFAULT_BOARD)},
                                   heap=mprun.HEAP_32 + FLASH_ROOM, timeout=1800)
    m = re.search(r"^POWERCUT (\{.*\})$", proc.stdout, re.M)
    if not m:
        raise RuntimeError("power-cut sweep failed:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-2000:]))
    out = json.loads(m.group(1))
    for k, why in out["failures"]:
        print("power cut after write %d: %s" % (k, why))
    return {"session_power_cut_points": out["tried"],
            "session_power_cut_failures": len(out["failures"])}


if __name__ == "__main__":
    print(run())
