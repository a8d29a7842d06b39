# ECDSA over NIST P-256 (FIPS 186-4 / SEC 2 secp256r1) with SHA-256: signing, verification,
# public keys and point validation, for MicroPython on the ESP32 and for CPython.
#
# Why it is shaped this way (every big-int operation allocates on MicroPython, and the
# ESP32 runs them ~200x slower than a PC):
# - Jacobian coordinates, so the only field inversion is the final one to affine x.
# - The base point is multiplied with a fixed-base comb whose table was computed at build time
#   (ledger/p256_table.py, made by host_tools/devtools/gen_p256_table.py): as a bytes constant it sits in
#   flash when frozen into the firmware, and costs no boot time.
# - Formulas are written out inline with one `% P` per product, no helper calls in the loop.
# - Inversions use the extended Euclidean algorithm: on MicroPython it is much faster than
#   pow(x, p - 2, p), and pow(x, -1, m) silently returns 0 there.
import sys

from ledger import p256_table as _tab
from ledger.rfc6979 import nonces

# Curve parameters (SEC 2 v2, section 2.4.2 / FIPS 186-4 D.1.2.3).
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


# The safety hook: a callable the app installs (set_idle) so that a signature or a verification
# never holds the charger's safety loop for long. It is called between field operations (one
# comb step, one doubling, one Lehmer step): on an ESP32 each is ~1-2 ms of work. It must not
# sign or verify itself. None: nothing is called.
_idle = None


def _none():
    pass


def set_idle(fn):
    """Install fn (no arguments) as the hook called between field operations (None: no hook);
    returns the hook it replaces, to be put back when the operation is done."""
    global _idle
    prev = _idle
    _idle = fn
    return prev


class P256Error(ValueError):
    """A key, point, scalar or signature that is not valid for P-256."""


class FaultError(P256Error):
    """A signing computation failed its internal consistency check (a glitch or a bug); no
    signature was released. With deterministic nonces one faulty signature next to a good one
    for the same message would reveal the key, so none leaves."""


# Lehmer's extended Euclid (Knuth, TAOCP vol. 2, 4.5.2, algorithm L): the quotients are
# found from the leading _LB bits in small integers (no allocation), and the big numbers are
# updated once per ~_LB/2 bits. 30% faster than plain Euclid here, and a quarter of the
# garbage. _LB keeps the inner values small ints: 31-bit on the ESP32, 63-bit on 64-bit hosts.
_LB = 60 if getattr(sys, "maxsize", 0) > (1 << 40) else 28
_LTOP = 1 << _LB


def _inv(a, m):
    """a^-1 mod m for a not divisible by m, m odd prime (P or N)."""
    r0, r1 = m, a % m
    s0, s1 = 0, 1               # r0 = s0*a, r1 = s1*a (mod m)
    shift = 256 - _LB
    idle = _idle or _none
    while r1 >= _LTOP:
        idle()
        x = r0 >> shift         # r0 only shrinks, so x < 2^_LB; slide shift down to keep
        n = 0                   # the top _LB bits
        v = x
        while v:
            v >>= 1
            n += 1
        if n < _LB and shift:
            shift = max(0, shift - (_LB - n))
            x = r0 >> shift
        y = r1 >> shift
        aa, bb, cc, dd = 1, 0, 0, 1
        idle()  # the top bits found; now the simulated quotients
        while y + cc and y + dd:
            q = (x + aa) // (y + cc)
            if q != (x + bb) // (y + dd):
                break
            aa, cc = cc, aa - q * cc
            bb, dd = dd, bb - q * dd
            x, y = y, x - q * y
        if bb:
            r0, r1 = aa * r0 + bb * r1, cc * r0 + dd * r1
            idle()  # the remainders and the cofactors: one hook each
            s0, s1 = aa * s0 + bb * s1, cc * s0 + dd * s1
        else:                   # no quotient could be simulated: one full step
            q, r = divmod(r0, r1)
            r0, r1 = r1, r
            s0, s1 = s1, s0 - q * s1
    while r1:
        q, r = divmod(r0, r1)
        r0, r1 = r1, r
        s0, s1 = s1, s0 - q * s1
        idle()
    if r0 != 1:
        raise P256Error("not invertible")
    return s0 % m


# ---- point arithmetic (Jacobian X, Y, Z: x = X/Z^2, y = Y/Z^3; Z == 0 is infinity) ----------

def _dbl(x, y, z):
    # dbl-2001-b for a = -3 (Bernstein-Lange EFD): 3M + 5S.
    p = P
    if not z or not y:
        return 0, 1, 0
    d = z * z % p
    g = y * y % p
    b = x * g % p
    a = 3 * (x - d) * (x + d) % p
    x3 = (a * a - 8 * b) % p
    z3 = 2 * y * z % p
    y3 = (a * (4 * b - x3) - 8 * g * g) % p
    return x3, y3, z3


def _madd(x, y, z, x2, y2):
    # Jacobian + affine (madd-2004-hmv shape): 8M + 3S.
    p = P
    if not z:
        return x2, y2, 1
    zz = z * z % p
    h = (x2 * zz - x) % p
    r = (y2 * z * zz - y) % p
    if not h:
        if not r:
            return _dbl(x2, y2, 1)
        return 0, 1, 0
    hh = h * h % p
    hhh = h * hh % p
    v = x * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - y * hhh) % p, z * h % p


def _add(x1, y1, z1, x2, y2, z2):
    # Full Jacobian addition (add-1998-cmo-2): 12M + 4S. Verification, and the comb's
    # exceptional case (equal x).
    p = P
    if not z1:
        return x2, y2, z2
    if not z2:
        return x1, y1, z1
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if not h:
        if not r:
            return _dbl(x1, y1, z1)
        return 0, 1, 0
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - s1 * hhh) % p, z1 * z2 * h % p


def _to_affine(x, y, z):
    if not z:
        raise P256Error("point at infinity")
    zi = _inv(z, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


# ---- signed comb: fixed-base k*P from a table --------------------------------------------
# Table layout: see host_tools/devtools/gen_p256_table.py. The scalar is recoded so every digit is +1 or
# -1 (Hamburg 2012): for odd k, k = sum over i < L of (2*b_i - 1) * 2^i with
# b = (k + 2^L - 1) / 2. An even k is replaced by n - k (odd) and the result negated. Scalar bit
# (i*T + j)*D + c is tooth i of table j in column c; each column adds one table point per
# table, never skips (a fixed sequence of operations whatever the key), and needs only the half
# of the sign patterns whose top tooth is +1 (the others are negations: y -> p - y).
#
# Gathering the indices is a bit-matrix transpose (tooth i, column c -> bit i of the index for
# column c), read from b's bytes: small-int work only. (Big-int lane tricks were ~20% faster
# here but left 7-12 KB of garbage per scalar on 32 bits, and 1-1.5 KB of lane constants per
# comb in the heap.) The positions read depend only on W, T, D: no branch and no address
# depends on the secret nonce's bits.


class _Comb:
    def __init__(self, table, w, t, d):
        if not 2 <= w <= 8 or w * t * d < 256 or len(table) != t << (w + 5):
            raise P256Error("comb table does not match W=%d T=%d D=%d" % (w, t, d))
        self.table, self.w, self.t, self.d = table, w, t, d

    def indices(self, k):
        """Table indices for odd k: column D-1 first, tables 0..T-1 within a column."""
        w, t, d = self.w, self.t, self.d
        span = t * d                # from one tooth of a table to the next
        bits = (k + (1 << (w * span)) - 1) >> 1
        bb = bits.to_bytes((w * span >> 3) + 1, "little")
        out = bytearray(d * t)
        o = 0
        idle = _idle or _none
        for c in range(d - 1, -1, -1):
            if not c & 7:
                idle()
            for j in range(t):
                n = j * d + c
                v = 0
                for i in range(w):
                    v |= (bb[n >> 3] >> (n & 7) & 1) << i
                    n += span
                out[o] = v
                o += 1
        return out

    def mul(self, k):
        """k*P in Jacobian coordinates (X, Y, Z), for 0 < k < N. Field formulas inlined:
        this loop is the signer's hot path (31 mixed additions, 15 doublings for G)."""
        p = P
        neg = not k & 1
        if neg:
            k = N - k
        tab = self.table
        fb = int.from_bytes
        t = self.t
        half = 1 << (self.w - 1)
        low = half - 1
        tabsize = half << 6
        x = y = z = 0
        n = 0
        idle = _idle or _none
        for idx in self.indices(k):
            idle()
            if n == t:
                n = 0
                # dbl-2001-b, a = -3 (Bernstein-Lange EFD): 3M + 5S.
                d = z * z % p
                g = y * y % p
                bb = x * g % p
                a = 3 * (x - d) * (x + d) % p
                z = 2 * y * z % p
                x = (a * a - 8 * bb) % p
                y = (a * (4 * bb - x) - 8 * g * g) % p
                idle()  # the doubling and the addition: one hook each
            o = (n * tabsize) + ((idx & low) << 6 if idx & half else ((~idx) & low) << 6)
            x2 = fb(tab[o:o + 32], "big")
            y2 = fb(tab[o + 32:o + 64], "big")
            if not idx & half:
                y2 = p - y2
            n += 1
            if not z:
                x, y, z = x2, y2, 1
                continue
            # madd (Jacobian + affine): 8M + 3S.
            zz = z * z % p
            h = (x2 * zz - x) % p
            r = (y2 * z * zz - y) % p
            if not h:
                # Same x: the sum is a doubling or infinity. Practically unreachable for a
                # valid scalar, but handled exactly by the general addition.
                x, y, z = _add(x, y, z, x2, y2, 1)
                continue
            hh = h * h % p
            hhh = h * hh % p
            v = x * hh % p
            z = z * h % p
            x = (r * r - hhh - 2 * v) % p
            y = (r * (v - x) - y * hhh) % p
        if neg:
            y = (p - y) % p
        return x, y, z


_G = _Comb(_tab.TABLE, _tab.W, _tab.T, _tab.D)


def _mul_base(k):
    """k*G in Jacobian coordinates, for 0 < k < N."""
    return _G.mul(k)


def _batch_affine(points, pre=None, out=None):
    """Jacobian points (none at infinity) to affine with one shared inversion (Montgomery's
    trick: prefix products of the Z's, one inversion, then unwind). pre (len + 1) and out
    (len) may be passed in, allocated before the arithmetic fragmented the heap."""
    m = len(points)
    pre = pre or [0] * (m + 1)
    out = out or [None] * m
    pre[0] = 1
    idle = _idle or _none
    for i in range(m):
        idle()
        pre[i + 1] = pre[i] * points[i][2] % P
    if not pre[m]:
        raise P256Error("point at infinity")
    inv = _inv(pre[m], P)
    for i in range(m - 1, -1, -1):
        idle()
        zi = inv * pre[i] % P
        inv = inv * points[i][2] % P
        zi2 = zi * zi % P
        out[i] = (points[i][0] * zi2 % P, points[i][1] * zi2 * zi % P)
    return out


def _point_comb(px, py, w):
    """A signed comb (T = 1) for an arbitrary point: the same layout as G's table, built on
    the device. Entry idx = B(w-1) + sum over i < w-1 of +-B(i) with B(i) = 2^(i*D) * P, made
    from entry idx without its lowest set bit i by adding 2*B(i)."""
    d = -(-256 // w)
    m = 1 << (w - 1)
    # Entries are made _CHUNK at a time, turned affine with one shared inversion and written
    # into the table; an earlier entry is read back from the table. All 128 entries of an
    # 8-tooth comb alive at once as Jacobian big-int triples needed over 75 KiB on a 32-bit
    # heap; a chunk needs a few KiB. Every buffer is allocated before the arithmetic: the
    # big-int garbage that follows leaves the heap too fragmented for a later multi-KiB block.
    chunk = m if m < _CHUNK else _CHUNK
    table = bytearray(m << 6)
    jac = [None] * chunk
    pre = [0] * (chunk + 1)
    base = []                   # B(i) and 2*B(i), from one chain of doublings
    x, y, z = px, py, 1
    idle = _idle or _none
    for j in range((w - 1) * d + 1):
        idle()
        if j % d < 2:
            base.append((x, y, z))
        x, y, z = _dbl(x, y, z)
    aff = _batch_affine(base)
    base = None
    b = [aff[2 * i] for i in range(w)]
    b2 = [aff[2 * i + 1] for i in range(w - 1)]
    aff = None
    x, y, z = b[w - 1][0], b[w - 1][1], 1
    for i in range(w - 1):
        idle()
        x, y, z = _madd(x, y, z, b[i][0], P - b[i][1])
    jac[0] = (x, y, z)
    fb = int.from_bytes
    for start in range(0, m, chunk):
        for k in range(1 if start == 0 else 0, chunk):
            idle()
            idx = start + k
            i = 0
            while not idx >> i & 1:
                i += 1
            src = idx ^ (1 << i)
            if src >= start:
                e = jac[src - start]
            else:
                o = src << 6
                e = (fb(table[o:o + 32], "big"), fb(table[o + 32:o + 64], "big"), 1)
            jac[k] = _madd(e[0], e[1], e[2], b2[i][0], b2[i][1])
        _batch_affine(jac, pre, jac)
        o = start << 6
        for ex, ey in jac:
            table[o:o + 32] = ex.to_bytes(32, "big")
            table[o + 32:o + 64] = ey.to_bytes(32, "big")
            o += 64
    return _Comb(table, w, 1, d)


_CHUNK = 16                     # comb entries made per shared inversion


_WNAF = 5                       # window for arbitrary points: digits +-1, +-3, .., +-15


_DIGITS = bytearray(260)        # wNAF digits of a scalar below 2^256 (257 at most)


def _wnaf(k):
    """Width-5 NAF digits of k > 0 into _DIGITS (digit + 16 each), least significant first
    (at most one non-zero digit in any 5 consecutive positions, so about 256/6 additions);
    returns how many. One buffer for every verification: a growing list asked the heap for a
    2 KB block per verification, which a fragmented 112 KB heap could refuse."""
    out = _DIGITS
    n = 0
    full = 1 << _WNAF
    half = full >> 1
    idle = _idle or _none
    while k:
        if not n & 31:
            idle()
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        out[n] = d + 16
        n += 1
        k >>= 1
    return n


def _odd_multiples(px, py):
    """P, 3P, .., 15P as affine points (one shared inversion), so the main loop can use the
    cheaper mixed addition."""
    x2, y2, z2 = _dbl(px, py, 1)
    two = _to_affine(x2, y2, z2)
    jac = [(px, py, 1)]
    idle = _idle or _none
    for _ in range((1 << (_WNAF - 2)) - 1):
        idle()
        a = jac[-1]
        jac.append(_madd(a[0], a[1], a[2], two[0], two[1]))
    return _batch_affine(jac)


def _mul_point(k, px, py):
    """k*(px, py) for an arbitrary affine point (verification only), Jacobian result."""
    p = P
    tbl = _odd_multiples(px, py)
    n = _wnaf(k)
    digits = _DIGITS
    x = y = z = 0
    idle = _idle or _none
    for i in range(n - 1, -1, -1):
        idle()
        if z:
            # dbl-2001-b, a = -3, inlined (about 256 of these per verification)
            d = z * z % p
            g = y * y % p
            bb = x * g % p
            a = 3 * (x - d) * (x + d) % p
            z = 2 * y * z % p
            x = (a * a - 8 * bb) % p
            y = (a * (4 * bb - x) - 8 * g * g) % p
        dg = digits[i] - 16
        if dg:
            if z:                       # the doubling and the addition: one hook each
                idle()
            x2, y2 = tbl[(dg if dg > 0 else -dg) >> 1]
            if dg < 0:
                y2 = p - y2
            x, y, z = _madd(x, y, z, x2, y2)
    return x, y, z


# ---- keys, points ------------------------------------------------------------------------

def _check_digest(digest):
    if not isinstance(digest, (bytes, bytearray, memoryview)) or len(digest) != 32:
        raise P256Error("digest must be 32 bytes")


def check_scalar(d):
    if not isinstance(d, int) or not 0 < d < N:
        raise P256Error("private key out of range")


def public_key(priv):
    """The affine public point (x, y) of private key priv (an int in 1..N-1)."""
    check_scalar(priv)
    return _to_affine(*_mul_base(priv))


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x - 3) * x - B) % P == 0


def check_point(pub):
    """Raise P256Error unless pub is an affine (x, y) on the curve (cofactor 1: that suffices)."""
    try:
        x, y = pub
    except (TypeError, ValueError):
        raise P256Error("public key must be (x, y)")
    if not isinstance(x, int) or not isinstance(y, int) or not on_curve(x, y):
        raise P256Error("public key is not a point on P-256")


def encode_point(pub):
    """SEC 1 uncompressed encoding: 0x04 || x || y (65 bytes)."""
    return b"\x04" + pub[0].to_bytes(32, "big") + pub[1].to_bytes(32, "big")


def decode_point(data):
    """Parse and validate a SEC 1 uncompressed point (65 bytes)."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != 65 or data[0] != 4:
        raise P256Error("expected a 65-byte uncompressed point")
    pub = (int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:65], "big"))
    check_point(pub)
    return pub


# ---- ECDSA (FIPS 186-4 section 6.4 / SEC 1 section 4.1) ----------------------------------

def sign_digest(priv, digest, blind=None):
    """Sign a 32-byte SHA-256 digest; returns (r, s). The nonce is RFC 6979's, so the result
    equals python-ecdsa's sign_deterministic (no low-S normalisation). blind, if given, is a
    random int that masks the values whose inversion time depends on the nonce: k mod n, and
    k*G's Z coordinate mod p (same result; Euclid's running time no longer follows them).
    Cheap fault checks (k*G on the curve, s*k = e + r*d) guard against glitches (the board sits
    in a public place); they raise FaultError rather than release a faulty signature."""
    check_scalar(priv)
    _check_digest(digest)
    n = N
    e = int.from_bytes(digest, "big")     # hlen = 256 = qlen: no truncation
    for k in nonces(priv, digest, n, _idle or _none):
        (_idle or _none)()                # the nonce's HMACs done
        x, y, z = _mul_base(k)
        if blind:
            bp = blind % P or 1
            zi = _inv(z * bp % P, P) * bp % P
        else:
            zi = _inv(z, P)
        zi2 = zi * zi % P
        x = x * zi2 % P
        if not on_curve(x, y * zi2 * zi % P):
            raise FaultError("k*G is not on the curve")
        r = x % n
        if not r:
            continue
        if blind:
            b = blind % n or 1
            kinv = _inv(k * b % n, n) * b % n
        else:
            kinv = _inv(k, n)
        t = (e + r * priv) % n
        s = kinv * t % n
        if s * k % n != t:
            raise FaultError("s does not match k")
        if s:
            return r, s


def _verify(mul_pub, digest, r, s):
    _check_digest(digest)
    n = N
    if not (isinstance(r, int) and isinstance(s, int) and 0 < r < n and 0 < s < n):
        return False
    e = int.from_bytes(digest, "big")
    w = _inv(s, n)
    u1 = e * w % n
    u2 = r * w % n                  # 0 < u2 < n since r, w are
    if u1:
        x1, y1, z1 = _mul_base(u1)
    else:
        x1, y1, z1 = 0, 1, 0
    x2, y2, z2 = mul_pub(u2)
    idle = _idle or _none
    idle()
    x, y, z = _add(x1, y1, z1, x2, y2, z2)
    idle()
    if not z:
        return False
    # x/z^2 mod n == r without an inversion: x == r*z^2, or (r + n)*z^2 when r + n < P.
    zz = z * z % P
    if x == r * zz % P:
        return True
    return r + n < P and x == (r + n) * zz % P


def verify_digest(pub, digest, r, s):
    """True if (r, s) is a valid signature of the 32-byte digest by public point pub.
    A malformed key raises P256Error; a wrong signature returns False."""
    check_point(pub)
    return _verify(lambda u: _mul_point(u, pub[0], pub[1]), digest, r, s)


class Verifier:
    """Verifier(pub, teeth=6): verification for one key that is used again and again (the
    operator's command key). A signed comb table for the key is built once (2 KiB of heap
    for teeth=6, 8 KiB for 8; building it needs a few KiB more, chunk by chunk), which makes each
    verification about 2-3x faster than
    verify_digest."""

    def __init__(self, pub, teeth=6):
        check_point(pub)
        if not 2 <= teeth <= 8:
            raise P256Error("teeth must be 2..8")
        self.pub = (pub[0], pub[1])
        self._comb = _point_comb(pub[0], pub[1], teeth)

    def verify(self, digest, r, s):
        return _verify(self._comb.mul, digest, r, s)
