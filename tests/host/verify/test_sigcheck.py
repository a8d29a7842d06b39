"""The validator's two signature backends (python-ecdsa reference, cryptography fast path) agree
on signatures made by the firmware's own KeyStore: valid ones, forged ones, malformed ones."""
import hashlib
import random

import ecdsa
import pytest
from ecdsa.util import sigdecode_der, sigencode_der

from host_tools.verify import sigcheck
from ledger.keys import KeyStore


@pytest.fixture(scope="module")
def firmware_key(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("key") / "key.bin")
    rng = random.Random(7)
    return KeyStore(path, urandom=lambda n: bytes(rng.getrandbits(8) for _ in range(n)))


def _cases(ks):
    """(message, signature, public key DER) triples: valid ones and many kinds of bad ones."""
    rng = random.Random(1)
    pub = ks.public_key_der()
    other = ecdsa.SigningKey.generate(curve=ecdsa.NIST256p, entropy=lambda n: bytes(rng.getrandbits(8) for _ in range(n)))
    other_pub = other.get_verifying_key().to_der()
    out = []
    for i in range(12):
        msg = b"OCMF|{\"FV\":\"1.0\",\"PG\":\"T%d\"}" % i + bytes(rng.getrandbits(8) for _ in range(i * 7))
        sig = ks.sign(msg)
        r, s = sigdecode_der(sig, ecdsa.NIST256p.order)
        n = ecdsa.NIST256p.order
        out.append(("valid", msg, sig, pub, True))
        out.append(("other message", msg + b" ", sig, pub, False))
        out.append(("flipped byte", msg, sig[:-3] + bytes([sig[-3] ^ 0x40]) + sig[-2:], pub, False))
        out.append(("other key", msg, sig, other_pub, False))
        out.append(("s negated", msg, sigencode_der(r, n - s, n), pub, True))   # ECDSA malleability: both accept
        out.append(("r+1", msg, sigencode_der(r + 1, s, n), pub, False))
        out.append(("s=0", msg, sigencode_der(r, 0, n), pub, False))
        out.append(("r=n", msg, sigencode_der(n, s, n), pub, False))
        out.append(("truncated", msg, sig[:-1], pub, False))
        out.append(("trailing junk", msg, sig + b"\x00", pub, False))
        out.append(("empty", msg, b"", pub, False))
        out.append(("raw r||s not DER", msg, r.to_bytes(32, "big") + s.to_bytes(32, "big"), pub, False))
        out.append(("forged by other key", msg, other.sign_deterministic(msg, hashfunc=hashlib.sha256,
                                                                         sigencode=sigencode_der), pub, False))
    out.append(("garbage key", b"m", ks.sign(b"m"), b"\x30\x03\x02\x01\x01", False))
    return out


def test_backends_agree_on_firmware_signatures_and_forgeries(firmware_key):
    cases = _cases(firmware_key)
    assert len(cases) > 100
    for name, msg, sig, pub, expected in cases:
        ref = sigcheck.verify_reference(pub, msg, sig)
        fast = sigcheck.verify_fast(pub, msg, sig)
        assert ref == fast == expected, (name, ref, fast, expected)
        assert sigcheck.verify(pub, msg, sig, "both") == expected


def test_both_mode_reports_a_disagreement(monkeypatch, firmware_key):
    msg = b"receipt"
    sig = firmware_key.sign(msg)
    monkeypatch.setattr(sigcheck, "verify_reference", lambda *a: False)
    with pytest.raises(sigcheck.BackendDisagreement):
        sigcheck.verify(firmware_key.public_key_der(), msg, sig, "both")
    with pytest.raises(ValueError):
        sigcheck.verify(firmware_key.public_key_der(), msg, sig, "fastest")


def test_only_p256_keys_are_valid(firmware_key):
    assert sigcheck.valid_public_key(firmware_key.public_key_der())
    p384 = ecdsa.SigningKey.generate(curve=ecdsa.NIST384p).get_verifying_key().to_der()
    assert not sigcheck.valid_public_key(p384)
    assert not sigcheck.valid_public_key(b"\x30\x00")


def test_key_recovery_matches_python_ecdsa_and_names_the_signer(firmware_key):
    """recover_keys (OpenSSL doing the scalar work) gives exactly python-ecdsa's recovered keys
    (SEC 1 section 4.1.6) for genuine signatures and for random (r, s), and recover_signer
    names the key that made two signatures, and nobody for one signature or a forgery."""
    rng = random.Random(5)
    pub = firmware_key.public_key_der()
    msgs = [b"receipt %d" % i + bytes(rng.getrandbits(8) for _ in range(i)) for i in range(6)]
    sigs = [firmware_key.sign(m) for m in msgs]
    n = ecdsa.NIST256p.order
    randoms = [(b"junk %d" % i, sigencode_der(rng.randrange(1, n), rng.randrange(1, n), n))
               for i in range(20)]
    checked = 0
    for msg, sig in list(zip(msgs, sigs)) + randoms:
        ours = set(sigcheck.recover_keys(msg, sig))
        try:
            theirs = {k.to_der() for k in ecdsa.VerifyingKey.from_public_key_recovery(
                sig, msg, ecdsa.NIST256p, hashfunc=hashlib.sha256, sigdecode=sigdecode_der)}
        except ecdsa.numbertheory.SquareRootError:       # no curve point has x = r
            theirs = set()
        assert ours == theirs, msg
        checked += 1 if ours else 0
        assert all(sigcheck.verify_fast(k, msg, sig) for k in ours)
    assert checked >= len(msgs) + 5                   # random (r, s) recover keys too, about half
    assert sigcheck.recover_signer(list(zip(msgs[:2], sigs[:2]))) == pub
    assert sigcheck.recover_signer(list(zip(msgs, sigs))) == pub
    assert sigcheck.recover_signer([(msgs[0], sigs[0])]) is None        # two candidates
    assert sigcheck.recover_signer([(msgs[0], sigs[0]), randoms[0]]) is None
    assert sigcheck.recover_signer([(msgs[0], sigs[1]), (msgs[1], sigs[0])]) is None
    for bad in (b"", b"\x30\x00", sigencode_der(0, 1, n), sigencode_der(n, 1, n), b"\xff" * 70):
        assert sigcheck.recover_keys(b"m", bad) == []
