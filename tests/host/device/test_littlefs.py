"""The store layer on a real littlefs v2 filesystem (the ESP32's default), in MicroPython:
a full flash refuses new records and keeps every old one; a power cut at any block write of an
atomic replace leaves the old value or the new one."""
from host_tools.devtools import mprun


# The simulated flash chip (up to 128 KiB, plus copies of it for the power-cut replays) lives
# in the MicroPython heap here; on the board it is flash. It gets its own room beside the
# ESP32's 112 KiB.
FLASH_ROOM = 3 * 128 * 1024


def _run(func):
    proc = mprun.run_firmware_test("support.lfs_scenarios", func, {}, heap=mprun.HEAP_32 + FLASH_ROOM)
    assert mprun.passed(proc), proc.stdout[-3000:] + proc.stderr[-2000:]


def test_full_littlefs_refuses_new_records_and_keeps_old_ones():
    _run("full_flash_keeps_every_record")


def test_power_cut_during_atomic_replace_on_littlefs():
    _run("power_cut_during_atomic_write")


def test_power_cut_while_a_published_tariff_is_taken_on_littlefs():
    _run("power_cut_during_tariff_offer")
