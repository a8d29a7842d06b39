# Every firmware module imports on this interpreter (on MicroPython: frozen into the 32-bit
# image, in the ESP32's heap budget), and every module's imports respect the layering. Left out
# of the import run: the ESP32 hal (needs `machine`; tests/firmware/hal/test_hal_esp32.py runs
# it on a stand-in) and the entry scripts, which run when imported.
import os

NOT_HERE = ("hal.esp32", "hal.esp32_uart", "hal.esp32_spi", "app.main", "app.sim_main",
            "app.sim_boot")
LAYERS = ("hal", "store", "drivers", "ledger", "session", "uplink", "app")

# What each layer may import besides itself (the README's dependency arrows are this table).
# Everything else in the firmware, upward or sideways, is refused. Session takes the ledger as
# an object (charger_app wires it), so it does not import it.
MAY_IMPORT = {
    "hal": (),
    "store": (),
    "drivers": ("hal",),
    "ledger": ("store",),
    "session": ("drivers", "store"),
    "uplink": ("ledger", "store", "hal"),
    "app": ("hal", "store", "drivers", "ledger", "session", "uplink"),
}
# Only these may import machine (the ESP32 port's hardware module).
MACHINE = ("hal/esp32.py", "hal/esp32_uart.py", "hal/esp32_spi.py")


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


def imported_modules(lines):
    """The modules source lines import (top-level and inside functions, `import a.b as c`,
    `from a.b import c`, continued lines included), as dotted names."""
    out = []
    for line in lines:
        words = line.strip().split()
        if len(words) >= 2 and words[0] == "import":
            for part in " ".join(words[1:]).split(","):
                name = part.strip().split(" ")[0]
                if name:
                    out.append(name)
        elif len(words) >= 4 and words[0] == "from" and words[2] == "import":
            out.append(words[1])
    return out


def layering_violations(root):
    """["layer/file.py imports x.y", ...] for every import the layering does not allow."""
    bad = []
    for layer in LAYERS:
        for name in sorted(os.listdir(root + "/" + layer)):
            if not name.endswith(".py"):
                continue
            rel = layer + "/" + name
            with open(root + "/" + rel) as f:       # line by line: p256_table.py is big
                mods = imported_modules(f)
            for mod in mods:
                top = mod.split(".")[0]
                if top == "machine" and rel not in MACHINE:
                    bad.append(rel + " imports machine")
                elif top in LAYERS and top != layer and top not in MAY_IMPORT[layer]:
                    bad.append(rel + " imports " + mod)
    return bad


def test_the_import_parser_sees_every_form():
    text = ("import os\nimport a.b as c, d\nfrom x.y import (z,\n    w)\n"
            "    from app import board  # inside a function\n# import nothing\n")
    assert imported_modules(text.split("\n")) == ["os", "a.b", "d", "x.y", "app"]


def test_imports_point_down_only(firmware_src):
    assert len(os.listdir(firmware_src + "/session")) > 10
    assert layering_violations(firmware_src) == []
