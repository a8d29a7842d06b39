# The boot forgets the modules only it needs (app.forget, app.BOOT_ONLY: docs/firmware.md,
# "Heap"): gone from sys.modules and from their package, and freed, since the charger keeps no
# function of theirs (the meter's read plan is data copied out of drivers.meters). Runs on both
# interpreters; the freed bytes are checked on MicroPython only (gc.mem_alloc).
import gc
import sys

import app
from drivers.meter import Meter, ReadPlan, UnknownMeterModel


class _Master:
    idle = None


def _alloc():
    gc.collect()
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0


def test_forget_drops_a_module_from_sys_modules_and_its_package():
    import drivers
    meter = Meter(_Master(), "SDM630", 1)   # imports drivers.meters for its plan
    assert "drivers.meters" in sys.modules and hasattr(drivers, "meters")
    before = _alloc()
    app.forget("drivers.meters", "app.no_such_module")
    assert "drivers.meters" not in sys.modules
    assert not hasattr(drivers, "meters")
    if hasattr(gc, "mem_alloc"):            # its maps and functions freed: over 1 KB
        assert before - _alloc() > 1024, before - _alloc()
    # The meter still reads by its plan, which is data (no class of the forgotten module).
    assert isinstance(meter.plan, ReadPlan) and len(meter.plan.txns) == 1
    assert meter.plan.phases == 3 and meter.model == "SDM630"
    # Imported again on demand (another meter model at a later boot); an unknown model is
    # still the one exception class callers catch (it lives in drivers.meter).
    assert Meter(_Master(), "SDM120", 1).plan.phases == 1
    try:
        Meter(_Master(), "SDM999", 1)
        raise AssertionError("an unknown model was accepted")
    except UnknownMeterModel:
        pass


def test_boot_only_lists_the_boot_modules():
    assert "app.config" in app.BOOT_ONLY and "app.board" in app.BOOT_ONLY
    assert "drivers.meters" in app.BOOT_ONLY
    assert "app.charger_app" not in app.BOOT_ONLY
