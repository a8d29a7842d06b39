"""ECDSA P-256 / SHA-256 signature checks for the validator, with two independent backends.

  reference  python-ecdsa (pure Python, easy to audit)          verify_reference()
  fast       cryptography (OpenSSL)                              verify_fast()

Both take the signer's SubjectPublicKeyInfo DER, the exact signed bytes and a DER
ECDSA-Sig-Value, and return True/False: a malformed signature or key is just "does not verify"
(the caller turns it into a rejection reason). Parsed keys are cached by their DER bytes, since
a validator checks many messages from the same few chargers. The tests cross-check that the
two backends agree on valid, forged and malformed inputs.
"""
from typing import Iterable, List, Optional, Tuple
import hashlib

import ecdsa
from ecdsa.util import sigdecode_der
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

BACKENDS = ("fast", "reference", "both")

_ref_keys: dict = {}
_fast_keys: dict = {}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class BackendDisagreement(Exception):
    """The two implementations gave different answers: a bug in one of them, never ignored."""


PRECOMPUTE_AFTER = 3     # reference verifications with one key before it gets a table


def _ref_key(pub_der):
    entry = _ref_keys.get(pub_der)
    if entry is None:
        key = ecdsa.VerifyingKey.from_der(pub_der)
        if key.curve != ecdsa.NIST256p:
            raise ValueError("not a P-256 key")
        entry = _ref_keys[pub_der] = [key, 0]
    entry[1] += 1
    if entry[1] == PRECOMPUTE_AFTER + 1:
        entry[0] = _precomputed(entry[0])
    return entry[0]


def _precomputed(key):
    """The key with python-ecdsa's multiplication table (~30 ms once; each verification then
    takes ~5 ms instead of ~10): for a key used again and again (a validator's chargers), not
    for a light client's three checks. from_der leaves the point without its order, which
    the table needs."""
    c = ecdsa.NIST256p
    point = ecdsa.ellipticcurve.PointJacobi(c.curve, key.pubkey.point.x(), key.pubkey.point.y(),
                                            1, c.order, generator=True)
    fast = ecdsa.VerifyingKey.from_public_point(point, curve=c)
    fast.precompute(lazy=False)
    return fast


def _fast_key(pub_der):
    key = _fast_keys.get(pub_der)
    if key is None:
        key = load_der_public_key(pub_der)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ValueError("not a P-256 key")
        _fast_keys[pub_der] = key
    return key


def verify_reference(pub_der: bytes, message: bytes, sig_der: bytes) -> bool:
    """python-ecdsa: True iff sig_der is a valid ECDSA-P256-SHA256 signature of message."""
    try:
        key = _ref_key(bytes(pub_der))
        return bool(key.verify(bytes(sig_der), bytes(message), hashfunc=hashlib.sha256,
                               sigdecode=sigdecode_der))
    except (ecdsa.BadSignatureError, ecdsa.der.UnexpectedDER, ecdsa.MalformedPointError,
            ecdsa.util.MalformedSignature,
            ValueError, AssertionError, TypeError):
        return False


def verify_fast(pub_der: bytes, message: bytes, sig_der: bytes) -> bool:
    """cryptography (OpenSSL): same contract as verify_reference."""
    try:
        _fast_key(bytes(pub_der)).verify(bytes(sig_der), bytes(message), _ECDSA_SHA256)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def verify(pub_der: bytes, message: bytes, sig_der: bytes, backend: str = "fast") -> bool:
    if backend == "fast":
        return verify_fast(pub_der, message, sig_der)
    if backend == "reference":
        return verify_reference(pub_der, message, sig_der)
    if backend == "both":
        # The reference (pure Python, ~10 ms) confirms every acceptance; a refusal by OpenSSL
        # is final whatever python-ecdsa would say, so junk costs one fast check only.
        a = verify_fast(pub_der, message, sig_der)
        if not a:
            return False
        b = verify_reference(pub_der, message, sig_der)
        if a != b:
            raise BackendDisagreement("cryptography says %s, python-ecdsa says %s" % (a, b))
        return a
    raise ValueError("unknown signature backend %r (one of %s)" % (backend, ", ".join(BACKENDS)))


def valid_public_key(pub_der: bytes) -> bool:
    """True iff pub_der is a P-256 SubjectPublicKeyInfo both backends accept."""
    try:
        _ref_key(bytes(pub_der))
        _fast_key(bytes(pub_der))
        return True
    except Exception:
        return False


# P-256's field prime, curve constant b and group order (SEC 2 v2, section 2.4.2), as
# python-ecdsa holds them.
_P, _B, _N = ecdsa.NIST256p.curve.p(), ecdsa.NIST256p.curve.b(), ecdsa.NIST256p.order
_CURVE = ec.SECP256R1()


def _lift_x(x: int) -> Optional[int]:
    """A y with (x, y) on P-256, or None (p = 3 mod 4: the square root is one power)."""
    y2 = (pow(x, 3, _P) - 3 * x + _B) % _P
    y = pow(y2, (_P + 1) // 4, _P)
    return y if y * y % _P == y2 else None


def _affine_add(a: Tuple[int, int], b: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """a + b on P-256 in affine coordinates; None for the point at infinity."""
    (x1, y1), (x2, y2) = a, b
    if x1 == x2:
        if (y1 + y2) % _P == 0:
            return None
        slope = (3 * x1 * x1 - 3) * pow(2 * y1, -1, _P) % _P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, _P) % _P
    x3 = (slope * slope - x1 - x2) % _P
    return x3, (slope * (x1 - x3) - y1) % _P


def _times(k: int, point: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """k x point (x, one of the two y) by OpenSSL: k x G as a public key, k x point as ECDH's
    shared x. The caller tries both signs of y where it matters."""
    priv = ec.derive_private_key(k, _CURVE)
    if point is None:
        nums = priv.public_key().public_numbers()
        return nums.x, nums.y
    peer = ec.EllipticCurvePublicNumbers(point[0], point[1], _CURVE).public_key()
    x = int.from_bytes(priv.exchange(ec.ECDH(), peer), "big")
    y = _lift_x(x)
    assert y is not None            # a point OpenSSL computed is on the curve
    return x, y


def recover_keys(message: bytes, sig_der: bytes) -> List[bytes]:
    """The P-256 keys (SPKI DER) under which sig_der is a valid ECDSA-SHA256 signature of
    message (SEC 1 v2 section 4.1.6), at most two: Q = r^-1 (s R - e G) for both points R
    with x = r. The scalar multiplications run in OpenSSL (cryptography has no key recovery,
    python-ecdsa's takes ~60-160 ms in pure Python): e G as a key derivation and s r^-1 R as
    an ECDH, whose x-coordinate stands for both R (s r^-1 (-R) is its negation). The case
    x = r + n (probability about 2^-128 for a genuine signature) is not tried."""
    try:
        r, s = decode_dss_signature(bytes(sig_der))
    except (ValueError, TypeError):
        return []
    if not (0 < r < _N and 0 < s < _N):
        return []
    ry = _lift_x(r)
    if ry is None:
        return []
    e = int.from_bytes(hashlib.sha256(bytes(message)).digest(), "big") % _N
    r_inv = pow(r, -1, _N)
    tx, ty = _times(s * r_inv % _N, (r, ry))
    u1 = -e * r_inv % _N
    out = []
    for t in ((tx, ty), (tx, _P - ty)):
        q = t if u1 == 0 else _affine_add(_times(u1), t)
        if q is None:
            continue
        key = ec.EllipticCurvePublicNumbers(q[0], q[1], _CURVE).public_key()
        out.append(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return out


def recover_signer(pairs: Iterable[Tuple[bytes, bytes]]) -> Optional[bytes]:
    """The one P-256 key (SPKI DER) that made every (message, DER signature) in pairs, or None.

    ECDSA public-key recovery (SEC 1 v2 §4.1.6) gives, for any single signature, up to two keys
    it verifies under, so one signature proves nothing about who made it. Two signatures over
    different messages that recover to the same key were made by that key's holder: that is how
    a receipt signed by a key we do not know is told apart from random forgery."""
    pairs = list(pairs)
    if not pairs:
        return None
    message, sig_der = pairs[0]
    # A key verifies a signature iff recovery from it would give that key: check every pair
    # (the first as well: recovery is ours, verification is OpenSSL's) with the fast backend.
    found = set(recover_keys(message, sig_der))
    common = [k for k in found if all(verify_fast(k, m, s) for m, s in pairs)]
    return common[0] if len(common) == 1 else None
