# Device Merkle log (RFC 9162 §2.1.1): the incremental Frontier agrees with the recursive
# definition for every size, survives a flash round trip, and rejects damaged records.
from hashlib import sha256

from support.fwtest import raises
from ledger import merkle
from ledger.merkle import Frontier, MerkleError


def _mth(leaves):
    # RFC 9162 §2.1.1 written recursively, independent of Frontier.
    n = len(leaves)
    if n == 0:
        return sha256(b"").digest()
    if n == 1:
        return sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_hash_prefixes_are_rfc9162():
    assert merkle.leaf_hash(b"abc") == sha256(b"\x00abc").digest()
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert Frontier().root() == sha256(b"").digest()


def test_frontier_root_matches_recursive_tree_for_sizes_1_to_70():
    f = Frontier()
    leaves = []
    for n in range(1, 71):
        data = b"leaf %d" % n
        leaves.append(data)
        assert f.append(data) == n - 1
        assert f.root() == _mth(leaves)
        # the compact range holds one hash per set bit of the size
        assert len(f.hashes) == bin(n).count("1")


def test_frontier_flash_round_trip_continues_identically():
    f = Frontier()
    for i in range(13):
        f.append(b"%d" % i)
    g = Frontier.from_bytes(f.to_bytes())
    assert g.size == 13 and g.root() == f.root()
    f.append(b"next")
    g.append(b"next")
    assert g.root() == f.root()


def test_damaged_frontier_record_is_rejected():
    f = Frontier()
    for i in range(5):
        f.append(b"%d" % i)
    raw = f.to_bytes()
    raises(MerkleError, Frontier.from_bytes, raw[:-1])
    raises(MerkleError, Frontier.from_bytes, b"XXXX" + raw[4:])
    raises(MerkleError, Frontier.from_bytes, raw[:4])
    # size field says 7 (three subtrees) but two hashes follow
    raises(MerkleError, Frontier.from_bytes, raw[:4] + b"\x07" + raw[5:])
