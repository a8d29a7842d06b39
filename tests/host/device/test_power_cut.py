"""A power cut at block writes of a whole charging session on littlefs, in MicroPython (the
32-bit build with the firmware frozen in): after the reboot the session is billed exactly
once, the log and its checkpoint verify, nothing unacknowledged is lost and the contactor is
open (host_tools/devtools/mp/powercut.py). `make bench` (host_tools/bench/powercut.py) tries
every write; here a fixed spread of cut points keeps the suite quick."""
import json
import re

from host_tools.devtools import mprun
from host_tools.paths import DEFAULT_BOARD

# The simulated flash (256 KiB) and the image each replay starts from live in the MicroPython
# heap here; on the board they are flash.
FLASH_ROOM = 2 * 256 * 1024 + 64 * 1024
EVERY = 8          # every 8th block write: the boot, journal, readings, tariff, end, acks


def test_power_cut_at_block_writes_of_a_whole_session():
    proc = mprun.run_firmware_test("powercut", "session_power_cut",
                                   {"board": str(DEFAULT_BOARD), "every": EVERY},
                                   heap=mprun.HEAP_32 + FLASH_ROOM, timeout=600)
    assert mprun.passed(proc), proc.stdout[-4000:] + proc.stderr[-2000:]
    out = json.loads(re.search(r"^POWERCUT (\{.*\})$", proc.stdout, re.M).group(1))
    assert out["writes"] > 30 and out["tried"] >= out["writes"] // EVERY
