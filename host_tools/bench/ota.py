"""OTA update benchmarks: the firmware's own update code (firmware/app/update.py,
firmware/store/bootsel.py) on CPython, with the power cut before every flash write it makes.

Rows:
  ota_update_power_cut_points   flash writes of one update of the app package's sources (1 KiB
                                chunks), each one a cut point tried: cut there, reboot (the boot
                                selector picks a version), resume from flash, switch
  ota_unbootable_states         boots, over all cut points, whose selected version was not
                                complete and signed (a file missing or differing from the
                                signed manifest's SHA-256), plus runs that never got the
                                update in: must be 0
  ota_update_stage_ms           staging and switching that update with no cut (median of 5)
  ota_lfs_power_cut_points      block writes (programs and erases) of littlefs, inside the 32-bit
                                MicroPython with the firmware frozen in, while an update arrives
                                as the update server's chunk messages (proofs checked), is staged,
                                switched and booted once; the power is cut after each in turn
                                (host_tools/devtools/mp/ota_powercut.py)
  ota_lfs_unbootable_states     cut points after which a boot selected a version not complete and
                                signed, or the resumed update did not end in the new version: 0
"""
import hashlib
import json
import re
import statistics
import sys
import tempfile
import time

from host_tools import paths
from host_tools.provision import operator_cmd as op
from host_tools.provision import ota_manifest
from host_tools.provision.ota_manifest import signed

CHUNK = 1024


class _PowerCut(Exception):
    pass


def _firmware():
    if str(paths.FIRMWARE) not in sys.path:
        sys.path.insert(0, str(paths.FIRMWARE))
    from app import update
    from store import bootsel
    return update, bootsel


def _payload() -> dict[str, bytes]:
    return {"app/" + p.name: p.read_bytes() for p in sorted((paths.FIRMWARE / "app").glob("*.py"))}


def _feed(u, files):
    want = u.next_needed()
    while want is not None:
        i, off = want
        want = u.chunk(i, off, files[i][1][off:off + CHUNK])


def _good(root, bootsel, d, files) -> bool:
    if d is None:
        return True
    for path, data in files:
        try:
            with open(d + "/" + path, "rb") as f:
                if hashlib.sha256(f.read()).digest() != hashlib.sha256(data).digest():
                    return False
        except OSError:
            return False
    return True


def _run(update, bootsel, root, spki, raw, files, cut_at):
    count = [0]

    def flash_op():
        count[0] += 1
        if count[0] == cut_at:
            raise _PowerCut()
    bad = 0
    try:
        u = update.Updater(root, spki, "CP-BENCH")
        u.flash_op = flash_op
        u.offer(raw)
        _feed(u, files)
        u.apply(idle=True)
    except _PowerCut:
        pass
    writes = count[0]
    bad += not _good(root, bootsel, bootsel.select(root), files)
    u = update.Updater(root, spki, "CP-BENCH")
    if u.manifest is None and bootsel.active(root)[0] != 7:
        u.offer(raw)
    _feed(u, files)
    u.apply(idle=True)
    bad += not _good(root, bootsel, bootsel.select(root), files)
    bad += bootsel.active(root)[0] != 7
    return writes, bad


# The update the littlefs sweep stages: small enough for the heap beside the simulated chip.
LFS_CHARGER = "CP-LFS"
LFS_CHUNK = 256
FLASH_ROOM = 2 * 256 * 1024 + 96 * 1024       # the chip, its starting image, the chunk messages


def lfs_kwargs(every: int = 1) -> dict:
    """The arguments of ota_powercut.sweep: a signed update of two small app files and the
    update server's chunk message for every chunk."""
    key = op.generate_key()
    files = {"app/__init__.py": b"",
             "app/probe.py": b"VERSION = '9.0.0'\n" + b"".join(b"# padding line %04d\n" % i
                                                              for i in range(150))}
    raw = signed(key, "9.0.0", 9, 0, files, LFS_CHARGER, chunk=LFS_CHUNK)
    msgs = []
    for index, (path, data) in enumerate(sorted(files.items())):
        tree = ota_manifest.file_tree(data, LFS_CHUNK)
        for offset in range(0, max(len(data), 1), LFS_CHUNK):
            msgs.append(ota_manifest.chunk_message(9, index, offset, data, tree, LFS_CHUNK).hex())
    return {"spki": op.public_spki_hex(key), "charger": LFS_CHARGER, "raw": raw.decode(),
            "files": [[p, hashlib.sha256(d).hexdigest()] for p, d in sorted(files.items())],
            "msgs": msgs, "every": every}


def run_lfs(every: int = 1) -> dict:
    """The littlefs sweep in MicroPython; {"writes", "tried", "failures"}."""
    from host_tools.devtools import build_mpy, mp32, mprun
    build_mpy.build()
    mp32.build()
    kw = lfs_kwargs(every)
    func = "sweep"
    if every != 1:
        func = "update_power_cut"
    else:
        kw.pop("every")
    proc = mprun.run_firmware_test("ota_powercut", func, kw, heap=mprun.HEAP_32 + FLASH_ROOM,
                                   timeout=1800)
    m = re.search(r"^OTAPOWERCUT (\{.*\})$", proc.stdout, re.M)
    if not m:
        raise RuntimeError("update power-cut sweep failed:\n%s\n%s" % (proc.stdout[-3000:],
                                                                      proc.stderr[-2000:]))
    out = json.loads(m.group(1))
    out["passed"] = mprun.passed(proc)
    return out


def run() -> dict[str, float]:
    update, bootsel = _firmware()
    key = op.generate_key()
    spki = op.public_spki_hex(key)
    payload = _payload()
    raw = signed(key, "7.0.0", 7, 0, payload)
    files = sorted(payload.items())
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(5):
            t0 = time.perf_counter()
            total, bad = _run(update, bootsel, "%s/full%d" % (tmp, i), spki, raw, files, 0)
            times.append((time.perf_counter() - t0) * 1000)
        unbootable = bad
        for k in range(1, total + 1):
            unbootable += _run(update, bootsel, "%s/cut%d" % (tmp, k), spki, raw, files, k)[1]
    lfs = run_lfs()
    for k, why in lfs["failures"]:
        print("littlefs: power cut after write %d: %s" % (k, why))
    return {"ota_update_power_cut_points": total, "ota_unbootable_states": unbootable,
            "ota_update_stage_ms": round(statistics.median(times), 1),
            "ota_lfs_power_cut_points": lfs["tried"],
            "ota_lfs_unbootable_states": len(lfs["failures"])}


if __name__ == "__main__":
    print(run())
