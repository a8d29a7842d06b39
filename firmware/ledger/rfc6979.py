# Deterministic ECDSA nonces (RFC 6979 section 3.2) for P-256 with SHA-256, and the HMAC-SHA256
# (RFC 2104) they need: MicroPython has no hmac module, so HMAC is built on hashlib here.
# Deterministic nonces matter on a charger: a weak or repeated RNG value during signing would
# leak the key, and RFC 6979 removes the RNG from signing altogether.
from hashlib import sha256

_BLOCK = 64                      # SHA-256 block size in bytes (RFC 2104 "B")
# ipad/opad (RFC 2104) as 512-bit integers so a key block is XORed in one big-int operation
# instead of a 64-step byte loop.
_IPAD = int.from_bytes(b"\x36" * _BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * _BLOCK, "big")
_ZERO32 = b"\x00" * 32
_ONE32 = b"\x01" * 32


class HmacKey:
    """HMAC-SHA256 with a fixed key: the padded key blocks are made once and reused."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = sha256(key).digest()
        k = int.from_bytes(key + b"\x00" * (_BLOCK - len(key)), "big")
        self._ik = (k ^ _IPAD).to_bytes(_BLOCK, "big")
        self._ok = (k ^ _OPAD).to_bytes(_BLOCK, "big")

    def mac(self, *parts):
        h = sha256(self._ik)
        for part in parts:
            h.update(part)
        o = sha256(self._ok)
        o.update(h.digest())
        return o.digest()


def hmac_sha256(key, msg):
    return HmacKey(key).mac(msg)


def _none():
    pass


def nonces(priv, digest, order, idle=_none):
    """Yield the RFC 6979 candidate nonces k (1 <= k < order) for private key priv and a
    32-byte SHA-256 digest, for a 256-bit order (qlen = hlen = 256, so bits2int is a plain
    big-endian read). The caller takes the first; it asks for the next only if r or s is 0.
    idle() between the key updates (the signer's safety hook: each is two HMACs and a key's
    padded blocks, ~50 us on the 32-bit build)."""
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    # bits2octets(h1) = int2octets(bits2int(h1) mod q): with qlen = 256, one subtraction at most.
    h = int.from_bytes(digest, "big")
    if h >= order:
        h -= order
    x = priv.to_bytes(32, "big")
    h1 = h.to_bytes(32, "big")
    v = _ONE32                                            # step b
    k = HmacKey(_ZERO32)                                  # step c
    k = HmacKey(k.mac(v, b"\x00", x, h1))                 # step d
    v = k.mac(v)                                          # step e
    idle()
    k = HmacKey(k.mac(v, b"\x01", x, h1))                 # step f
    v = k.mac(v)                                          # step g
    idle()
    while True:                                           # step h (tlen = qlen: one block)
        v = k.mac(v)
        cand = int.from_bytes(v, "big")
        if 1 <= cand < order:
            yield cand
        k = HmacKey(k.mac(v, b"\x00"))
        v = k.mac(v)
