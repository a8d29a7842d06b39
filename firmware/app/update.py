# Signed application updates (docs/firmware.md, "Updates"): verify a manifest, stage its files
# chunk by chunk beside the running version, switch the boot pointer when the charger is idle.
#
# Wire form, as commands (uplink/commands.py): <manifest JSON> "|" <hex DER ECDSA P-256 sig>
# by the operator key. The manifest:
#   {"charger": "<id>" | "*", "version": "1.2.0", "number": 5, "min_number": 3, "chunk": 1024,
#    "files": [{"path": "app/main.mpy", "size": 1234, "sha256": "<64 hex>",
#               "root": "<64 hex>"}, ...]}
# A file travels in chunks of "chunk" bytes (the last one shorter; an empty file is one empty
# chunk); "root" is the RFC 9162 Merkle root over those chunks (ledger/merkle.py's hashing), so
# each chunk message carries its inclusion proof and is checked before a byte of it reaches the
# flash (receive()). The chunk message (the update server's answer, docs/mqtt.md):
#   "CPC1" | number u32 | file index u16 | offset u32 | proof hashes k u8 | k * 32 bytes | data
# (little-endian).
# Progress is what is on flash: <root>/staged holds the verified manifest (atomic record), each
# file grows as <root>/v<number>/<path>.part and is renamed to <path> only once its SHA-256
# holds (a corrupt file is removed and fetched again from offset 0). So after a power cut
# next_needed() says where to go on, and the boot pointer (store/bootsel.py) only ever names a
# version whose every file was checked.
import hashlib
import json
import os
import struct
from binascii import hexlify, unhexlify

from ledger.merkle import leaf_hash, node_hash
from store import atomic, bootsel
from uplink.commands import operator_signed, operator_verifier

MAX_MANIFEST = 4096
MAX_FILES = 64
MAX_TOTAL = 512 * 1024          # bytes an update may stage (the app's .mpy files are ~200 KB)
SUFFIXES = (".mpy", ".py")
MIN_CHUNK = 256
MAX_CHUNK = 4096                # a chunk message is held whole in RAM: keep it small
CHUNK_MAGIC = b"CPC1"
CHUNK_HEAD = "<4sIHIB"
CHUNK_HEAD_LEN = 15
MAX_PROOF = 16                  # hashes: 2**16 chunks is far above MAX_TOTAL

MALFORMED = "malformed"
BAD_SIGNATURE = "bad-signature"
WRONG_CHARGER = "wrong-charger"
DOWNGRADE = "downgrade"
TOO_OLD = "too-old"             # the running version is below the update's min_number
KNOWN_BAD = "known-bad"         # this number was rolled back once
UNSAFE_PATH = "unsafe-path"
TOO_LARGE = "too-large"
OUT_OF_ORDER = "out-of-order"
NOTHING_STAGED = "nothing-staged"
CORRUPT = "corrupt"             # a chunk (or a whole file) that does not hash as signed
OTHER_UPDATE = "other-update"   # a chunk of an update that is not the one being staged


class UpdateRejected(Exception):
    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _check_path(path):
    if not isinstance(path, str) or not 0 < len(path) <= 64:
        raise UpdateRejected(UNSAFE_PATH, "path must be 1..64 characters")
    parts = path.split("/")
    if path[0] == "/" or "\\" in path or len(parts) < 2 or parts[0] not in bootsel.PACKAGES:
        raise UpdateRejected(UNSAFE_PATH, "%r is not inside %s" % (path, "/".join(bootsel.PACKAGES)))
    for part in parts:
        if part in ("", ".", "..") or part.endswith(".part"):
            raise UpdateRejected(UNSAFE_PATH, repr(path))
    if not path.endswith(SUFFIXES):
        raise UpdateRejected(UNSAFE_PATH, "%r is not a .mpy or .py file" % path)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_hex32(v):
    if not isinstance(v, str) or len(v) != 64:
        return False
    try:
        unhexlify(v)
    except ValueError:
        return False
    return True


def chunk_count(size, chunk):
    """Chunks of a file of size bytes: at least one (an empty file is one empty chunk)."""
    return max(1, (size + chunk - 1) // chunk)


def included(leaf, index, size, proof, k, root):
    """RFC 9162 section 2.1.3.2: is leaf (a leaf hash) at index of a tree of size leaves with
    this root, by the k hashes of proof (k * 32 bytes)?"""
    if index >= size:
        return False
    fn = index
    sn = size - 1
    r = leaf
    for j in range(k):
        p = proof[32 * j:32 * j + 32]
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _file_sha256(path, idle=None):
    h = hashlib.sha256()
    buf = bytearray(1024)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            h.update(mv[:k])
            if idle is not None:
                idle()
    return hexlify(h.digest()).decode()


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _listdir(path):
    if hasattr(os, "ilistdir"):
        return [e[0] for e in os.ilistdir(path)]
    return os.listdir(path)


class Updater:
    """One charger's updates. root: the update directory (bootsel's); flash_op, if set, is
    called before each flash write this module makes (the tests cut the power there)."""

    def __init__(self, root, operator_key, charger_id, max_total=MAX_TOTAL):
        self.root = root
        self.key = operator_verifier(operator_key)     # the app passes its commands' own
        self.charger_id = charger_id
        self.max_total = max_total
        self.idle = None            # the safety hook, during signature checks and hashing
        self.flash_op = None
        atomic.makedirs(root)
        self.manifest = None
        raw = atomic.read(root + "/staged")
        if raw:
            m = json.loads(raw)
            if m["number"] > bootsel.active(root)[0]:
                self.manifest = m     # verified before it was written
                self._drop_torn()
            else:
                self._op()
                atomic.remove(root + "/staged")   # switched to (or superseded) already

    def _drop_torn(self):
        # A power cut inside a chunk's append can leave part of it in the .part file (littlefs
        # commits a file's full cache blocks before its close): a length that is not a whole
        # number of chunks, which no chunk message can continue. That file starts again.
        c = self.manifest.get("chunk")
        for i in range(len(self.manifest["files"])):
            part = self._final(i) + ".part"
            n = _size(part)
            if n > 0 and c and (n % c or n > self.manifest["files"][i]["size"]):
                self._op()
                os.remove(part)

    def _op(self):
        if self.flash_op is not None:
            self.flash_op()

    # ---- the manifest ------------------------------------------------------------------------

    def verify(self, raw):
        """The manifest (a dict) of a valid signed update for this charger; raises
        UpdateRejected(reason) otherwise. Changes nothing."""
        if not isinstance(raw, (bytes, bytearray)) or not 0 < len(raw) <= MAX_MANIFEST:
            raise UpdateRejected(MALFORMED, "empty or longer than %d bytes" % MAX_MANIFEST)
        raw = bytes(raw)
        bar = raw.rfind(b"|")
        if bar < 0:
            raise UpdateRejected(BAD_SIGNATURE, "unsigned")
        payload = raw[:bar]
        try:
            ok = operator_signed(self.key, payload, raw[bar + 1:].strip(), self.idle)
        except (ValueError, TypeError) as exc:
            raise UpdateRejected(BAD_SIGNATURE, "signature is not hex DER: %s" % exc)
        if not ok:
            raise UpdateRejected(BAD_SIGNATURE, "not signed by the operator key")
        try:
            m = json.loads(payload)
        except ValueError:
            m = None
        if not isinstance(m, dict):
            raise UpdateRejected(MALFORMED, "manifest is not a JSON object")
        n, low, files = m.get("number"), m.get("min_number"), m.get("files")
        size = m.get("chunk")
        if not (_is_int(n) and n > 0 and _is_int(low) and low >= 0 and isinstance(files, list)
                and isinstance(m.get("version"), str) and 0 < len(m["version"]) <= 32
                and isinstance(m.get("charger"), str) and 0 < len(files) <= MAX_FILES
                and _is_int(size) and MIN_CHUNK <= size <= MAX_CHUNK):
            raise UpdateRejected(MALFORMED, "needs charger, version, number, min_number, "
                                 "chunk (%d..%d), files" % (MIN_CHUNK, MAX_CHUNK))
        if m["charger"] not in ("*", self.charger_id):
            raise UpdateRejected(WRONG_CHARGER, "for %s" % m["charger"])
        running = bootsel.active(self.root)[0]
        if n <= running:
            raise UpdateRejected(DOWNGRADE, "number %d <= running %d" % (n, running))
        if running < low:
            raise UpdateRejected(TOO_OLD, "running %d < min_number %d" % (running, low))
        if n == bootsel.state(self.root).get("bad"):
            raise UpdateRejected(KNOWN_BAD, "number %d was rolled back" % n)
        total = 0
        seen = []
        for f in files:
            if not isinstance(f, dict):
                raise UpdateRejected(MALFORMED, "a file entry is not an object")
            _check_path(f.get("path"))
            size, digest, root = f.get("size"), f.get("sha256"), f.get("root")
            if not (_is_int(size) and size >= 0 and _is_hex32(digest) and _is_hex32(root)):
                raise UpdateRejected(MALFORMED, "%s: needs size, sha256 and root" % f["path"])
            if f["path"] in seen:
                raise UpdateRejected(MALFORMED, "%s twice" % f["path"])
            seen.append(f["path"])
            total += size
        if total > self.max_total:
            raise UpdateRejected(TOO_LARGE, "%d bytes > %d" % (total, self.max_total))
        return m

    def offer(self, raw):
        """Accept a signed manifest: the update to stage from now on (the same one again
        resumes; a newer one replaces an unfinished older one, an older one is refused).
        Returns next_needed()."""
        m = self.verify(raw)
        if self.manifest is not None and self.manifest["number"] == m["number"]:
            return self.next_needed()
        if self.manifest is not None and m["number"] < self.manifest["number"]:
            # e.g. an older fleet manifest beside a charger's own newer one: never thrash
            raise UpdateRejected(DOWNGRADE, "number %d < %d being staged" % (m["number"],
                                                                          self.manifest["number"]))
        if self.manifest is not None:
            self._discard(self.manifest["number"])
        d = bootsel.version_dir(self.root, m["number"])
        if _is_dir(d):
            self._discard(m["number"])      # leftovers of an earlier try of this number
        self._op()
        atomic.write(self.root + "/staged", json.dumps(m).encode())
        self.manifest = m
        return self.next_needed()

    # ---- the files ---------------------------------------------------------------------------

    def _final(self, i):
        return bootsel.version_dir(self.root, self.manifest["number"]) + "/" + self.manifest["files"][i]["path"]

    def next_needed(self):
        """(file index, offset) of the next chunk to fetch, or None when every file is staged
        and checked (or nothing is being staged)."""
        if self.manifest is None:
            return None
        for i in range(len(self.manifest["files"])):
            final = self._final(i)
            if _size(final) >= 0:
                continue
            return (i, max(0, _size(final + ".part")))
        return None

    def progress(self):
        """(chunks staged, chunks in all) of the update being staged; (0, 0) when none."""
        m = self.manifest
        if m is None:
            return (0, 0)
        c = m["chunk"]
        total = 0
        for f in m["files"]:
            total += chunk_count(f["size"], c)
        want = self.next_needed()
        if want is None:
            return (total, total)
        done = want[1] // c
        for f in m["files"][:want[0]]:
            done += chunk_count(f["size"], c)
        return (done, total)

    def receive(self, msg):
        """One chunk message from the update server: parsed, its Merkle proof checked against
        the signed manifest's root for its file, then written (chunk()). Nothing reaches the
        flash unless the proof holds. Returns next_needed(); raises UpdateRejected (CORRUPT:
        fetch it again; OUT_OF_ORDER / OTHER_UPDATE: a late or stray message, to ignore)."""
        if self.manifest is None:
            raise UpdateRejected(NOTHING_STAGED, "")
        if len(msg) < CHUNK_HEAD_LEN:
            raise UpdateRejected(MALFORMED, "chunk message of %d bytes" % len(msg))
        magic, n, index, offset, k = struct.unpack_from(CHUNK_HEAD, msg, 0)
        if magic != CHUNK_MAGIC or k > MAX_PROOF:
            raise UpdateRejected(MALFORMED, "not a chunk message")
        m = self.manifest
        if n != m["number"]:
            raise UpdateRejected(OTHER_UPDATE, "chunk of update %d, staging %d" % (n, m["number"]))
        want = self.next_needed()
        if (index, offset) != want:
            raise UpdateRejected(OUT_OF_ORDER, "want file %d at %d" % want)
        f = m["files"][index]
        c = m["chunk"]
        start = CHUNK_HEAD_LEN + 32 * k
        mv = memoryview(msg)
        data = mv[start:]
        if offset % c or len(data) != min(c, f["size"] - offset):
            raise UpdateRejected(CORRUPT, "%s at %d: %d bytes" % (f["path"], offset, len(data)))
        if not included(leaf_hash(data), offset // c, chunk_count(f["size"], c), mv[CHUNK_HEAD_LEN:start],
                        k, unhexlify(f["root"])):
            raise UpdateRejected(CORRUPT, "%s at %d: not in the signed file" % (f["path"], offset))
        return self.chunk(index, offset, data)

    def chunk(self, index, offset, data):
        """Append data at (index, offset), which must be next_needed(). A file is checked when
        its last byte arrives: a bad one is removed (fetched again from 0) and raises
        UpdateRejected("corrupt"). Returns next_needed()."""
        want = self.next_needed()
        if want is None:
            raise UpdateRejected(NOTHING_STAGED, "")
        if (index, offset) != want:
            raise UpdateRejected(OUT_OF_ORDER, "want file %d at %d" % want)
        f = self.manifest["files"][index]
        if offset + len(data) > f["size"]:
            raise UpdateRejected(TOO_LARGE, "chunk runs past %s's %d bytes" % (f["path"], f["size"]))
        final = self._final(index)
        part = final + ".part"
        if offset == 0:
            self._op()
            atomic.makedirs(final[:final.rfind("/")])
        self._op()
        with open(part, "ab" if offset else "wb") as out:
            out.write(data)
        if offset + len(data) == f["size"]:
            if _file_sha256(part, self.idle) != f["sha256"]:
                self._op()
                os.remove(part)
                raise UpdateRejected(CORRUPT, "%s: SHA-256 differs, fetching it again" % f["path"])
            self._op()
            os.rename(part, final)
        return self.next_needed()

    def ready(self):
        return self.manifest is not None and self.next_needed() is None

    def apply(self, idle):
        """Switch the boot pointer to the staged version if it is complete and idle is true
        (no session); it runs from the next boot. True if switched."""
        if not idle or not self.ready():
            return False
        m = self.manifest
        bootsel.switch(self.root, m["number"], m["version"], self.flash_op)
        self._op()
        atomic.remove(self.root + "/staged")
        self.manifest = None
        return True

    # ---- clean-up ----------------------------------------------------------------------------

    def _discard(self, n):
        st = bootsel.state(self.root)
        keep = [v["n"] for v in (st["cur"], st["prev"]) if v]
        if n not in keep:
            self._rmtree(bootsel.version_dir(self.root, n))

    def cleanup(self):
        """Remove version directories neither running, previous nor staged."""
        st = bootsel.state(self.root)
        keep = ["v%d" % v["n"] for v in (st["cur"], st["prev"]) if v]
        if self.manifest is not None:
            keep.append("v%d" % self.manifest["number"])
        for name in _listdir(self.root):
            if name[:1] == "v" and name not in keep and _is_dir(self.root + "/" + name):
                self._rmtree(self.root + "/" + name)

    def _rmtree(self, path):
        if _is_dir(path):
            for name in _listdir(path):
                self._rmtree(path + "/" + name)
            self._op()
            os.rmdir(path)
        elif _size(path) >= 0:
            self._op()
            os.remove(path)
