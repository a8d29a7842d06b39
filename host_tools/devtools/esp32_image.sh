#!/usr/bin/env bash
# `make esp32-image`: a MicroPython firmware image for the ESP32 with ChargeProof frozen in
# (firmware/manifest.py), so the bytecode stays in flash and the heap is left for data.
#
# Needs what this repository cannot install for you (and what CI machines here do not have):
#   - ESP-IDF (v5.2-v5.4, as MicroPython 1.28's ports/esp32 README asks), its environment
#     loaded:  . $IDF_PATH/export.sh
#   - a MicroPython source tree at the matching version, with submodules:
#       git clone -b v1.28.0 https://github.com/micropython/micropython && \
#       make -C micropython/ports/esp32 submodules
# Then:   make esp32-image MICROPY_DIR=/path/to/micropython [BOARD=ESP32_GENERIC|ESP32_GENERIC_S3]
# Flash:  esptool.py --chip esp32 write_flash -z 0x1000 build/esp32-image/firmware.bin
#         (0x0 for the ESP32-S3), then `python -m host_tools.provision.deploy ... --mode frozen`.
# A ROMFS-capable image instead: add MICROPY_VFS_ROM and a romfs partition to the board's
# sdkconfig/partition table (MicroPython >= 1.25 docs, "ROMFS"), then deploy with --mode romfs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BOARD=${BOARD:-ESP32_GENERIC}
if [ -z "${MICROPY_DIR:-}" ] || [ ! -d "${MICROPY_DIR}/ports/esp32" ]; then
    echo "esp32-image: set MICROPY_DIR to a MicroPython v1.28 source tree (with ports/esp32)" >&2
    exit 2
fi
if ! command -v idf.py >/dev/null 2>&1; then
    echo "esp32-image: ESP-IDF is not in this shell: run '. \$IDF_PATH/export.sh' first" >&2
    exit 2
fi
make -C "$MICROPY_DIR/mpy-cross"
# The collector's mark stack, as on the virtual ESP32 (host_tools/devtools/mp32.py, GC_DEFINES):
# 256 entries mark the app's heap in one pass instead of rescanning it after each overflow of the
# default 64 (docs/firmware.md, "Safety loop"). Given through the environment, so the port's
# Makefile appends its own flags to it; checked in the compile database afterwards, because a
# board file that sets MICROPY_DEF_BOARD outright would drop it silently.
GC_DEFINE="MICROPY_ALLOC_GC_STACK_SIZE=256"
# The firmware's C modules (firmware/cmod: gcsplit, the safety watch's poll in the middle of a
# collection; app/safety.py works without it, a collection then being one gap).
CMAKE_ARGS="${CMAKE_ARGS:-} -DMICROPY_DEF_BOARD=$GC_DEFINE" \
    make -C "$MICROPY_DIR/ports/esp32" BOARD="$BOARD" FROZEN_MANIFEST="$ROOT/firmware/manifest.py" \
    USER_C_MODULES="$ROOT/firmware/cmod/micropython.cmake"
if ! grep -q "$GC_DEFINE" "$MICROPY_DIR/ports/esp32/build-$BOARD/compile_commands.json"; then
    echo "esp32-image: $GC_DEFINE did not reach the compiler: add it to the board's" \
         "mpconfigboard.h (#define MICROPY_ALLOC_GC_STACK_SIZE (256)) and build again" >&2
    exit 1
fi
# gcsplit's loop hook must reach py/gc.c (firmware/cmod/gcsplit/micropython.cmake): without it
# the image still works, but a collection's marking is one gap again.
if ! grep -q "gcsplit_hook.h" "$MICROPY_DIR/ports/esp32/build-$BOARD/compile_commands.json"; then
    echo "esp32-image: gcsplit_hook.h did not reach py/gc.c: add" \
         "'-include $ROOT/firmware/cmod/gcsplit/gcsplit_hook.h' to the board's compile options" >&2
    exit 1
fi
mkdir -p build/esp32-image
cp "$MICROPY_DIR/ports/esp32/build-$BOARD/firmware.bin" build/esp32-image/firmware.bin
echo "esp32-image: build/esp32-image/firmware.bin ($BOARD, ChargeProof frozen)"
