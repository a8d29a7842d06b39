# ECDSA P-256 on the device: RFC 6979 / RFC 4231 vectors, byte-for-byte agreement with
# python-ecdsa, verification, point validation and strict DER. Runs on CPython and MicroPython.
from binascii import hexlify, unhexlify
from hashlib import sha256

from support.fwtest import raises
from ledger import der, p256, rfc6979

# RFC 6979 appendix A.2.5 (ECDSA, 256 bits, prime field), private key and public key.
RFC_X = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC_UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
RFC_UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
# (message, k, r, s) for SHA-256.
RFC_SHA256 = (
    (b"sample",
     0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
     0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
     0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8),
    (b"test",
     0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
     0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
     0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083),
)

# RFC 4231 section 4: HMAC-SHA-256 test cases 1, 2, 3, 4, 6, 7 (key, data, mac).
_LONG_KEY = b"\xaa" * 131
RFC4231 = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (_LONG_KEY, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (_LONG_KEY, b"This is a test using a larger than block-size key and a larger than "
                b"block-size data. The key needs to be hashed before being used by the HMAC "
                b"algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)


def _i(h):
    return int(h, 16)


def load_vectors(path):
    import json
    with open(path) as f:
        return json.load(f)


def test_hmac_sha256_rfc4231_vectors():
    for key, data, mac in RFC4231:
        assert hexlify(rfc6979.hmac_sha256(key, data)).decode() == mac
    # The keyed object is reusable and takes the message in parts.
    k = rfc6979.HmacKey(b"Jefe")
    assert k.mac(b"what do ya ", b"want for nothing?") == k.mac(b"what do ya want for nothing?")


def test_rfc6979_a25_nonces_and_signatures():
    assert p256.public_key(RFC_X) == (RFC_UX, RFC_UY)
    for msg, k, r, s in RFC_SHA256:
        h = sha256(msg).digest()
        gen = rfc6979.nonces(RFC_X, h, p256.N)
        assert next(gen) == k
        assert p256.sign_digest(RFC_X, h) == (r, s)
        assert p256.sign_digest(RFC_X, h, blind=0x1234567) == (r, s)   # blinding changes nothing
        assert p256.verify_digest((RFC_UX, RFC_UY), h, r, s)


def test_rfc6979_calls_idle_between_its_key_updates():
    """The signer's safety hook runs inside the nonce's HMACs too (docs/firmware.md)."""
    h = sha256(b"sample").digest()
    calls = []
    k = next(rfc6979.nonces(RFC_X, h, p256.N, lambda: calls.append(1)))
    assert k == next(rfc6979.nonces(RFC_X, h, p256.N)) and len(calls) >= 2


def test_signatures_equal_python_ecdsa_byte_for_byte(p256_vectors):
    p256_vectors = load_vectors(p256_vectors)
    for v in p256_vectors["sign"]:
        d = _i(v["d"])
        q = p256.public_key(d)
        assert q == (_i(v["qx"]), _i(v["qy"]))
        h = sha256(unhexlify(v["msg"])).digest()
        r, s = p256.sign_digest(d, h)
        assert (r, s) == (_i(v["r"]), _i(v["s"]))
        assert der.encode_sig(r, s) == unhexlify(v["der"])
        assert p256.verify_digest(q, h, r, s)


def test_public_keys_for_edge_scalars(p256_vectors):
    p256_vectors = load_vectors(p256_vectors)
    # Scalars whose comb columns are all ones, all zeros, near n: every table path is used.
    for v in p256_vectors["pub"]:
        assert p256.public_key(_i(v["d"])) == (_i(v["qx"]), _i(v["qy"]))
    assert p256.public_key(1) == (p256.GX, p256.GY)
    assert p256.public_key(p256.N - 1) == (p256.GX, p256.P - p256.GY)
    for bad in (0, p256.N, p256.N + 1, -1):
        raises(p256.P256Error, p256.public_key, bad)


def test_verify_accepts_signatures_made_elsewhere(p256_vectors):
    p256_vectors = load_vectors(p256_vectors)
    # Random-nonce signatures by `cryptography`: verification does not depend on RFC 6979.
    for v in p256_vectors["foreign"]:
        q = (_i(v["qx"]), _i(v["qy"]))
        r, s = der.decode_sig(unhexlify(v["der"]))
        h = sha256(unhexlify(v["msg"])).digest()
        assert p256.verify_digest(q, h, r, s)
        assert p256.verify_digest(q, h, r, p256.N - s)   # ECDSA accepts both s and n - s


def test_verify_rejects_tampering(p256_vectors):
    p256_vectors = load_vectors(p256_vectors)
    v = p256_vectors["sign"][3]
    q = (_i(v["qx"]), _i(v["qy"]))
    msg = unhexlify(v["msg"]) or b""
    h = sha256(msg).digest()
    r, s = _i(v["r"]), _i(v["s"])
    n = p256.N
    assert p256.verify_digest(q, h, r, s)
    assert not p256.verify_digest(q, sha256(msg + b"x").digest(), r, s)
    assert not p256.verify_digest(q, h, r ^ 1, s)
    assert not p256.verify_digest(q, h, r, s ^ 1)
    assert not p256.verify_digest(q, h, s, r)
    other = p256_vectors["sign"][4]
    assert not p256.verify_digest((_i(other["qx"]), _i(other["qy"])), h, r, s)
    for rr, ss in ((0, s), (r, 0), (n, s), (r, n), (r + n, s), (-r, s)):
        assert not p256.verify_digest(q, h, rr, ss)
    raises(p256.P256Error, p256.verify_digest, q, h[:31], r, s)


def test_invalid_points_rejected():
    g = (p256.GX, p256.GY)
    p256.check_point(g)
    for bad in ((p256.GX, p256.GY + 1), (p256.GX + p256.P, p256.GY), (0, 0), (0, 1),
                (p256.GX, p256.P - p256.GY + p256.P), (-p256.GX, p256.GY), (1,), None):
        raises(p256.P256Error, p256.check_point, bad)
        if bad and len(bad) == 2:
            raises(p256.P256Error, p256.verify_digest, bad, b"\x00" * 32, 1, 1)
    enc = p256.encode_point(g)
    assert len(enc) == 65 and p256.decode_point(enc) == g
    for bad in (enc[:64], b"\x02" + enc[1:33], b"\x00", b"\x03" + enc[1:],
                enc[:64] + bytes((enc[64] ^ 1,)), b"\x04" + b"\xff" * 64):
        raises(p256.P256Error, p256.decode_point, bad)


def test_der_signature_round_trip_and_strict_rejects():
    n = p256.N
    for r, s in ((1, 1), (0x7F, 0x80), (n - 1, n - 1), (1 << 255, (1 << 247) + 5),
                 (0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716, 0x1234)):
        enc = der.encode_sig(r, s)
        assert der.decode_sig(enc) == (r, s)
        assert der.decode_raw(der.encode_raw(r, s)) == (r, s)
    assert der.encode_sig(0x80, 1) == b"\x30\x07\x02\x02\x00\x80\x02\x01\x01"
    good = der.encode_sig(0x80, 1)
    bad = (
        b"",
        b"\x31" + good[1:],                                  # SET, not SEQUENCE
        b"\x30\x08" + good[2:],                              # length too long
        b"\x30\x06" + good[2:],                              # length too short
        good + b"\x00",                                      # trailing byte
        b"\x30\x81\x07" + good[2:],                          # long-form length
        b"\x30\x08\x02\x03\x00\x00\x80\x02\x01\x01",         # non-minimal INTEGER
        b"\x30\x07\x02\x02\x00\x01\x02\x01\x01",             # non-minimal INTEGER
        b"\x30\x06\x02\x01\x80\x02\x01\x01",                 # negative INTEGER
        b"\x30\x06\x02\x01\x00\x02\x01\x01",                 # r = 0
        b"\x30\x06\x03\x01\x01\x02\x01\x01",                 # BIT STRING, not INTEGER
        b"\x30\x05\x02\x00\x02\x01\x01",                     # empty INTEGER
        der.encode_sig(1, 1)[:-1] + b"\x00",                 # s = 0
        b"\x30\x26\x02\x21\x00" + n.to_bytes(32, "big") + b"\x02\x01\x01",   # r = n
    )
    for b in bad:
        raises(der.DerError, der.decode_sig, b)
    for r, s in ((0, 1), (1, n)):
        raises(der.DerError, der.encode_sig, r, s)
    raises(der.DerError, der.decode_raw, b"\x00" * 64)
    raises(der.DerError, der.decode_raw, b"\x01" * 63)


def test_spki_round_trip_and_rejects():
    q = p256.public_key(RFC_X)
    spki = der.encode_spki(q)
    assert len(spki) == 91 and spki[:2] == b"\x30\x59"
    assert der.decode_spki(spki) == q
    # Off-curve point, wrong curve OID (P-384's 1.3.132.0.34 spelled into the same length),
    # compressed point, truncation.
    raises(der.DerError, der.decode_spki, spki[:-1] + bytes((spki[-1] ^ 1,)))
    p384_oid = b"\x2b\x81\x04\x00\x22\x00\x00\x00"
    raises(der.DerError, der.decode_spki, spki[:17] + p384_oid + spki[25:])
    raises(der.DerError, der.decode_spki, spki[:26] + b"\x02" + spki[27:])
    raises(der.DerError, der.decode_spki, spki[:90])


def test_verify_handles_equal_and_opposite_partial_points():
    # With public key G (d = 1) and digest e = r, verification computes u1*G + u2*G with
    # u1 = u2: the two halves are the same point and the sum must take the doubling path.
    n = p256.N
    k = 0x5A5A5A5A0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF01234567
    x, y, z = p256._mul_base(k)
    r = p256._to_affine(x, y, z)[0] % n
    e = r.to_bytes(32, "big")
    s = 2 * r * p256._inv(k, n) % n          # s = k^-1 (e + r*d) with e = r, d = 1
    g = (p256.GX, p256.GY)
    assert p256.verify_digest(g, e, r, s)
    assert not p256.verify_digest(g, e, r, (s + 1) % n)
    # e = -r: u1*G + u2*G is the point at infinity; rejected, not an exception.
    e_neg = ((n - r) % n).to_bytes(32, "big")
    assert not p256.verify_digest(g, e_neg, r, s)


def test_point_addition_special_cases():
    # P + P takes the doubling branch, P + (-P) is infinity, infinity is the identity.
    g1 = (p256.GX, p256.GY, 1)
    two = p256._to_affine(*p256._dbl(*g1))
    assert p256._to_affine(*p256._add(p256.GX, p256.GY, 1, p256.GX, p256.GY, 1)) == two
    assert p256._to_affine(*p256._madd(p256.GX, p256.GY, 1, p256.GX, p256.GY)) == two
    assert p256._add(p256.GX, p256.GY, 1, p256.GX, p256.P - p256.GY, 1)[2] == 0
    assert p256._madd(0, 1, 0, p256.GX, p256.GY) == g1
    assert p256._to_affine(*p256._mul_point(3, p256.GX, p256.GY)) == p256.public_key(3)
    assert p256._to_affine(*p256._mul_point(p256.N - 1, p256.GX, p256.GY)) == \
        (p256.GX, p256.P - p256.GY)
    raises(p256.P256Error, p256._to_affine, 0, 1, 0)


def test_rfc6979_skips_out_of_range_candidates_like_python_ecdsa(p256_vectors):
    p256_vectors = load_vectors(p256_vectors)
    for v in p256_vectors["nonce"]:
        gen = rfc6979.nonces(_i(v["d"]), unhexlify(v["digest"]), _i(v["order"]))
        assert [next(gen) for _ in v["k"]] == [_i(k) for k in v["k"]]
    raises(ValueError, next, rfc6979.nonces(1, b"\x00" * 31, p256.N))


def test_glitched_signing_releases_no_signature():
    # Fault injection in software: a flipped bit in the comb table (k*G leaves the curve) and
    # a wrong nonce inverse (s inconsistent with k). Either would leak the key next to a good
    # signature of the same message; sign_digest must refuse instead.
    h = sha256(b"sample").digest()
    table, inv = p256._G.table, p256._inv
    try:
        bad = bytearray(table)
        for o in range(5, len(bad), 64):
            bad[o] ^= 0x10
        p256._G.table = bytes(bad)
        raises(p256.FaultError, p256.sign_digest, RFC_X, h)
        p256._G.table = table
        p256._inv = lambda a, m: inv(a, m) + (1 if m == p256.N else 0)
        raises(p256.FaultError, p256.sign_digest, RFC_X, h)
    finally:
        p256._G.table, p256._inv = table, inv
    assert p256.sign_digest(RFC_X, h) == RFC_SHA256[0][2:]


def test_wrong_types_get_clear_errors():
    for bad in ("x" * 32, None, 12):
        raises(p256.P256Error, p256.sign_digest, RFC_X, bad)
        raises(p256.P256Error, p256.verify_digest, (RFC_UX, RFC_UY), bad, 1, 1)
        raises(p256.P256Error, p256.decode_point, bad)
        raises(der.DerError, der.decode_sig, bad)
        raises(der.DerError, der.decode_spki, bad)
        raises(der.DerError, der.decode_raw, bad)
    assert not p256.verify_digest((RFC_UX, RFC_UY), b"\x00" * 32, "1", 1)


def test_verifier_with_its_own_comb_agrees_with_verify_digest(p256_vectors):
    p256_vectors = load_vectors(p256_vectors)
    for teeth, vecs in ((6, p256_vectors["sign"][:6] + p256_vectors["foreign"]),
                        (4, p256_vectors["sign"][6:8]), (8, p256_vectors["sign"][8:9])):
        for v in vecs:
            q = (_i(v["qx"]), _i(v["qy"]))
            ver = p256.Verifier(q, teeth)
            h = sha256(unhexlify(v["msg"])).digest()
            r, s = der.decode_sig(unhexlify(v["der"]))
            assert ver.verify(h, r, s) and p256.verify_digest(q, h, r, s)
            assert not ver.verify(sha256(unhexlify(v["msg"]) + b"!").digest(), r, s)
            assert not ver.verify(h, r, (s + 1) % p256.N)
            assert not ver.verify(h, 0, s)
    raises(p256.P256Error, p256.Verifier, (p256.GX, p256.GY + 1))
    raises(p256.P256Error, p256.Verifier, (p256.GX, p256.GY), 9)
    # The crafted doubling-path signature (see above) through the comb path too.
    g = p256.Verifier((p256.GX, p256.GY))
    k = 0x5A5A5A5A0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF01234567
    r = p256._to_affine(*p256._mul_base(k))[0] % p256.N
    assert g.verify(r.to_bytes(32, "big"), r, 2 * r * p256._inv(k, p256.N) % p256.N)


def test_modular_inverse_for_both_small_int_widths():
    # Lehmer's inner loop width depends on the board's small ints (28 bits on the ESP32,
    # 60 on 64-bit hosts); both must give exact inverses, for short and long inputs.
    saved = p256._LB, p256._LTOP
    try:
        for lb in (28, 60, 12):
            p256._LB, p256._LTOP = lb, 1 << lb
            for m in (p256.P, p256.N):
                x = 0x1234567
                for i in range(150):
                    x = (x * 0x9E3779B97F4A7C15F39CC0605CEDC834 + 0x5DEECE66D) % m
                    a = x if i % 3 else (x >> (i % 250)) or 1
                    assert p256._inv(a, m) * a % m == 1
                for a in (1, 2, m - 1, 1 << 255, (1 << 64) + 1, m + 5):
                    assert p256._inv(a, m) * a % m == 1
            raises(p256.P256Error, p256._inv, p256.N, p256.N)
            raises(p256.P256Error, p256._inv, 0, p256.P)
    finally:
        p256._LB, p256._LTOP = saved
