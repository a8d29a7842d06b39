# RFC 9162 (Certificate Transparency v2) Merkle tree hashing, §2.1.1:
#   leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right),
#   the hash of the empty tree = SHA-256("").
# The charger never holds its whole log: Frontier keeps the "compact range" [0, size), i.e.
# one hash per set bit of size (the perfect subtrees the log splits into, largest first), so
# the root is computed incrementally in O(log n) hashes and memory.
import struct
from hashlib import sha256

_LEAF = b"\x00"
_NODE = b"\x01"
_MAGIC = b"CPF1"
_HEAD = "<4sQ"             # magic, tree size (u64)
_HEAD_LEN = 12
HASH_LEN = 32


class MerkleError(Exception):
    pass


def leaf_hash(data):
    h = sha256(_LEAF)
    h.update(data)
    return h.digest()


def node_hash(left, right):
    h = sha256(_NODE)
    h.update(left)
    h.update(right)
    return h.digest()


def empty_root():
    return sha256(b"").digest()


def _popcount(n):
    c = 0
    while n:
        n &= n - 1
        c += 1
    return c


class Frontier:
    """Compact range of a Merkle log: size and the roots of its perfect subtrees."""

    def __init__(self):
        self.size = 0
        self.hashes = []     # largest (leftmost) subtree first; len == popcount(size)

    def append(self, leaf_data):
        """Append one leaf (its data); return its index."""
        return self.append_hash(leaf_hash(leaf_data))

    def append_hash(self, h):
        index = self.size
        n = index
        # Each trailing 1 bit of the old size is a perfect subtree of equal height to merge.
        while n & 1:
            h = node_hash(self.hashes.pop(), h)
            n >>= 1
        self.hashes.append(h)
        self.size = index + 1
        return index

    def root(self):
        """RFC 9162 MTH of the whole log: fold the subtrees right to left."""
        if not self.size:
            return empty_root()
        hs = self.hashes
        r = hs[-1]
        i = len(hs) - 2
        while i >= 0:
            r = node_hash(hs[i], r)
            i -= 1
        return r

    def copy(self):
        f = Frontier()
        f.size = self.size
        f.hashes = list(self.hashes)
        return f

    def to_bytes(self):
        return struct.pack(_HEAD, _MAGIC, self.size) + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, raw):
        if len(raw) < _HEAD_LEN:
            raise MerkleError("frontier: short record (%d bytes)" % len(raw))
        magic, size = struct.unpack(_HEAD, raw[:_HEAD_LEN])
        if magic != _MAGIC:
            raise MerkleError("frontier: bad magic")
        count = _popcount(size)
        if len(raw) != _HEAD_LEN + HASH_LEN * count:
            raise MerkleError("frontier: %d bytes for size %d" % (len(raw), size))
        f = cls()
        f.size = size
        mv = memoryview(raw)
        f.hashes = [bytes(mv[_HEAD_LEN + HASH_LEN * i:_HEAD_LEN + HASH_LEN * (i + 1)])
                    for i in range(count)]
        return f
