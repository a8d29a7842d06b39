# The charger key: made once from the RNG, kept on flash, used to sign, never given out.
from binascii import hexlify, unhexlify
from hashlib import sha256

from support.fwtest import raises
from ledger import der, keys, p256
from store import atomic

PUBLIC = ["key_id", "public_key", "public_key_der", "public_key_hex", "set_idle", "sign", "sign_raw",
          "verify"]


class FakeRng:
    """A scripted RNG: returns the given 32-byte blocks in turn, then repeats the last."""

    def __init__(self, *blocks):
        self.blocks = list(blocks)
        self.calls = 0

    def __call__(self, n):
        self.calls += 1
        b = self.blocks.pop(0) if len(self.blocks) > 1 else self.blocks[0]
        return b[:n]


def test_first_boot_makes_key_second_boot_loads_it(tmp_path):
    path = tmp_path + "/key"
    ks = keys.KeyStore(path)
    assert atomic.exists(path)
    again = keys.KeyStore(path)
    assert again.public_key_der() == ks.public_key_der()
    assert again.key_id() == ks.key_id()
    sig = again.sign(b"session 1")
    assert ks.verify(b"session 1", sig)
    # Signatures are deterministic (RFC 6979): the RNG blinding does not change them.
    assert ks.sign(b"session 1") == sig


def test_rng_values_zero_and_not_below_n_are_rejected(tmp_path):
    n = p256.N
    good = (n - 12345).to_bytes(32, "big")
    rng = FakeRng(b"\x00" * 32, n.to_bytes(32, "big"), b"\xff" * 32, good)
    ks = keys.KeyStore(tmp_path + "/key", urandom=rng)
    assert ks.public_key() == p256.public_key(n - 12345)
    assert atomic.read(tmp_path + "/key") == good


def test_broken_rng_fails_and_writes_nothing(tmp_path):
    path = tmp_path + "/key"
    raises(keys.KeyStoreError, keys.KeyStore, path, FakeRng(b"\x00" * 32))
    raises(keys.KeyStoreError, keys.KeyStore, path, FakeRng(b"\x01" * 8))
    assert not atomic.exists(path)


def test_damaged_key_file_is_an_error_never_a_new_key(tmp_path):
    # A new key would silently orphan every receipt signed so far: refuse instead.
    path = tmp_path + "/key"
    keys.KeyStore(path)
    with open(path, "rb") as f:
        before = f.read()
    with open(path, "r+b") as f:
        f.seek(20)
        f.write(b"\x00\x00")
    with open(path, "rb") as f:
        damaged = f.read()
    raises(atomic.CorruptFile, keys.KeyStore, path)
    with open(path, "rb") as f:
        assert f.read() == damaged and damaged != before
    for bad in (b"\x00" * 32, p256.N.to_bytes(32, "big"), b"\x01" * 31):
        atomic.write(path, bad)
        raises(keys.KeyStoreError, keys.KeyStore, path)
        assert atomic.read(path) == bad


def test_loaded_key_signs_like_python_ecdsa(tmp_path, p256_vectors):
    import json
    with open(p256_vectors) as f:
        v = json.load(f)["sign"][5]
    path = tmp_path + "/key"
    atomic.write(path, unhexlify(v["d"]))
    ks = keys.KeyStore(path)
    msg = unhexlify(v["msg"])
    assert ks.sign(msg) == unhexlify(v["der"])
    raw = ks.sign_raw(msg)
    assert raw == unhexlify(v["r"]) + unhexlify(v["s"])
    q = (int(v["qx"], 16), int(v["qy"], 16))
    assert ks.public_key() == q
    spki = ks.public_key_der()
    assert der.decode_spki(spki) == q
    assert ks.public_key_hex() == hexlify(spki).decode()
    assert ks.key_id() == sha256(spki).digest()[:4]
    assert ks.verify(msg, ks.sign(msg))
    assert not ks.verify(msg + b".", ks.sign(msg))
    assert not ks.verify(msg, b"\x30\x00")


def test_secret_is_not_reachable_from_the_public_surface(tmp_path):
    d = 0x1F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A7988
    path = tmp_path + "/key"
    atomic.write(path, d.to_bytes(32, "big"))
    ks = keys.KeyStore(path)
    secret_forms = ("%x" % d, "%X" % d, "%d" % d, hexlify(d.to_bytes(32, "big")).decode())
    shown = [repr(ks), str(ks), repr(ks.__dict__)]
    for name in PUBLIC:
        attr = getattr(ks, name)
        out = attr(b"m") if name in ("sign", "sign_raw") else (
            attr(b"m", ks.sign(b"m")) if name == "verify" else attr())
        shown.append(repr(out))
        if isinstance(out, bytes):
            assert d.to_bytes(32, "big") not in out
    for text in shown:
        for form in secret_forms:
            assert form not in text, text
    assert hexlify(ks.key_id()).decode() in repr(ks)
    public = sorted(n for n in dir(ks) if not n.startswith("_"))
    assert public == PUBLIC, public
    for attr in ks.__dict__.values():
        assert attr != d


def test_only_bytes_are_signed(tmp_path):
    ks = keys.KeyStore(tmp_path + "/key")
    for bad in ("text", 5, None, [1, 2]):
        raises(keys.KeyStoreError, ks.sign, bad)
        raises(keys.KeyStoreError, ks.sign_raw, bad)
    assert ks.sign(bytearray(b"m")) == ks.sign(b"m") == ks.sign(memoryview(b"m"))


def test_power_cut_during_first_boot_write(tmp_path):
    # Cut after the temp copy was written but before the rename: the next boot uses it.
    path = tmp_path + "/key"
    ks = keys.KeyStore(path)
    import os
    os.rename(path, path + ".tmp")
    assert keys.KeyStore(path).public_key_der() == ks.public_key_der()
    # Cut while the temp copy was being written (torn, never renamed): no key was ever used,
    # so the next boot makes a fresh one instead of failing.
    with open(path + ".tmp", "rb") as f:
        torn = f.read()[:20]
    atomic.remove(path)
    with open(path + ".tmp", "wb") as f:
        f.write(torn)
    fresh = keys.KeyStore(path)
    assert fresh.public_key_der() != ks.public_key_der()
    assert keys.KeyStore(path).public_key_der() == fresh.public_key_der()
