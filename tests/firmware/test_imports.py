# Every firmware module imports on this interpreter (on MicroPython: frozen into the 32-bit
# image, in the ESP32's heap budget). Left out: the ESP32 hal (needs `machine`; tests/firmware/hal/test_hal_esp32.py
# runs it on a stand-in) and the entry scripts, which run when imported.
import os

NOT_HERE = ("hal.esp32", "hal.esp32_uart", "hal.esp32_spi", "app.main", "app.sim_main")
LAYERS = ("hal", "store", "drivers", "ledger", "session", "uplink", "app")


def _firmware_dir():
    import store
    path = store.__file__
    if not path.startswith("/"):        # frozen into the image: list the source tree instead
        return os.getenv("CP_ROOT") + "/firmware"
    return path[:path.rfind("/store/")]


def _modules():
    root = _firmware_dir()
    for layer in LAYERS:
        for name in sorted(os.listdir(root + "/" + layer)):
            for ext in (".py", ".mpy"):
                if name.endswith(ext) and name != "__init__" + ext:
                    yield layer + "." + name[:-len(ext)]


def _import_all():
    names = sorted(set(_modules()))
    failed = []
    for name in names:
        if name not in NOT_HERE:
            try:
                __import__(name)
            except Exception as exc:    # report every module that cannot import, not the first
                failed.append("%s: %r" % (name, exc))
    return names, failed


# Imported when the test module loads: on MicroPython the code is then loaded before the data
# heap budget is set (host_tools/devtools/mp/mp_run.py), as frozen code would sit in flash.
_NAMES, _FAILED = _import_all()


def test_every_firmware_module_imports():
    assert len(_NAMES) > 30
    assert _FAILED == []
