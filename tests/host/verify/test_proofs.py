"""RFC 9162 proofs from host_tools.verify.merkle checked against a naive tree written here from the
RFC's recursive definitions, and against the device's incremental Frontier."""
import hashlib

import pytest

from host_tools.verify import merkle
from ledger.merkle import Frontier


def H(b):
    return hashlib.sha256(b).digest()


def mth(leaves):                       # RFC 9162 §2.1.1, literally
    n = len(leaves)
    if n == 0:
        return H(b"")
    if n == 1:
        return H(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return H(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m, leaves):                   # §2.1.3.1, literally
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):            # §2.1.4.1, literally
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


LEAVES = [b"receipt-%d" % i for i in range(300)]
TREE = merkle.Tree(LEAVES)


def naive_roots():
    # Roots of every prefix, from the naive definition (memoised per size, computed once).
    return [mth(LEAVES[:n]) for n in range(301)]


ROOTS = naive_roots()


def test_roots_match_naive_tree_and_device_frontier_for_every_size():
    f = Frontier()
    assert TREE.root(0) == ROOTS[0] == f.root()
    for n in range(1, 301):
        f.append(LEAVES[n - 1])
        assert f.size == n
        assert TREE.root(n) == ROOTS[n]
        assert f.root() == ROOTS[n]
        assert Frontier.from_bytes(f.to_bytes()).root() == ROOTS[n]


def test_inclusion_every_leaf_every_size_1_to_300():
    for n in range(1, 301):
        root = ROOTS[n]
        for i in range(n):
            proof = TREE.inclusion_proof(i, n)
            merkle.verify_inclusion(merkle.leaf_hash(LEAVES[i]), i, n, proof, root)
            assert len(proof) == len(path(i, LEAVES[:n])) if n <= 64 else True


def test_inclusion_proofs_equal_naive_paths_small_sizes():
    for n in range(1, 65):
        for i in range(n):
            assert TREE.inclusion_proof(i, n) == path(i, LEAVES[:n])


def test_consistency_all_pairs_up_to_130_and_equal_naive_proofs_up_to_48():
    for n in range(1, 131):
        for m in range(0, n + 1):
            proof = TREE.consistency_proof(m, n)
            merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)
            if n <= 48 and 0 < m < n:
                assert proof == subproof(m, LEAVES[:n], True)


def test_consistency_to_300_from_every_size():
    for m in range(0, 301):
        merkle.verify_consistency(m, 300, ROOTS[m], ROOTS[300], TREE.consistency_proof(m, 300))


def flip(h):
    return bytes([h[0] ^ 1]) + h[1:]


def test_tampered_inclusion_rejected():
    # Size and root travel together in a signed checkpoint, so a tampered size is paired with
    # the genuine root of that size (a size alone cannot be changed without the signature).
    for n in (2, 3, 7, 8, 9, 100, 255, 256, 257, 299):
        for i in sorted({0, n // 2, n - 1}):
            proof = TREE.inclusion_proof(i, n)
            lh = merkle.leaf_hash(LEAVES[i])
            bad = [
                (merkle.leaf_hash(b"forged"), i, n, proof, ROOTS[n]),        # leaf
                (lh, i, n, proof, flip(ROOTS[n])),                           # root
                (lh, i, n - 1, proof, ROOTS[n - 1]),                         # size
                (lh, i, n + 1, proof, ROOTS[n + 1]),                         # size
                (lh, (i + 1) % n, n, proof, ROOTS[n]),                       # index
                (lh, i, n, proof + [ROOTS[1]], ROOTS[n]),                    # longer proof
            ]
            if proof:
                bad.append((lh, i, n, [flip(proof[0])] + proof[1:], ROOTS[n]))   # proof
                bad.append((lh, i, n, proof[:-1], ROOTS[n]))                     # shorter
            for args in bad:
                with pytest.raises(merkle.ProofError):
                    merkle.verify_inclusion(*args)


def test_tampered_consistency_rejected():
    for m, n in ((1, 2), (3, 7), (4, 8), (6, 299), (128, 130), (200, 299), (256, 299)):
        proof = TREE.consistency_proof(m, n)
        bad = [
            (m, n, flip(ROOTS[m]), ROOTS[n], proof),
            (m, n, ROOTS[m], flip(ROOTS[n]), proof),
            (m, n + 1, ROOTS[m], ROOTS[n + 1], proof),
            (m, n - 1, ROOTS[m], ROOTS[n - 1], proof),
            (m + 1, n, ROOTS[m], ROOTS[n], proof),
            (m, n, ROOTS[m], ROOTS[n], [flip(proof[0])] + proof[1:]),
            (m, n, ROOTS[m], ROOTS[n], proof[:-1]),
            (m, n, ROOTS[m], ROOTS[n], proof + [ROOTS[1]]),
        ]
        for args in bad:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(*args)
    # a rewritten history: the old tree's root at the same size differs
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[4], [])
