# ledger.hmac256 against RFC 4231 section 4 (HMAC-SHA-256 test cases 1-7), on both interpreters.
from binascii import hexlify, unhexlify

from ledger.hmac256 import HmacKey, equal, hmac_sha256

# (key, data, HMAC-SHA-256), RFC 4231 sections 4.2-4.8.
_LONG_KEY = b"\xaa" * 131
VECTORS = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (unhexlify("0102030405060708090a0b0c0d0e0f10111213141516171819"), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (_LONG_KEY, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (_LONG_KEY, b"This is a test using a larger than block-size key and a larger than block-size"
                b" data. The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)


def test_rfc4231_vectors():
    for key, data, want in VECTORS:
        assert hexlify(hmac_sha256(key, data)).decode() == want, want


def test_rfc4231_case5_truncated_to_128_bits():
    # 4.6: only the first 128 bits are specified.
    got = hmac_sha256(b"\x0c" * 20, b"Test With Truncation")[:16]
    assert hexlify(got).decode() == "a3b6167473100ee06e0c796c2955552b"


def test_a_key_object_gives_the_same_mac_every_time():
    k = HmacKey(b"Jefe")
    a = k.mac(b"what do ya want for nothing?")
    assert k.mac(b"what do ya want for nothing?") == a
    assert k.mac(b"what do ya want for nothing!") != a


def test_equal_compares_whole_strings():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")
    assert equal(b"", b"")
