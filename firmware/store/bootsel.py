# The boot selector: which application version runs (docs/firmware.md, "Updates").
#
# The image's frozen firmware is version 0 ("image"). A signed update (app/update.py) is staged
# in <root>/v<number>/ as whole packages (app/, uplink/...); this module's pointer file
# <root>/boot (one store.atomic record, so a power cut leaves the old or the new pointer) names
# the version to run and the one before it:
#   {"cur": {"n": 5, "v": "1.2.0"} | null, "prev": {...} | null, "ok": bool, "boots": k, "bad": n}
# A switched-to version is on trial (ok false): each boot on trial is counted before the app is
# imported; a version that crashes at import, or is not confirmed (confirm()) within MAX_BOOTS
# boots, is replaced by the previous one here, without the app's help. The store package (this
# selector and store.atomic) always comes from the image: an update cannot replace its own
# rollback.
import json
import sys

from store import atomic

IMAGE = "0"                 # the image's own version string (OCMF GV)
MAX_BOOTS = 3               # boots a new version gets to confirm itself healthy
PACKAGES = ("app", "uplink", "session", "ledger", "drivers", "hal")   # what an update may replace
POINTER = "/boot"


def state(root):
    """The pointer record; a missing or damaged one means the image."""
    try:
        raw = atomic.read(root + POINTER)
    except atomic.CorruptFile:
        raw = None
    if raw:
        try:
            st = json.loads(raw)
            if isinstance(st, dict) and "cur" in st:
                return st
        except ValueError:
            pass
    return {"cur": None, "prev": None, "ok": True, "boots": 0, "bad": 0}


def _write(root, st, op=None):
    if op is not None:
        op()
    atomic.write(root + POINTER, json.dumps(st).encode())


def version_dir(root, n):
    return "%s/v%d" % (root, n)


def active(root):
    """(number, version string) of the version this boot runs (after select())."""
    cur = state(root)["cur"]
    return (0, IMAGE) if cur is None else (cur["n"], cur["v"])


def on_trial(root):
    st = state(root)
    return st["cur"] is not None and not st["ok"]


def rollback(root, op=None):
    """Back to the previous version (or the image); the failed number is remembered as bad so
    the same update is not switched to again."""
    st = state(root)
    bad = st["cur"]["n"] if st["cur"] else 0
    _write(root, {"cur": st["prev"], "prev": None, "ok": True, "boots": 0, "bad": bad}, op)


def switch(root, n, v, op=None):
    """Make version n (staged complete in version_dir) the next boot's, on trial."""
    st = state(root)
    _write(root, {"cur": {"n": n, "v": v}, "prev": st["cur"], "ok": False, "boots": 0,
                  "bad": st.get("bad", 0)}, op)


def confirm(root, op=None):
    """The running version has run healthy: it stays (no more trial boots counted)."""
    st = state(root)
    if st["cur"] is not None and not st["ok"]:
        st["ok"] = True
        st["boots"] = 0
        _write(root, st, op)


def select(root, op=None):
    """Once per boot, before the app is imported: count a trial boot or roll back; the
    directory to run from (None: the image)."""
    st = state(root)
    if st["cur"] is not None and not st["ok"]:
        if st["boots"] >= MAX_BOOTS or not atomic.exists(version_dir(root, st["cur"]["n"])):
            rollback(root, op)
            return select(root, op)
        st["boots"] += 1
        _write(root, st, op)
    return None if st["cur"] is None else version_dir(root, st["cur"]["n"])


def use(root, d):
    """Put d (or nothing: the image) first on sys.path and forget the packages an update may
    replace, so the next import finds them there."""
    prefix = root + "/v"
    for p in list(sys.path):
        if isinstance(p, str) and p.startswith(prefix):
            sys.path.remove(p)
    if d is not None:
        sys.path.insert(0, d)
    for name in list(sys.modules):
        if name.split(".")[0] in PACKAGES:
            del sys.modules[name]


def _load(entry):
    mod = __import__(entry)
    for part in entry.split(".")[1:]:
        mod = getattr(mod, part)
    return mod


def boot(root, entry="app.main"):
    """Select, then import entry (a module) from the selected version. An import that crashes
    on a version on trial rolls back and imports the previous version instead."""
    d = select(root)
    while True:
        use(root, d)
        try:
            return _load(entry)
        except Exception as exc:
            if not on_trial(root):
                raise
            print("version on trial failed at import:", repr(exc))
            rollback(root)
            d = select(root)
