# Encodings of P-256 keys and ECDSA signatures:
# - ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } in DER (RFC 3279 section 2.2.3,
#   X.690 section 8.3 / 10), as OCMF's SD field and C2SP signed-note type 0x02 signatures carry;
# - SubjectPublicKeyInfo (RFC 5480) for a P-256 uncompressed point, as OCMF verifiers and the
#   C2SP key ID (SHA-256 of the SPKI DER) use;
# - raw r||s (64 bytes), as JOSE/COSE and secure elements use.
# Decoders are strict: one valid encoding per value, anything else raises DerError.
from ledger import p256

# SEQUENCE { SEQUENCE { OID id-ecPublicKey 1.2.840.10045.2.1, OID prime256v1 1.2.840.10045.3.1.7 },
#            BIT STRING (0 unused bits) 04 || x || y }  (RFC 5480 section 2)
SPKI_PREFIX = (b"\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01"
               b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\x03\x42\x00")


class DerError(ValueError):
    """Bytes that are not the strict DER this module accepts."""


def _bytes(data):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DerError("expected bytes, got %s" % type(data).__name__)
    return bytes(data)


def _int_der(v):
    b = v.to_bytes(32, "big")
    i = 0
    while i < 31 and b[i] == 0:
        i += 1
    b = b[i:]
    if b[0] & 0x80:
        b = b"\x00" + b          # keep INTEGER positive
    return b"\x02" + bytes((len(b),)) + b


def encode_sig(r, s):
    if not (0 < r < p256.N and 0 < s < p256.N):
        raise DerError("r or s out of range")
    body = _int_der(r) + _int_der(s)
    return b"\x30" + bytes((len(body),)) + body


def _read_int(data, pos):
    if pos + 2 > len(data) or data[pos] != 0x02:
        raise DerError("expected INTEGER")
    ln = data[pos + 1]
    if ln == 0 or ln > 33 or pos + 2 + ln > len(data):
        raise DerError("bad INTEGER length")
    v = data[pos + 2:pos + 2 + ln]
    if v[0] & 0x80:
        raise DerError("negative INTEGER")
    if ln > 1 and v[0] == 0 and not v[1] & 0x80:
        raise DerError("INTEGER not minimally encoded")
    return int.from_bytes(v, "big"), pos + 2 + ln


def decode_sig(data):
    """(r, s) from a DER ECDSA-Sig-Value; r and s must lie in 1..n-1."""
    data = _bytes(data)
    # Longest P-256 signature is 72 bytes, so the SEQUENCE length is always short form.
    if len(data) < 8 or data[0] != 0x30 or data[1] != len(data) - 2:
        raise DerError("expected a SEQUENCE filling the whole signature")
    r, pos = _read_int(data, 2)
    s, pos = _read_int(data, pos)
    if pos != len(data):
        raise DerError("trailing bytes in signature")
    if not (0 < r < p256.N and 0 < s < p256.N):
        raise DerError("r or s out of range")
    return r, s


def encode_raw(r, s):
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def decode_raw(data):
    data = _bytes(data)
    if len(data) != 64:
        raise DerError("raw signature must be 64 bytes")
    r, s = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    if not (0 < r < p256.N and 0 < s < p256.N):
        raise DerError("r or s out of range")
    return r, s


def encode_spki(pub):
    return SPKI_PREFIX + p256.encode_point(pub)


def decode_spki(data):
    """The validated (x, y) of a P-256 SubjectPublicKeyInfo with an uncompressed point."""
    data = _bytes(data)
    if len(data) != 91 or data[:26] != SPKI_PREFIX:
        raise DerError("not a P-256 SubjectPublicKeyInfo with an uncompressed point")
    try:
        return p256.decode_point(data[26:])
    except p256.P256Error as exc:
        raise DerError(str(exc))
