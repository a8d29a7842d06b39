# Append-only journal on flash: numbered records in small segment files.
#
# Each record: header <magic u16, length u16, seq u32, crc32 u32> then the data. The CRC covers
# length, seq and data, so a torn tail (power cut mid-append) is detected on replay and skipped;
# nothing before it is lost. Segments are rotated when they pass segment_bytes, so each sync on
# littlefs rewrites a small file, and acknowledged segments are removed whole.
import os
import struct
from binascii import crc32

from store import atomic

_MAGIC = 0xC0DE
_HEADER = "<HHII"
_HEADER_LEN = 12
MAX_RECORD = 0xFFFF


class JournalFull(Exception):
    pass


class Journal:
    def __init__(self, dirpath, segment_bytes=4096, reserve_bytes=16384):
        self.dir = dirpath
        self.segment_bytes = segment_bytes
        self.reserve_bytes = reserve_bytes   # flash kept free for everything else
        atomic.makedirs(dirpath)
        self._acked_path = dirpath + "/acked"
        self.acked = int(atomic.read(self._acked_path, b"0"))
        self._segments = self._list_segments()
        self.last_seq = self.acked
        self.torn_records = 0
        self._valid_end = 0
        for seq, _ in self.records():
            self.last_seq = seq
        if self.torn_records and self._segments:
            self._repair_tail()

    def _repair_tail(self):
        # Keep the whole records of the torn segment, so new appends follow a clean tail.
        path = self._seg_path(self._segments[-1])
        with open(path, "rb") as f:
            good = f.read(self._valid_end)
        if not good:
            os.remove(path)
            self._segments.pop()
            return
        with open(path + ".tmp", "wb") as f:
            f.write(good)
            f.flush()
        os.rename(path + ".tmp", path)

    def _list_segments(self):
        names = []
        for name in os.listdir(self.dir):
            if name.startswith("seg") and name.endswith(".log"):
                names.append(int(name[3:-4]))
        names.sort()
        return names

    def _seg_path(self, first_seq):
        return "%s/seg%08d.log" % (self.dir, first_seq)

    def append(self, data):
        """Append data (bytes, or a tuple of bytes pieces that make the record: no joined copy
        on the heap); return its sequence number once it is on flash."""
        parts = data if isinstance(data, tuple) else (data,)
        size = 0
        for p in parts:
            size += len(p)
        if size > MAX_RECORD:
            raise ValueError("record too long: %d bytes" % size)
        need = _HEADER_LEN + size
        if atomic.free_bytes(self.dir) < need + self.reserve_bytes:
            raise JournalFull("flash full: %d bytes free" % atomic.free_bytes(self.dir))
        seq = self.last_seq + 1
        if not self._segments or self._segment_size(self._segments[-1]) + need > self.segment_bytes:
            self._segments.append(seq)
        crc = crc32(struct.pack("<HI", size, seq))      # the CRC of length, seq and data
        for p in parts:
            crc = crc32(p, crc)
        header = struct.pack(_HEADER, _MAGIC, size, seq, crc & 0xFFFFFFFF)
        atomic.idle()
        with open(self._seg_path(self._segments[-1]), "ab") as f:
            f.write(header)
            for p in parts:
                atomic.write_chunks(f, p)
            atomic.idle()
            f.flush()
        atomic.idle()
        self.last_seq = seq
        return seq

    def _segment_size(self, first_seq):
        try:
            return os.stat(self._seg_path(first_seq))[6]
        except OSError:
            return 0

    def records(self, after=None):
        """Yield (seq, data) for every whole record with seq > after (default: the acked mark)."""
        if after is None:
            after = self.acked
        for first in self._segments:
            try:
                f = open(self._seg_path(first), "rb")
            except OSError:
                continue
            with f:
                offset = 0
                self._valid_end = 0
                while True:
                    header = f.read(_HEADER_LEN)
                    if len(header) < _HEADER_LEN:
                        if header:
                            self.torn_records += 1
                        self._valid_end = offset
                        break
                    magic, length, seq, crc = struct.unpack(_HEADER, header)
                    data = f.read(length) if magic == _MAGIC else b""
                    if (magic != _MAGIC or len(data) != length or
                            crc32(data, crc32(header[2:8])) & 0xFFFFFFFF != crc):
                        self.torn_records += 1   # torn tail: the rest of this segment is unusable
                        break
                    offset += _HEADER_LEN + length
                    self._valid_end = offset
                    atomic.idle()       # the safety watch between records (each read, CRC'd)
                    if seq > after:
                        yield seq, data

    def pending(self):
        return self.last_seq - self.acked

    def ack(self, upto_seq):
        """Mark every record up to upto_seq acknowledged; drop segments that are wholly acked."""
        if upto_seq <= self.acked:
            return
        if upto_seq > self.last_seq:
            raise ValueError("ack %d beyond last record %d" % (upto_seq, self.last_seq))
        atomic.write(self._acked_path, b"%d" % upto_seq)
        self.acked = upto_seq
        # A segment is wholly acked when the next segment starts at or before acked + 1.
        while len(self._segments) > 1 and self._segments[1] <= self.acked + 1:
            os.remove(self._seg_path(self._segments.pop(0)))
