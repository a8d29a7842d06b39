# Runs inside MicroPython: a power cut at every flash write of an update, on littlefs.
#
# The same chip as the session's power-cut sweep (powercut.py: littlefs v2 on a RAM block device
# that counts block writes and stops them), the firmware's own update code (app/update.py,
# store/bootsel.py) fed the update server's chunk messages (made on the host by
# host_tools/provision/ota_manifest.py, proofs included). A dry run counts the update's block
# writes W (offer, every chunk, the files' renames, the switch, the first trial boot); then for
# each cut point k the update is replayed from the same starting image and the power goes after
# k block writes. At every cut point:
#   - the reboot right after the cut selects a complete, signed version: the image, or a
#     version directory holding exactly the manifest's files with their SHA-256;
#   - resuming from what is on flash (a new Updater, the manifest offered again only if the
#     staging record did not survive) stages and switches the update, and the next boot selects
#     it, complete and signed.
#
#   sweep(spki, charger, raw, files, msgs, cuts=None, every=1)
#       -> {"writes": W, "tried": n, "failures": [[k, why], ...]}; prints "OTAPOWERCUT {json}"
# Used by tests/host/device/test_ota_power_cut.py (a spread) and host_tools/bench/ota.py (all).
import builtins
import gc
import hashlib
import json
from binascii import hexlify, unhexlify

import vfs
from powercut import (BLOCK_SIZE, BLOCKS, MOUNT, Flash, PowerCut, _OPEN, _close_files,
                      _recording_open, _unmount)
from store import bootsel

from app import update as up

ROOT = MOUNT + "/ota"
_RAM = [None]


def _messages(msgs):
    """{(file, offset): chunk message} from the host's hex strings."""
    out = {}
    for h in msgs:
        m = unhexlify(h)
        f = m[8] | (m[9] << 8)
        o = m[10] | (m[11] << 8) | (m[12] << 16) | (m[13] << 24)
        out[(f, o)] = m
    return out


def _stage(u, raw, chunks):
    if u.manifest is None and bootsel.active(ROOT)[1] != json.loads(raw[:raw.rfind(b"|")])["version"]:
        u.offer(raw)
    want = u.next_needed()
    while want is not None:
        want = u.receive(chunks[want])
    u.apply(True)


def _complete_and_signed(d, files):
    """d None (the image) or a version directory holding exactly files' content."""
    if d is None:
        return True
    for path, digest in files:
        h = hashlib.sha256()
        try:
            with _OPEN(d + "/" + path, "rb") as f:
                h.update(f.read())
        except OSError:
            return False
        if hexlify(h.digest()).decode() != digest:
            return False
    return True


def _one(image, limit, spki, charger, raw, files, chunks):
    data = _RAM[0]
    data[:] = image
    flash = Flash(data, limit)
    vfs.mount(vfs.VfsLfs2(flash), MOUNT)
    cut = False
    try:
        u = up.Updater(ROOT, spki, charger)
        u.flash_op = None
        _stage(u, raw, chunks)
        bootsel.select(ROOT)                        # the first boot of the new version
    except PowerCut:
        cut = True
    u = None
    flash.buried = True
    _close_files()
    writes = flash.writes
    _unmount()
    gc.collect()
    fail = None
    flash = Flash(data)                              # the power is back: the same chip
    try:
        vfs.mount(vfs.VfsLfs2(flash), MOUNT)
        d = bootsel.select(ROOT)
        if not _complete_and_signed(d, files):
            fail = "boot after the cut selected %s, not complete and signed" % d
        u = up.Updater(ROOT, spki, charger)
        _stage(u, raw, chunks)
        u = None
        d = bootsel.select(ROOT)
        if d is None or not _complete_and_signed(d, files):
            fail = fail or "after resuming, the boot selected %s" % d
    except Exception as exc:                        # a boot or a resume that fails is a failure
        fail = "reboot failed: %r" % (exc,)
    flash.buried = True
    _close_files()
    _unmount()
    if limit >= 0 and not cut:
        fail = fail or "the update ended before write %d" % limit
    return writes, fail


def sweep(spki, charger, raw, files, msgs, cuts=None, every=1):
    builtins.open = _recording_open
    try:
        gc.collect()
        _RAM[0] = bytearray(BLOCKS * BLOCK_SIZE)
        image = bytearray(BLOCKS * BLOCK_SIZE)
        flash = Flash(image)
        vfs.VfsLfs2.mkfs(flash)
        raw = raw.encode()
        chunks = _messages(msgs)
        msgs = None
        total, fail = _one(image, -1, spki, charger, raw, files, chunks)
        if fail:
            raise AssertionError("the update fails without a power cut: " + fail)
        points = list(range(0, total, every)) if cuts is None else [c for c in cuts if c < total]
        failures = []
        for k in points:
            _, fail = _one(image, k, spki, charger, raw, files, chunks)
            if fail:
                failures.append([k, fail])
    finally:
        builtins.open = _OPEN
    out = {"writes": total, "tried": len(points), "failures": failures}
    print("OTAPOWERCUT " + json.dumps(out))
    return out


def update_power_cut(spki, charger, raw, files, msgs, every=1):
    """The test entry (host_tools/devtools/mprun.py): fails on any failing cut point."""
    out = sweep(spki, charger, raw, files, msgs, None, every)
    assert not out["failures"], out["failures"]
    assert out["tried"] > 0
