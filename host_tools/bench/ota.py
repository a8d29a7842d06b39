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
"""
import hashlib
import statistics
import sys
import tempfile
import time

from host_tools import paths
from host_tools.provision import operator_cmd as op
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
    return {"ota_update_power_cut_points": total, "ota_unbootable_states": unbootable,
            "ota_update_stage_ms": round(statistics.median(times), 1)}


if __name__ == "__main__":
    print(run())
