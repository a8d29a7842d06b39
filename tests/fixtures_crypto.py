"""P-256 test vectors made on the host by well-kept libraries, for the firmware tests.

`p256_vectors` (session) is the path of a JSON file, so the same vectors reach the firmware
tests on CPython and on MicroPython (each test loads only when it needs them). Integers travel
as hex strings (MicroPython: int(s, 16)). The file holds

  {"sign": [{"d", "qx", "qy", "msg", "r", "s", "der"}...],   python-ecdsa sign_deterministic,
                                                            each also verified by cryptography
   "foreign": [{"qx", "qy", "msg", "der"}...],              random-nonce signatures by
                                                            cryptography (for verification)
   "pub": [{"d", "qx", "qy"}...],                           edge-case scalars (1, n-1, 2^k...)
   "nonce": [{"order", "d", "digest", "k": [...]}...]}       RFC 6979 retries, python-ecdsa
"""
import hashlib
import json
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from ecdsa import NIST256p, SigningKey
from ecdsa.rfc6979 import generate_k
from ecdsa.util import sigencode_der, sigdecode_der

_N = NIST256p.order
_SEED = 6979


def _h(v):
    return "%064x" % v


def _check_with_cryptography(qx, qy, msg, der):
    pub = ec.EllipticCurvePublicNumbers(qx, qy, ec.SECP256R1()).public_key()
    pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))   # raises InvalidSignature


def make_vectors(count=24, seed=_SEED):
    rnd = random.Random(seed)
    sign = []
    for i in range(count):
        d = rnd.randrange(1, _N)
        msg = bytes(rnd.getrandbits(8) for _ in range(rnd.choice((0, 1, 32, 55, 64, 200))))
        sk = SigningKey.from_secret_exponent(d, curve=NIST256p, hashfunc=hashlib.sha256)
        der = sk.sign_deterministic(msg, hashfunc=hashlib.sha256, sigencode=sigencode_der)
        r, s = sigdecode_der(der, _N)
        q = sk.get_verifying_key().pubkey.point
        _check_with_cryptography(q.x(), q.y(), msg, der)
        sign.append({"d": _h(d), "qx": _h(q.x()), "qy": _h(q.y()), "msg": msg.hex(),
                     "r": _h(r), "s": _h(s), "der": der.hex()})
    foreign = []
    for i in range(8):
        key = ec.derive_private_key(rnd.randrange(1, _N), ec.SECP256R1())
        msg = bytes(rnd.getrandbits(8) for _ in range(40))
        der = key.sign(msg, ec.ECDSA(hashes.SHA256()))
        nums = key.public_key().public_numbers()
        foreign.append({"qx": _h(nums.x), "qy": _h(nums.y), "msg": msg.hex(), "der": der.hex()})
    pub = []
    edge = [1, 2, 3, _N - 1, _N - 2, (_N - 1) // 2, 1 << 255, (1 << 128) - 1, (1 << 255) - 1,
            int("ff" * 16, 16) << 120, _N - (1 << 64)]
    edge += [rnd.randrange(1, _N) for _ in range(5)]
    for d in edge:
        q = NIST256p.generator * d
        pub.append({"d": _h(d), "qx": _h(q.x()), "qy": _h(q.y())})
    # RFC 6979 step h.3 (a candidate k outside 1..q-1 is skipped): unreachable with P-256's n,
    # so exercised with a 256-bit order just above 2^255, where about half the candidates
    # fail. python-ecdsa's generate_k(retry_gen=i) is the i-th accepted k.
    order = (1 << 255) + 0x1D
    nonce = []
    for _ in range(3):
        d = rnd.randrange(1, order)
        digest = hashlib.sha256(bytes(rnd.getrandbits(8) for _ in range(20))).digest()
        ks = [generate_k(order, d, hashlib.sha256, digest, retry_gen=i) for i in range(4)]
        nonce.append({"order": _h(order), "d": _h(d), "digest": digest.hex(),
                      "k": [_h(k) for k in ks]})
    return {"sign": sign, "foreign": foreign, "pub": pub, "nonce": nonce}


@pytest.fixture(scope="session")
def p256_vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("crypto") / "p256_vectors.json"
    path.write_text(json.dumps(make_vectors()))
    return str(path)
