"""C2SP tlog-cosignature/v1 with Ed25519 (https://c2sp.org/tlog-cosignature): a witness's
statement that a checkpoint is the largest consistent tree head it has seen for that log.

A cosignature is one more signed-note line under the checkpoint:

    — <cosigner name> base64(key ID[4] || timestamp u64 big-endian[8] || Ed25519 signature[64])

  key ID          SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]
  signed message  "cosignature/v1\\n" "time <decimal seconds>\\n" + the checkpoint body (origin,
                  size, root, extension lines, final newline; no signature lines)
  verifier key    a C2SP vkey "<name>+<key ID hex>+base64(0x04 || public key)"; a plain Ed25519
                  vkey (type 0x01) is accepted as the same key used for cosignatures, as
                  transparency-dev/formats does (its key ID is then recomputed with 0x04)

Verifiers ignore signature lines whose (name, key ID) they do not know, verify every known one,
refuse the note if a known one fails, and count distinct cosigners towards a quorum.
Pure functions over bytes and `cryptography`'s Ed25519; no I/O.
"""
import base64
import binascii
import hashlib
import re
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DASH = "\u2014"
SIG_TYPE_COSIGNATURE = 0x04
SIG_TYPE_ED25519 = 0x01
SIGNATURE_LEN = 4 + 8 + 64
HEADER = b"cosignature/v1\n"
_NAME = re.compile(r"[^\s+]+")          # signed-note key names: no whitespace, no '+'


class CosignatureError(ValueError):
    """A malformed key, line or note; or a known cosigner's signature that does not verify."""


class QuorumError(CosignatureError):
    """Fewer valid cosignatures from distinct known witnesses than the quorum asks for."""


def key_id(name: str, public_key: bytes, sig_type: int = SIG_TYPE_COSIGNATURE) -> bytes:
    """The 4-byte key ID of a named Ed25519 key for this signature type."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + bytes(public_key)).digest()[:4]


class Witness:
    """A cosigner as a verifier knows it: name, 32-byte Ed25519 public key, key ID."""
    __slots__ = ("name", "public_key", "key_id", "_key")

    def __init__(self, name: str, public_key: bytes):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise CosignatureError("bad cosigner name %r" % (name,))
        if len(public_key) != 32:
            raise CosignatureError("an Ed25519 public key is 32 bytes, not %d" % len(public_key))
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    def vkey(self) -> str:
        return "%s+%s+%s" % (self.name, self.key_id.hex(), base64.b64encode(
            bytes([SIG_TYPE_COSIGNATURE]) + self.public_key).decode())

    def verify(self, body: bytes, timestamp: int, signature: bytes) -> bool:
        try:
            self._key.verify(bytes(signature), signed_message(body, timestamp))
            return True
        except InvalidSignature:
            return False

    def __repr__(self):
        return "Witness(%s %s)" % (self.name, self.key_id.hex())


def parse_vkey(vkey: str) -> Witness:
    """A Witness from a C2SP vkey string (type 0x04, or 0x01 reused for cosignatures)."""
    parts = vkey.strip().split("+", 2)          # base64 may itself hold '+'
    if len(parts) != 3:
        raise CosignatureError("a vkey is <name>+<key id hex>+<base64 key>: %r" % vkey[:80])
    name, kid_hex, key_b64 = parts
    try:
        raw = base64.b64decode(key_b64, validate=True)
        kid = bytes.fromhex(kid_hex)
    except (binascii.Error, ValueError):
        raise CosignatureError("vkey key id or key material is not hex/base64: %r" % vkey[:80])
    if len(kid) != 4 or len(raw) != 33:
        raise CosignatureError("vkey needs a 4-byte key id and a type byte + 32-byte Ed25519 key")
    if raw[0] not in (SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519):
        raise CosignatureError("vkey signature type 0x%02x is not Ed25519 (0x01) or cosignature/v1 (0x04)" % raw[0])
    if key_id(name, raw[1:], raw[0]) != kid:
        raise CosignatureError("vkey key id %s does not match its name and key" % kid_hex)
    return Witness(name, raw[1:])


def note_body(note) -> bytes:
    """The checkpoint body a cosignature covers: the note's text up to and including the newline
    before the blank line (a body without signatures is returned as it is)."""
    if isinstance(note, str):
        note = note.encode("utf-8")
    cut = note.find(b"\n\n")
    body = note if cut < 0 else note[:cut + 1]
    if not body.endswith(b"\n") or body.count(b"\n") < 3:
        raise CosignatureError("a checkpoint body has origin, size and root lines, each ending in a newline")
    return body


def signed_message(body: bytes, timestamp: int) -> bytes:
    if not 0 <= timestamp <= 2 ** 63 - 1:
        raise CosignatureError("timestamp %r outside 0..2^63-1" % (timestamp,))
    return HEADER + b"time %d\n" % timestamp + bytes(body)


class Cosigner:
    """A witness's signing key (Ed25519) and name."""

    def __init__(self, name: str, private_key: "Ed25519PrivateKey | None" = None):
        self.private_key = private_key or Ed25519PrivateKey.generate()
        pub = self.private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)
        self.witness = Witness(name, pub)
        self.name = name

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> "Cosigner":
        return cls(name, Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    def seed(self) -> bytes:
        return self.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())

    def vkey(self) -> str:
        return self.witness.vkey()

    def cosign(self, note, timestamp: int) -> str:
        """The signature line (no newline) cosigning the checkpoint `note` at `timestamp`."""
        body = note_body(note)
        sig = self.private_key.sign(signed_message(body, timestamp))
        raw = self.witness.key_id + struct.pack(">Q", timestamp) + sig
        return "%s %s %s" % (DASH, self.name, base64.b64encode(raw).decode())


class Line:
    """One parsed signature line: name, key ID, and the bytes after the key ID."""
    __slots__ = ("name", "key_id", "payload", "text")

    def __init__(self, text: str):
        m = re.fullmatch(DASH + r" (\S+) ([A-Za-z0-9+/]+=*)", text)
        if not m:
            raise CosignatureError("not a signature line: %r" % text[:120])
        try:
            raw = base64.b64decode(m.group(2), validate=True)
        except binascii.Error:
            raise CosignatureError("signature is not base64: %r" % text[:120])
        if len(raw) < 5:
            raise CosignatureError("signature too short: %r" % text[:120])
        self.name, self.key_id, self.payload, self.text = m.group(1), raw[:4], raw[4:], text

    @property
    def timestamp(self) -> int:
        """The cosignature's time (a cosignature/v1 line only)."""
        if len(self.payload) != 8 + 64:
            raise CosignatureError("not an Ed25519 cosignature/v1: %d bytes after the key id" % len(self.payload))
        return struct.unpack(">Q", self.payload[:8])[0]

    @property
    def signature(self) -> bytes:
        _ = self.timestamp                     # raises on the wrong length
        return self.payload[8:]


def signature_lines(note) -> list:
    """Every signature line of a signed note, parsed."""
    if isinstance(note, bytes):
        note = note.decode("utf-8")
    cut = note.find("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise CosignatureError("note has no signature block")
    return [Line(t) for t in note[cut + 2:-1].split("\n")]


def add_lines(note, lines) -> str:
    """The note with extra signature lines (cosignatures) appended, each once."""
    if isinstance(note, bytes):
        note = note.decode("utf-8")
    have = set(note[note.find("\n\n") + 2:-1].split("\n"))
    extra = [line for line in lines if line not in have]
    return note + "".join(line + "\n" for line in dict.fromkeys(extra))


def verify_line(witness: Witness, note, line: Line) -> int:
    """The timestamp of a valid cosignature by witness; CosignatureError if it does not verify."""
    if line.name != witness.name or line.key_id != witness.key_id:
        raise CosignatureError("line is by %s %s, not %r" % (line.name, line.key_id.hex(), witness))
    if not witness.verify(note_body(note), line.timestamp, line.signature):
        raise CosignatureError("cosignature by %s does not verify" % witness.name)
    return line.timestamp


def verify_quorum(note, witnesses, quorum: int) -> dict:
    """Check a cosigned checkpoint against known witnesses. Returns {witness name: timestamp} of
    the valid cosignatures; raises CosignatureError if a known witness's line fails to verify
    and QuorumError if fewer than `quorum` distinct known witnesses cosigned."""
    known = {(w.name, w.key_id): w for w in witnesses}
    body = note_body(note)
    valid = {}
    for line in signature_lines(note):
        w = known.get((line.name, line.key_id))
        if w is None:
            continue                             # the log's own signature, or a stranger's
        if not w.verify(body, line.timestamp, line.signature):
            raise CosignatureError("cosignature by %s (%s) does not verify" % (w.name, w.key_id.hex()))
        valid[w.name] = line.timestamp
    if len(valid) < quorum:
        raise QuorumError("%d valid cosignature(s) from known witnesses (%s), quorum is %d"
                          % (len(valid), ", ".join(sorted(valid)) or "none", quorum))
    return valid
