# HMAC-SHA256 (RFC 2104) over hashlib.sha256, for MicroPython, which has no hmac module.
# Checked against RFC 4231's test vectors on both interpreters (tests/firmware/ledger).
#
#   key = HmacKey(secret)            # pads computed once per key
#   key.mac(message) -> 32 bytes     # one pair of SHA-256 runs, no key schedule per message
#   key.mac(head, rest)              # the MAC of head + rest without copying them together
#   equal(a, b)                      # comparison whose time does not depend on where a and b differ
import hashlib

_BLOCK = 64


class HmacKey:
    def __init__(self, key):
        key = bytes(key)
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(len(key)):
            ipad[i] = key[i]
            opad[i] = key[i]
        for i in range(_BLOCK):
            ipad[i] ^= 0x36
            opad[i] ^= 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)

    def mac(self, message, more=None):
        """HMAC of message (+ more, when given: the two are hashed as one, never joined)."""
        inner = hashlib.sha256(self._ipad)
        inner.update(message)
        if more is not None:
            inner.update(more)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def hmac_sha256(key, message):
    return HmacKey(key).mac(message)


def equal(a, b):
    """a == b for two byte strings, looking at every byte (no early exit on a difference)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
