"""A power cut at block writes of an update on littlefs, in MicroPython (the 32-bit build with
the firmware frozen in): the update server's chunk messages are checked, staged, switched and
booted; after a cut at any of those writes the boot selects a complete, signed version, and
resuming from the flash ends in the new one (host_tools/devtools/mp/ota_powercut.py). `make
bench` (host_tools/bench/ota.py, rows ota_lfs_*) tries every write; here a spread keeps the
suite quick."""
from host_tools.bench import ota

EVERY = 13


def test_power_cut_at_block_writes_of_an_update_on_littlefs():
    out = ota.run_lfs(every=EVERY)
    assert out["passed"] and out["failures"] == [], out
    assert out["writes"] > 20 and out["tried"] >= out["writes"] // EVERY
