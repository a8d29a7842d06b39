"""The 32-bit "virtual ESP32": MicroPython v1.28.0's unix port built for i386.

An ESP32 is a 32-bit machine: objects there are half the size they are on the 64-bit unix
port, small integers have 31 bits (a u32 register value or an epoch in milliseconds is a big
integer and allocates), and the firmware's bytecode is frozen into flash, not loaded into the
heap. The closest thing on a PC is the unix port built with `MICROPY_FORCE_32BIT=1` (Debian's
gcc-multilib) and the firmware frozen into it. This module builds, from the vendored source
tarball (../shared/vendor/, or CP_MP_SRC_TARBALL):

  build/mp32/micropython-32         the stock image: asyncio and umqtt.simple frozen, as in the
                                    ESP32's own image (boards/manifest.py); firmware imported
                                    from .mpy files lands in the heap
  build/mp32/micropython-32-frozen  the same plus firmware/ frozen exactly as
                                    firmware/manifest.py freezes it for the board, and the
                                    host-only firmware modules the tests need (simulated
                                    devices, POSIX serial) frozen beside it

Both carry the C modules of host_tools/devtools/mp32_cmod/ (USER_C_MODULES): `cputime`, the
thread's own CPU clock for the safety bench (host_tools/bench/safety.py). The firmware never
imports it; it stands for nothing on the board.

Each binary is rebuilt only when what it is made of changes (a SHA-256 over the tarball, the
make flags, the C modules, the manifests, umqtt.simple and, for the frozen one, the firmware sources); make's
own dependency tracking keeps a rebuild to the frozen content and the link.
"""
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

from host_tools.paths import (FIRMWARE, FIRMWARE_CMOD, MICROPYTHON_32, MICROPYTHON_32_FROZEN, MP32_BUILD, MP32_CMOD,
                              MPLIB, MP_SIDE, ROOT)

MP_VERSION = "1.28.0"
TARBALL_NAME = "micropython-%s-unix-src.tar.gz" % MP_VERSION
OUT = MP32_BUILD
SRC = OUT / ("micropython-" + MP_VERSION)
PLAIN = pathlib.Path(MICROPYTHON_32)
FROZEN = pathlib.Path(MICROPYTHON_32_FROZEN)
# What the build leaves out: ffi, ssl and btree need submodules the tarball does not carry.
_MAKE_FLAGS = ["MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_SSL=0",
               "MICROPY_PY_BTREE=0"]
# What the board's image sets too (host_tools/devtools/esp32_image.sh passes the same defines):
# the collector's mark stack. With the default 64 entries, marking the app's heap overflows it
# (sys.modules, a class dict with dozens of methods) and every overflow costs one more pass over
# the whole live heap: a collection took ~310 us here instead of ~140 (docs/firmware.md, "Safety
# loop"). 256 entries (1 KB of static RAM on the ESP32) mark it in one pass.
GC_DEFINES = ["MICROPY_ALLOC_GC_STACK_SIZE=256"]
_MAKE_FLAGS += ["CFLAGS_EXTRA=%s" % " ".join("-D" + d for d in GC_DEFINES)]
# The firmware's entry scripts stay files on the board's flash; manifest.py is the recipe.
_NOT_MODULES = {"main.py", "manifest.py"}
# Bench harnesses frozen beside the firmware (run with `-m name`): their bytecode, ~10 KB
# compiled, would otherwise sit in the 112 KB heap the bench measures, which on the board
# holds the app alone (docs/firmware.md, "Safety loop"). The whole-app scenario too: it stands
# for the board's main.py (a few hundred bytes), not for 3 KB of harness (app_heap_peak_bytes_32).
FROZEN_TOOLS = [MP_SIDE / "safety_bench.py", MP_SIDE / "app_scenario.py", MP_SIDE / "scenario_cards.py"]


def tarball():
    """The vendored source: CP_MP_SRC_TARBALL, else shared/vendor/ beside the repository (or
    beside a folder holding it, as a worktree under /work/wt/ is)."""
    env = os.environ.get("CP_MP_SRC_TARBALL")
    if env:
        return pathlib.Path(env)
    for up in ROOT.parents:
        cand = up / "shared" / "vendor" / TARBALL_NAME
        if cand.exists():
            return cand
    raise FileNotFoundError("%s not found in shared/vendor/ above %s (set CP_MP_SRC_TARBALL)"
                            % (TARBALL_NAME, ROOT))


def _sha(paths, text=""):
    h = hashlib.sha256(text.encode())
    for p in paths:
        h.update(str(p.relative_to(ROOT) if ROOT in p.parents else p.name).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def _tree(root):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


_CMOD_ROOTS = (MP32_CMOD, FIRMWARE_CMOD)     # the bench's C modules, the firmware's


def _cmod_files():
    """The C modules' sources and makefiles (USER_C_MODULES), part of both binaries."""
    return sorted(p for root in _CMOD_ROOTS for p in root.rglob("*")
                  if p.is_file() and p.suffix in (".c", ".h", ".mk"))


def _user_c_modules():
    """make takes one USER_C_MODULES folder: one made of links to each module's folder."""
    folder = OUT / "cmods"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for root in _CMOD_ROOTS:
        for mod in sorted(p for p in root.iterdir() if (p / "micropython.mk").is_file()):
            (folder / mod.name).symlink_to(mod)
    return folder


def _stamp_ok(stamp, digest):
    try:
        return stamp.read_text() == digest
    except OSError:
        return False


def _extract(tar, log):
    digest = _sha([tar])
    stamp = OUT / "src.sha256"
    if SRC.exists() and _stamp_ok(stamp, digest):
        return
    shutil.rmtree(SRC, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    log("mp32: unpacking %s" % tar)
    with tarfile.open(tar) as tf:
        tf.extractall(OUT, filter="data") if sys.version_info >= (3, 12) else tf.extractall(OUT)
    stamp.write_text(digest)


def _libraries():
    """Stand-ins for the two folders a frozen manifest reaches outside itself:
    $(PORT_DIR)/boards/manifest.py (the ESP32 port's: of what it freezes, only asyncio matters
    to the firmware) and micropython-lib (umqtt.simple, from .venv/mplib)."""
    port = OUT / "esp32-port"
    (port / "boards").mkdir(parents=True, exist_ok=True)
    (port / "boards" / "manifest.py").write_text(
        "# Stand-in for ports/esp32/boards/manifest.py: asyncio is what the firmware uses.\n"
        'include("$(MPY_DIR)/extmod/asyncio")\n')
    lib = OUT / "micropython-lib"
    pkg = lib / "micropython" / "umqtt.simple"
    pkg.mkdir(parents=True, exist_ok=True)
    (lib / "README.md").write_text("Stand-in for micropython-lib: umqtt.simple from .venv/mplib.\n")
    (pkg / "manifest.py").write_text(
        'package("umqtt", files=("__init__.py", "simple.py"), base_path=%r)\n' % str(MPLIB))
    return port, lib


def _board_modules(port, lib):
    """The firmware modules firmware/manifest.py freezes, as paths relative to firmware/."""
    sys.path.insert(0, str(SRC / "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
        "MPY_DIR": str(SRC), "MPY_LIB_DIR": str(lib), "PORT_DIR": str(port), "BOARD_DIR": ""})
    m.execute(str(FIRMWARE / "manifest.py"))
    out = set()
    for f in m.files():
        full = pathlib.Path(f.full_path).resolve()
        if FIRMWARE in full.parents:
            out.add(full.relative_to(FIRMWARE))
    return out


def board_modules():
    """The firmware files the board's image freezes (paths relative to firmware/)."""
    _extract(tarball(), print)
    return _board_modules(*_libraries())


def _manifests(port, lib):
    plain = OUT / "manifest-32.py"
    plain.write_text(
        "# The stock ESP32 image's Python side: asyncio and umqtt.simple.\n"
        'include("$(PORT_DIR)/boards/manifest.py")\n'
        'require("umqtt.simple")\n')
    on_board = _board_modules(port, lib)
    extra = [p.relative_to(FIRMWARE) for p in _tree(FIRMWARE)
             if p.relative_to(FIRMWARE) not in on_board
             and not (p.parent == FIRMWARE and p.name in _NOT_MODULES)]
    lines = ["# The board's image (firmware/manifest.py), plus the host-only firmware modules the",
             "# tests need (simulated devices, POSIX serial), frozen beside it: a package is",
             "# searched only where it was found, so they cannot come from the filesystem.",
             "include(%r)" % str(FIRMWARE / "manifest.py")]
    by_pkg = {}
    for rel in extra:
        by_pkg.setdefault(str(rel.parent), []).append(rel.name)
    for pkg, names in sorted(by_pkg.items()):
        if pkg == ".":
            for n in names:
                lines.append("module(%r, base_path=%r)" % (n, str(FIRMWARE)))
        else:
            lines.append("package(%r, files=%r, base_path=%r)" % (pkg, tuple(names), str(FIRMWARE)))
    for tool in FROZEN_TOOLS:
        lines.append("module(%r, base_path=%r)" % (tool.name, str(tool.parent)))
    frozen = OUT / "manifest-32-frozen.py"
    frozen.write_text("\n".join(lines) + "\n")
    return plain, frozen


def _mpy_cross(log):
    """Build mpy-cross (native) first, on its own: the port's make would build it with the
    port's command-line variables (BUILD=, FROZEN_MANIFEST=) passed down, and fail."""
    exe = SRC / "mpy-cross" / "build" / "mpy-cross"
    if exe.exists():
        return
    log("mp32: building mpy-cross")
    proc = subprocess.run(["make", "-C", str(SRC / "mpy-cross"), "-j%d" % (os.cpu_count() or 2)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("mpy-cross build failed:\n%s" % proc.stderr[-5000:])


def _touch_new_cmods():
    """make scans for names (qstrs, module registrations) only the sources newer than its
    last scan: a C module older than that scan (a build folder made before the module came)
    would compile without its names. So when the C modules changed since the folder last
    built, their mtimes are brought to now; the stamp is written once a build has passed."""
    digest = _sha(_cmod_files())
    stamp = OUT / "cmod.sha256"
    if not _stamp_ok(stamp, digest):
        for p in _cmod_files():
            os.utime(p)
    return stamp, digest


def _make(manifest, build_dir, port, lib, log):
    _mpy_cross(log)
    # make does not track flags: a build folder made with others is compiled again whole. The
    # C modules' makefiles give flags too (gcsplit's hook header reaches every C file).
    flags = build_dir / "make-flags.txt"
    key = " ".join(_MAKE_FLAGS) + "\n" + _sha(sorted(p for p in _cmod_files() if p.suffix == ".mk"))
    try:
        same = flags.read_text() == key
    except OSError:
        same = False
    if not same:
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        flags.write_text(key)
    # makemanifest.py rewrites frozen_content.c only when a file it freezes is newer than it:
    # after the frozen image, the plain one (a subset) would keep the firmware frozen in.
    (build_dir / "frozen_content.c").unlink(missing_ok=True)
    log("mp32: building %s" % pathlib.Path(manifest).stem.replace("manifest", "micropython"))
    cmd = ["make", "-C", str(SRC / "ports" / "unix"), "-j%d" % (os.cpu_count() or 2)] + _MAKE_FLAGS + [
        "BUILD=%s" % build_dir, "FROZEN_MANIFEST=%s" % manifest, "MPY_LIB_DIR=%s" % lib,
        "MICROPY_MANIFEST_PORT_DIR=%s" % port, "USER_C_MODULES=%s" % _user_c_modules()]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        if "gnu/stubs-32.h" in proc.stderr or "cannot find -lgcc" in proc.stderr:
            raise RuntimeError("the 32-bit build needs Debian's gcc-multilib "
                               "(host_tools/devtools/bootstrap.sh installs it)")
        raise RuntimeError("32-bit MicroPython build failed:\n%s\n%s"
                           % (proc.stdout[-3000:], proc.stderr[-5000:]))
    return build_dir / "micropython"


def _install(exe, dest):
    """Copy beside, then rename over: a test still running the old binary keeps its inode
    (copying onto a running executable fails with ETXTBSY)."""
    tmp = dest.with_name(dest.name + ".new")
    shutil.copy2(exe, tmp)
    os.replace(tmp, dest)


def build(log=print):
    """Build both binaries where they are out of date; return (plain, frozen) paths."""
    tar = tarball()
    _extract(tar, log)
    port, lib = _libraries()
    plain_manifest, frozen_manifest = _manifests(port, lib)
    # What each binary is made of: the source, the make flags, the C modules, the manifests
    # and what they freeze (not this file: editing a comment here must not cost a rebuild).
    recipe = [tar, plain_manifest, port / "boards" / "manifest.py",
              lib / "micropython" / "umqtt.simple" / "manifest.py"] + _cmod_files() + _tree(MPLIB)
    flags = " ".join(_MAKE_FLAGS)
    plain_digest = _sha(recipe, flags)
    frozen_digest = _sha(recipe + [frozen_manifest] + _tree(FIRMWARE) + FROZEN_TOOLS, flags)
    plain_stamp, frozen_stamp = OUT / "micropython-32.sha256", OUT / "micropython-32-frozen.sha256"
    todo = []
    if not (PLAIN.exists() and _stamp_ok(plain_stamp, plain_digest)):
        todo.append("plain")
    if not (FROZEN.exists() and _stamp_ok(frozen_stamp, frozen_digest)):
        todo.append("frozen")
    if not todo:
        return PLAIN, FROZEN
    # One build folder for both: they differ only in frozen_content.c, so the second build
    # compiles that file and links (a firmware change costs seconds, not a whole port build).
    cmod_stamp, cmod_digest = _touch_new_cmods()
    if "plain" in todo:
        exe = _make(plain_manifest, OUT / "build-32", port, lib, log)
        _install(exe, PLAIN)
        plain_stamp.write_text(plain_digest)
        todo.append("frozen")     # the folder now holds the plain image's frozen content
    if "frozen" in todo:
        exe = _make(frozen_manifest, OUT / "build-32", port, lib, log)
        _install(exe, FROZEN)
        frozen_stamp.write_text(frozen_digest)
    cmod_stamp.write_text(cmod_digest)
    return PLAIN, FROZEN


if __name__ == "__main__":
    for path in build():
        print(path)
