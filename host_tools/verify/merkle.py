"""RFC 9162 Merkle tree for validators that hold a whole log: roots, inclusion and consistency
proofs (generation §2.1.3.1 / §2.1.4.1, verification §2.1.3.2 / §2.1.4.2).

Independent of firmware/ledger/merkle.py on purpose: the host checks what the device claims.
Perfect subtrees are cached level by level, so a proof costs O(log^2 n) hashes, not O(n).
"""
from typing import List, Optional
import hashlib


class ProofError(Exception):
    """A proof does not verify (the message says which check failed)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n):
    """Largest power of two strictly less than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class Tree:
    def __init__(self, leaves=()):
        self.levels = [[]]          # levels[h][i] = MTH of leaves [i*2^h, (i+1)*2^h)
        for data in leaves:
            self.append(data)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, data: bytes) -> int:
        return self.append_hash(leaf_hash(data))

    def append_hash(self, h: bytes) -> int:
        index = len(self.levels[0])
        self.levels[0].append(h)
        i, level = index, 0
        while i & 1:
            left = self.levels[level][i - 1]
            level += 1
            if len(self.levels) == level:
                self.levels.append([])
            h = node_hash(left, h)
            self.levels[level].append(h)
            i >>= 1
        return index

    def leaf(self, index: int) -> bytes:
        return self.levels[0][index]

    def _mth(self, start, end):
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            return self.levels[level][start >> level]
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))

    def root(self, size: Optional[int] = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return self._mth(0, size)

    def _check_size(self, size):
        if not 0 <= size <= self.size:
            raise ValueError("tree size %d outside 0..%d" % (size, self.size))

    def inclusion_proof(self, index: int, size: Optional[int] = None) -> List[bytes]:
        """PATH(index, D[size]) as a list of 32-byte hashes, leaf side first."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError("leaf %d not in tree of size %d" % (index, size))
        proof = []
        start, end, m = 0, size, index
        stack = []
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                stack.append(self._mth(start + k, end))
                end = start + k
            else:
                stack.append(self._mth(start, start + k))
                start, m = start + k, m - k
        # The recursion appends the sibling after the sub-path: reverse the descent order.
        proof.extend(reversed(stack))
        return proof

    def consistency_proof(self, old_size: int, new_size: Optional[int] = None) -> List[bytes]:
        """PROOF(old_size, D[new_size]) per RFC 9162 §2.1.4.1 (empty when old_size is 0 or equal)."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError("old size %d outside 0..%d" % (old_size, new_size))
        if old_size == 0 or old_size == new_size:
            return []
        stack = []
        start, end, m, whole = 0, new_size, old_size, True
        while True:
            n = end - start
            if m == n:
                if not whole:
                    stack.append(self._mth(start, end))
                break
            k = _split(n)
            if m <= k:
                stack.append(self._mth(start + k, end))
                end = start + k
            else:
                stack.append(self._mth(start, start + k))
                start, m, whole = start + k, m - k, False
        return list(reversed(stack))


def verify_inclusion(leaf_h: bytes, index: int, size: int, proof, root: bytes) -> None:
    """RFC 9162 §2.1.3.2. Raises ProofError unless proof shows leaf_h at index in root."""
    if not 0 <= index < size:
        raise ProofError("leaf index %d not below tree size %d" % (index, size))
    fn, sn, r = index, size - 1, leaf_h
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof) -> None:
    """RFC 9162 §2.1.4.2. Raises ProofError unless new tree extends the old one.
    old_size 0 (the empty tree) is consistent with everything, with an empty proof."""
    if not 0 <= old_size <= new_size:
        raise ProofError("old size %d greater than new size %d" % (old_size, new_size))
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof must be empty for equal sizes")
        if old_root != new_root:
            raise ProofError("same size, different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
