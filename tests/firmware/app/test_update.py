# app.update + store.bootsel: a signed update is staged chunk by chunk, switched to only when the
# charger is idle, booted on trial and rolled back by itself if it fails; a power cut at any
# flash write of an update leaves a charger that boots a complete, signed version.
import sys

from app import update as up
from store import bootsel
from support.fwtest import raises

CHUNK = 64


class PowerCut(Exception):
    pass


def _updater(root, o):
    return up.Updater(root, o["operator_spki"], o["charger"])


def _feed(u, files, limit=None):
    """Send the chunks next_needed() asks for; files: [[path, text], ...]."""
    want = u.next_needed()
    while want is not None:
        i, off = want
        data = files[i][1].encode()[off:off + CHUNK]
        want = u.chunk(i, off, data)


def _complete_and_signed(root, o, d):
    """True if d is None (the image) or holds exactly the files of the signed manifest whose
    version it is, each with its SHA-256."""
    if d is None:
        return True
    n = int(d[d.rfind("/v") + 2:])
    for case in o["cases"].values():
        if ("\"number\":%d," % n) in case["raw"]:
            for path, text in case["files"]:
                try:
                    with open(d + "/" + path, "rb") as f:
                        data = f.read()
                except OSError:
                    return False
                if data != text.encode():
                    return False
            return True
    return False


class _Modules:
    """Keeps the interpreter's modules and path as they were (a boot test re-imports app)."""

    def __enter__(self):
        self.mods = dict(sys.modules)
        self.path = list(sys.path)
        return self

    def __exit__(self, *exc):
        for name in list(sys.modules):
            if name not in self.mods:
                del sys.modules[name]
        for name, mod in self.mods.items():
            sys.modules[name] = mod
        sys.path[:] = self.path
        return False


def test_good_update_staged_switched_when_idle_and_booted(tmp_path, ota_updates):
    o = ota_updates
    root = str(tmp_path) + "/ota"
    good = o["cases"]["good"]
    u = _updater(root, o)
    assert u.offer(good["raw"].encode()) == (0, 0)
    _feed(u, good["files"])
    assert u.ready()
    assert not u.apply(idle=False)                    # mid-session: waits
    assert bootsel.active(root) == (0, "0")
    assert u.apply(idle=True)
    assert bootsel.active(root) == (2, "2.0.0") and bootsel.on_trial(root)
    with _Modules():
        probe = bootsel.boot(root, "app.probe")
        assert probe.VERSION == "v2"
    bootsel.confirm(root)
    assert not bootsel.on_trial(root)
    for _ in range(bootsel.MAX_BOOTS + 2):            # confirmed: no more trial boots counted
        assert bootsel.select(root) == root + "/v2"
    assert _complete_and_signed(root, o, root + "/v2")


def test_unconfirmed_version_rolls_back_after_bounded_boots(tmp_path, ota_updates):
    o = ota_updates
    root = str(tmp_path) + "/ota"
    u = _updater(root, o)
    u.offer(o["cases"]["good"]["raw"].encode())
    _feed(u, o["cases"]["good"]["files"])
    u.apply(idle=True)
    for _ in range(bootsel.MAX_BOOTS):
        assert bootsel.select(root) == root + "/v2"
    assert bootsel.select(root) is None               # never confirmed: the image again
    assert bootsel.active(root) == (0, "0")
    raises(up.UpdateRejected, _updater(root, o).verify, o["cases"]["good"]["raw"].encode())


def test_version_crashing_at_import_is_rolled_back(tmp_path, ota_updates):
    o = ota_updates
    root = str(tmp_path) + "/ota"
    for name in ("good", "crash"):
        u = _updater(root, o)
        u.offer(o["cases"][name]["raw"].encode())
        _feed(u, o["cases"][name]["files"])
        assert u.apply(idle=True)
        if name == "good":
            bootsel.confirm(root)
    assert bootsel.active(root) == (3, "3.0.0")
    with _Modules():
        probe = bootsel.boot(root, "app.probe")       # v3 raises at import: v2 runs instead
        assert probe.VERSION == "v2"
    assert bootsel.active(root) == (2, "2.0.0") and not bootsel.on_trial(root)
    exc = raises(up.UpdateRejected, _updater(root, o).verify, o["cases"]["crash"]["raw"].encode())
    assert exc.reason in (up.KNOWN_BAD, up.DOWNGRADE)  # a rolled-back number is not taken again
    u = _updater(root, o)                             # a fixed, newer version still goes in
    u.offer(o["cases"]["v4"]["raw"].encode())
    _feed(u, o["cases"]["v4"]["files"])
    assert u.apply(idle=True) and bootsel.active(root)[0] == 4


def _reason(u, raw):
    try:
        u.verify(raw.encode())
    except up.UpdateRejected as exc:
        return exc.reason
    return "accepted"


def test_bad_manifests_are_refused(tmp_path, ota_updates):
    o = ota_updates
    root = str(tmp_path) + "/ota"
    u = _updater(root, o)
    c = o["cases"]
    assert _reason(u, c["foreign"]["raw"]) == up.BAD_SIGNATURE
    tampered = c["good"]["raw"].replace("2.0.0", "2.0.1")
    assert _reason(u, tampered) == up.BAD_SIGNATURE
    assert _reason(u, c["good"]["raw"].split("|")[0]) == up.BAD_SIGNATURE
    assert _reason(u, c["other_charger"]["raw"]) == up.WRONG_CHARGER
    assert _reason(u, c["needs_v3"]["raw"]) == up.TOO_OLD
    assert _reason(u, c["unsafe"]["raw"]) == up.UNSAFE_PATH
    assert _reason(u, c["outside"]["raw"]) == up.UNSAFE_PATH
    assert _reason(u, c["huge"]["raw"]) == up.TOO_LARGE
    assert u.next_needed() is None and not u.ready()
    u.offer(c["v4"]["raw"].encode())
    _feed(u, c["v4"]["files"])
    u.apply(idle=True)
    assert _reason(_updater(root, o), c["good"]["raw"]) == up.DOWNGRADE   # 2 after 4


def test_corrupt_chunk_is_fetched_again(tmp_path, ota_updates):
    o = ota_updates
    root = str(tmp_path) + "/ota"
    good = o["cases"]["good"]
    u = _updater(root, o)
    u.offer(good["raw"].encode())
    i, off = u.next_needed()
    u.chunk(i, off, good["files"][i][1].encode())     # app/__init__.py (empty: complete)
    i, off = u.next_needed()
    data = bytearray(good["files"][i][1].encode())
    data[5] ^= 1
    assert u.chunk(i, 0, bytes(data[:CHUNK])) == (i, CHUNK)
    raises(up.UpdateRejected, u.chunk, i, 0, b"x")    # out of order
    assert raises(up.UpdateRejected, u.chunk, i, CHUNK, bytes(data[CHUNK:])).reason == "corrupt"
    assert u.next_needed() == (i, 0) and not u.apply(idle=True)
    _feed(u, good["files"])
    assert u.apply(idle=True) and bootsel.active(root)[0] == 2


def _power_cut_run(root, o, cut_at):
    """One update with the power cut before flash write number cut_at (0: no cut); then reboots
    and resumes until it is switched. Returns (writes before the cut or in all, booted dirs)."""
    good = o["cases"]["good"]
    count = [0]

    def op():
        count[0] += 1
        if count[0] == cut_at:
            raise PowerCut()
    booted = []
    try:
        u = _updater(root, o)
        u.flash_op = op
        u.offer(good["raw"].encode())
        _feed(u, good["files"])
        u.apply(idle=True)
    except PowerCut:
        pass
    writes = count[0]
    booted.append(bootsel.select(root))               # the reboot right after the cut
    u = _updater(root, o)                              # resume from what is on flash
    if u.manifest is None and bootsel.active(root)[0] != 2:
        u.offer(good["raw"].encode())                  # cut before the manifest was kept
    _feed(u, good["files"])
    u.apply(idle=True)
    u.cleanup()
    booted.append(bootsel.select(root))
    return writes, booted


def test_power_cut_at_every_flash_write_boots_a_complete_signed_version(tmp_path, ota_updates):
    o = ota_updates
    total, _ = _power_cut_run(str(tmp_path) + "/full", o, 0)
    assert total >= 6
    for k in range(1, total + 1):
        root = "%s/cut%d" % (tmp_path, k)
        _, booted = _power_cut_run(root, o, k)
        for d in booted:
            assert _complete_and_signed(root, o, d), (k, d)
        assert bootsel.active(root)[0] == 2, k        # and the update got there in the end


def test_receipts_carry_the_running_version():
    from session.receipt_fields import receipt_fields
    s = {"reason": "user", "price": (1, 2, 3), "seq": 1, "id": "A", "id_type": "ISO14443",
         "begin_wh": 0, "end_wh": 10, "begin_time": 1, "end_time": 2, "charge_end": 2,
         "segments": [], "tariff": "t"}
    cfg = {"charger_id": "CP", "meter_model": "M", "meter_serial": "S", "evse_id": None}
    assert receipt_fields(cfg, s, "S", "EUR")["firmware"] == "0"      # the image
    cfg["firmware_version"] = "2.0.0"                                   # app/main.py: bootsel.active
    assert receipt_fields(cfg, s, "S", "EUR")["firmware"] == "2.0.0"


def test_a_torn_chunk_left_by_a_power_cut_restarts_its_file(tmp_path, ota_updates):
    """littlefs can keep part of an append cut by the power (ota_lfs_power_cut_points found
    one): a .part of no whole number of chunks is dropped at the next boot, not continued."""
    o = ota_updates
    root = str(tmp_path) + "/ota"
    good = o["cases"]["good"]
    u = _updater(root, o)
    u.offer(good["raw"].encode())
    i, off = u.next_needed()
    u.chunk(i, off, b"")                                # app/__init__.py, empty: complete
    i, off = u.next_needed()
    u.chunk(i, 0, good["files"][i][1].encode()[:100])   # 100 bytes: not a 1024-byte chunk
    assert u.next_needed() == (i, 100)
    u = _updater(root, o)                                # the reboot
    assert u.next_needed() == (i, 0)
    _feed(u, good["files"])
    assert u.apply(idle=True) and bootsel.active(root)[0] == 2


def test_an_older_manifest_does_not_replace_the_one_being_staged(tmp_path, ota_updates):
    o = ota_updates
    root = str(tmp_path) + "/ota"
    u = _updater(root, o)
    u.offer(o["cases"]["v4"]["raw"].encode())
    exc = raises(up.UpdateRejected, u.offer, o["cases"]["good"]["raw"].encode())   # number 2
    assert exc.reason == up.DOWNGRADE and u.manifest["number"] == 4
    _feed(u, o["cases"]["v4"]["files"])
    assert u.apply(idle=True) and bootsel.active(root)[0] == 4
