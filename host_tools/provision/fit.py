"""Does the firmware fit the board in a given deployment mode? Asked of the board itself.

Three ways to put the firmware on a board (a board file declares its own under "firmware"):

  frozen  the firmware is compiled into the MicroPython image (`make esp32-image`, with
          firmware/manifest.py); its bytecode stays in flash, the heap is all data.
  romfs   the firmware is a ROMFS image (`mpremote romfs build` / `deploy`) in a ROM partition
          (MicroPython >= 1.25 built with MICROPY_VFS_ROM and a romfs partition); bytecode is
          executed in place from flash. On a port without a ROM partition (the unix port as a
          virtual board) the image is a file loaded into the heap: the format and the flow are
          the same, the memory saving is not.
  mpy     .mpy files in /lib, imported into the heap: only boards with PSRAM have the room.

The figures: the charger's data needs DATA_NEED_32 bytes of heap on a 32-bit build (the issue's
bound on the whole application, measured with the 32-bit build); objects on a 64-bit port take
OBJECT_RATIO_64 times more. Bytecode imported from .mpy files takes CODE_RATIO times the files'
size on the heap (measured: ~130 KB of heap for ~104 KB of .mpy on the 32-bit build, 177 KB on
the 64-bit unix port).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

MODES = ("frozen", "romfs", "mpy")
DATA_NEED_32 = 72 * 1024
OBJECT_RATIO_64 = 1.5
CODE_RATIO = {32: 1.25, 64: 1.7}
PSRAM_HEAP = 512 * 1024          # a heap this large only comes from PSRAM on an ESP32

# Run on the board: what it has. Printed as one JSON line after a marker.
PROBE = """
import gc, sys, json
gc.collect()
info = {"free": gc.mem_free(), "total": gc.mem_free() + gc.mem_alloc(),
        "bits": 64 if sys.maxsize > 2**31 else 32, "platform": sys.platform,
        "romfs": False, "rom_partition": 0, "frozen": False}
try:
    import vfs
    info["romfs"] = hasattr(vfs, "VfsRom")
    if hasattr(vfs, "rom_ioctl") and vfs.rom_ioctl(1) > 0:
        info["rom_partition"] = len(vfs.rom_ioctl(2, 0))
except ImportError:
    pass
try:
    import app.charger_app as _m
    info["frozen"] = _m.__file__.startswith(".frozen")
except ImportError:
    pass
print("BOARD-INFO " + json.dumps(info))
"""


class DoesNotFit(Exception):
    """The chosen mode cannot work on this board; the message gives the figures."""


@dataclass
class BoardInfo:
    free: int               # free heap after a collection, bytes
    total: int              # whole heap, bytes
    bits: int               # 32 on an ESP32, 64 on the unix port here
    platform: str
    romfs: bool             # vfs.VfsRom exists
    rom_partition: int      # size of ROM partition 0, bytes (0: none)
    frozen: bool            # the image has ChargeProof frozen in

    @classmethod
    def parse(cls, output: str) -> "BoardInfo":
        for line in output.splitlines():
            if line.startswith("BOARD-INFO "):
                d = json.loads(line[len("BOARD-INFO "):])
                return cls(**d)
        raise DoesNotFit("the board did not answer the probe:\n" + output)

    @property
    def psram(self) -> bool:
        return self.total >= PSRAM_HEAP

    def data_need(self) -> int:
        return int(DATA_NEED_32 * (OBJECT_RATIO_64 if self.bits == 64 else 1))


def check(mode: str, info: BoardInfo, mpy_bytes: int, romfs_bytes: int = 0) -> str:
    """A one-line account of why mode fits; raises DoesNotFit with the figures if it does not."""
    if mode not in MODES:
        raise DoesNotFit("unknown mode %r (one of %s)" % (mode, ", ".join(MODES)))
    data = info.data_need()
    kib = lambda n: "%.1f KiB" % (n / 1024)   # noqa: E731
    if mode == "frozen":
        if not info.frozen:
            raise DoesNotFit("this board's MicroPython image has no frozen ChargeProof firmware "
                             "(build one with `make esp32-image` and flash it), or choose "
                             "another mode")
        need = data
        what = "data %s" % kib(data)
    elif mode == "romfs":
        if not info.romfs:
            raise DoesNotFit("this board's MicroPython has no ROMFS support (vfs.VfsRom: "
                             "MicroPython >= 1.25 built with MICROPY_VFS_ROM)")
        if info.rom_partition:
            if romfs_bytes > info.rom_partition:
                raise DoesNotFit("the ROMFS image is %s, the board's ROM partition %s" % (
                    kib(romfs_bytes), kib(info.rom_partition)))
            need = data
            what = "data %s (image %s in a %s ROM partition)" % (
                kib(data), kib(romfs_bytes), kib(info.rom_partition))
        else:                          # file-backed image: it sits in the heap
            need = data + romfs_bytes
            what = "data %s + file-backed ROMFS image %s" % (kib(data), kib(romfs_bytes))
    else:
        code = int(mpy_bytes * CODE_RATIO[info.bits])
        need = data + code
        what = "data %s + bytecode %s (%s of .mpy)" % (kib(data), kib(code), kib(mpy_bytes))
    if need > info.free:
        raise DoesNotFit("%s needs %s of heap (%s); the board has %s free of %s%s" % (
            mode, kib(need), what, kib(info.free), kib(info.total),
            "" if info.psram or mode != "mpy" else ": .mpy files in /lib need a board with PSRAM"))
    return "%s fits: needs %s (%s), %s free" % (mode, kib(need), what, kib(info.free))
