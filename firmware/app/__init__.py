# app: boot, wiring, the main loop, watchdog. Imports every layer below.
import sys


def forget(*names):
    """Drop modules needed only at boot or rarely (board and config parsing, an update's
    apply): their function objects and dicts live in the heap even when the bytecode is
    frozen in flash, so once nothing else refers to them the collector frees them. The
    importer must not keep a module-level reference (import them inside the function)."""
    for name in names:
        sys.modules.pop(name, None)
        pkg, _, attr = name.rpartition(".")
        parent = sys.modules.get(pkg)
        if parent is not None and attr in getattr(parent, "__dict__", {}):
            try:
                delattr(parent, attr)
            except (AttributeError, TypeError):
                pass


# What only the boot needs (board and config parsing, every meter model's register map):
# app/main.py, and the simulations that boot the same way, forget them once the charger is
# built. Measured on the 32-bit build: ~4 KB of heap (README, `app_heap_peak_bytes_32`).
BOOT_ONLY = ("app.board", "app.board_schema", "app.board_check", "app.config", "drivers.meters")
