"""ECDSA P-256 / SHA-256 signature checks for the validator, with two independent backends.

  reference  python-ecdsa (pure Python, easy to audit)          verify_reference()
  fast       cryptography (OpenSSL)                              verify_fast()

Both take the signer's SubjectPublicKeyInfo DER, the exact signed bytes and a DER
ECDSA-Sig-Value, and return True/False: a malformed signature or key is just "does not verify"
(the caller turns it into a rejection reason). Parsed keys are cached by their DER bytes, since
a validator checks many messages from the same few chargers. The tests cross-check that the
two backends agree on valid, forged and malformed inputs.
"""
from typing import Iterable, Optional, Tuple
import hashlib

import ecdsa
from ecdsa.util import sigdecode_der
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

BACKENDS = ("fast", "reference", "both")

_ref_keys: dict = {}
_fast_keys: dict = {}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class BackendDisagreement(Exception):
    """The two implementations gave different answers: a bug in one of them, never ignored."""


def _ref_key(pub_der):
    key = _ref_keys.get(pub_der)
    if key is None:
        key = ecdsa.VerifyingKey.from_der(pub_der)
        if key.curve != ecdsa.NIST256p:
            raise ValueError("not a P-256 key")
        _ref_keys[pub_der] = key
    return key


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
        a = verify_fast(pub_der, message, sig_der)
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
    try:
        keys = ecdsa.VerifyingKey.from_public_key_recovery(
            bytes(sig_der), bytes(message), ecdsa.NIST256p, hashfunc=hashlib.sha256,
            sigdecode=sigdecode_der)
    except Exception:
        return None
    # A key verifies a signature iff recovery from it would give that key: check the others
    # with the fast backend instead of recovering from each of them (pure Python, slow).
    found = {k.to_der() for k in keys}
    common = [k for k in found if all(verify_fast(k, m, s) for m, s in pairs[1:])]
    return common[0] if len(common) == 1 else None
