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


def test_the_watchdog_is_fed_around_the_operator_keys_comb(charger_env, app_commands):
    # Building the operator key's comb is the boot's longest step (~2 s on an ESP32): the
    # watchdog, started before the charger is built, is fed just before and just after it,
    # and the build runs under the safety watch (its hook called all along).
    from support.rig import Rig
    from uplink import commands
    order = []
    built = commands.operator_verifier

    def traced(key, idle=None):
        order.append("comb")
        return built(key, idle)
    commands.operator_verifier = traced
    try:
        rig = Rig(charger_env, operator_key=app_commands["operator_spki"],
                  mqtt_host="127.0.0.1", mqtt_port=1)
    finally:
        commands.operator_verifier = built
    try:
        assert rig.hw["watchdog"].feeds == 2 and order == ["comb"]
        assert rig.app.link.verifier.key.pub == commands.load_operator_key(
            app_commands["operator_spki"])
    finally:
        rig.close()
    plain = Rig(charger_env, mqtt_host="127.0.0.1", mqtt_port=1)    # no operator key
    try:
        assert plain.hw["watchdog"].feeds == 0 and plain.app.link.verifier is None
    finally:
        plain.close()
