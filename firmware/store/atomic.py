# Whole-file records replaced atomically: write a temp file, then rename over the old one.
# os.rename is atomic on littlefs (the ESP32 default) and POSIX; on FAT it is not, so there we
# remove first and readers fall back to the temp file, which is only accepted if its CRC holds.
import os
import struct
from binascii import crc32

_MAGIC = b"CPa1"
_HEADER = "<4sII"          # magic, length, crc32 of the data
_HEADER_LEN = 12


# The safety hook (the app's safety watch), called between the pieces of every write here and
# in store/journal.py: a record goes to flash in CHUNK-byte pieces with the watch between them.
_idle = None
CHUNK = 512


def set_idle(fn):
    """Install fn as the flash writes' safety hook; return the previous one."""
    global _idle
    prev = _idle
    _idle = fn
    return prev


def idle():
    fn = _idle
    if fn is not None:
        fn()


def write_chunks(f, data):
    """f.write(data) in CHUNK-byte pieces with the safety hook between them."""
    n = len(data)
    if n <= CHUNK or _idle is None:
        f.write(data)
        return
    mv = memoryview(data)
    i = 0
    while i < n:
        f.write(mv[i:i + CHUNK])
        i += CHUNK
        _idle()


class CorruptFile(Exception):
    pass


def _unframe(raw, path):
    if len(raw) < _HEADER_LEN:
        raise CorruptFile("%s: short file (%d bytes)" % (path, len(raw)))
    magic, length, crc = struct.unpack(_HEADER, raw[:_HEADER_LEN])
    data = raw[_HEADER_LEN:]
    if magic != _MAGIC or length != len(data) or crc32(data) & 0xFFFFFFFF != crc:
        raise CorruptFile("%s: bad header or CRC" % path)
    return data


def _read_raw(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write(path, data):
    """Replace the file at path with data (bytes) so that a power cut leaves old or new, whole."""
    tmp = path + ".tmp"
    crc = crc32(data) & 0xFFFFFFFF
    idle()
    with open(tmp, "wb") as f:
        # Header and data written one after the other: no framed copy of the record.
        f.write(struct.pack(_HEADER, _MAGIC, len(data), crc))
        write_chunks(f, data)
        idle()
        f.flush()
    idle()
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT: rename does not replace. The temp file stays valid until the rename is done.
        remove(path)
        os.rename(tmp, path)
    idle()


def read(path, default=None):
    """The data last written to path, or default if none was. Raises CorruptFile if the only
    copy on flash is damaged (never silently returns default for a damaged record)."""
    raw = _read_raw(path)
    if raw is not None:
        try:
            return _unframe(raw, path)
        except CorruptFile:
            pass
    tmp_raw = _read_raw(path + ".tmp")
    if tmp_raw is not None:
        try:
            return _unframe(tmp_raw, path + ".tmp")
        except CorruptFile:
            pass
    if raw is None:
        return default
    raise CorruptFile("%s: damaged and no valid copy" % path)


def remove(path):
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    """mkdir -p (MicroPython's os has no makedirs)."""
    built = ""
    for part in path.split("/"):
        if not part:
            built = "/" if not built else built
            continue
        built = part if not built else (built.rstrip("/") + "/" + part)
        if not exists(built):
            os.mkdir(built)


def free_bytes(path):
    """Free bytes on the filesystem that holds path."""
    st = os.statvfs(path)
    return st[0] * st[4]   # f_bsize * f_bavail
