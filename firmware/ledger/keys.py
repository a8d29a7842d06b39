# The charger's signing key: made on the device from its RNG on first boot, kept on flash,
# and never given out. Only the public key (SPKI DER), its C2SP key ID and signatures leave.
import os
from binascii import hexlify
from hashlib import sha256

from ledger import der, p256
from store import atomic

_MAX_TRIES = 16


class KeyStoreError(Exception):
    """The key file is damaged or holds no valid P-256 key, or the RNG failed."""


def _load(path):
    raw = atomic.read(path)     # raises atomic.CorruptFile if damaged
    if raw is None:
        return None
    if len(raw) != 32:
        raise KeyStoreError("%s: key record has %d bytes, expected 32" % (path, len(raw)))
    d = int.from_bytes(raw, "big")
    if not 0 < d < p256.N:
        raise KeyStoreError("%s: stored key out of range" % path)
    return d


def _generate(urandom):
    # Rejection sampling (FIPS 186-4 B.4.2 "testing candidates"): uniform in 1..n-1, no bias.
    for _ in range(_MAX_TRIES):
        raw = urandom(32)
        if len(raw) != 32:
            raise KeyStoreError("RNG returned %d bytes" % len(raw))
        d = int.from_bytes(raw, "big")
        if 0 < d < p256.N:
            return d
    raise KeyStoreError("RNG gave no valid key in %d tries" % _MAX_TRIES)


def _digest(message):
    # Only bytes are signed: MicroPython's sha256 would also take a str, CPython's would not,
    # and a signature must not depend on which interpreter made it.
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise KeyStoreError("message must be bytes, not %s" % type(message).__name__)
    return sha256(message).digest()


class _Signer:
    # Holds the secret. Its repr is fixed, so printing the KeyStore, its vars() or a
    # traceback's locals never shows the key (MicroPython prints a closure's cells in its
    # repr, so a closure would leak it). Nothing here returns the secret.
    def __init__(self, d, rng):
        self._d = d
        self._rng = rng
        self.idle = None

    def __call__(self, digest):
        # The nonce is RFC 6979's; the RNG only blinds the nonce inversion (same signature).
        # The safety hook runs between field operations while this key signs.
        blind = int.from_bytes(self._rng(32), "big")
        prev = p256.set_idle(self.idle)
        try:
            return p256.sign_digest(self._d, digest, blind)
        finally:
            p256.set_idle(prev)

    def __repr__(self):
        return "<secret>"


class KeyStore:
    """KeyStore(path, urandom=os.urandom): the charger's P-256 key, loaded from path or, on
    first boot, generated from urandom and saved there (atomically, CRC-checked)."""

    def __init__(self, path, urandom=None):
        self._rng = urandom or os.urandom
        d = _load(path)
        if d is None:
            d = _generate(self._rng)
            atomic.write(path, d.to_bytes(32, "big"))
            if _load(path) != d:
                raise KeyStoreError("%s: key did not read back" % path)
        pub = p256.public_key(d)
        self._signer = _Signer(d, self._rng)
        self._spki = der.encode_spki(pub)
        self._pub = pub
        self._kid = sha256(self._spki).digest()[:4]

    def set_idle(self, fn=None):
        """Call fn (no arguments: the charger's safety watch) between field operations while
        this key signs; None: nothing."""
        self._signer.idle = fn

    def public_key(self):
        """The public point (x, y)."""
        return self._pub

    def public_key_der(self):
        """SubjectPublicKeyInfo DER (91 bytes), as OCMF verifiers and provisioning take it."""
        return self._spki

    def public_key_hex(self):
        return hexlify(self._spki).decode()

    def key_id(self):
        """C2SP signed-note key ID for signature type 0x02: SHA-256(SPKI DER)[:4]."""
        return self._kid

    def sign(self, message):
        """DER ECDSA-Sig-Value over SHA-256(message) (ECDSA-secp256r1-SHA256)."""
        r, s = self._signer(_digest(message))
        return der.encode_sig(r, s)

    def sign_raw(self, message):
        """64-byte r||s over SHA-256(message)."""
        r, s = self._signer(_digest(message))
        return der.encode_raw(r, s)

    def verify(self, message, signature_der):
        """True if signature_der is this key's signature over message."""
        try:
            r, s = der.decode_sig(signature_der)
        except der.DerError:
            return False
        return p256.verify_digest(self._pub, _digest(message), r, s)

    def __repr__(self):
        return "<KeyStore P-256 key id %s>" % hexlify(self._kid).decode()
