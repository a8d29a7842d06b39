"""C2SP tlog-checkpoint signed notes on the host: parse, and verify with a charger's P-256 key
(signature type 0x02: key ID = SHA-256(SPKI DER)[:4], DER ECDSA over the note text)."""
from typing import List, Optional
import base64
import binascii
import hashlib
import re

from host_tools.verify import sigcheck

DASH = "\u2014"
MAX_NOTE = 8192


class CheckpointError(ValueError):
    pass


class WrongKey(CheckpointError):
    """No signature on the note from the given key."""


class BadSignature(CheckpointError):
    """A signature from the given key does not verify."""


def key_id(pub_der: bytes) -> bytes:
    return hashlib.sha256(pub_der).digest()[:4]


class Checkpoint:
    def __init__(self, note):
        if isinstance(note, (bytes, bytearray)):
            try:
                note = bytes(note).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CheckpointError("note is not UTF-8: %s" % exc)
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise CheckpointError("a checkpoint note is text of at most %d characters" % MAX_NOTE)
        if any(c < " " and c != "\n" for c in note):
            raise CheckpointError("control character in note")
        cut = note.rfind("\n\n")
        if cut < 0 or not note.endswith("\n"):
            raise CheckpointError("note has no signature block")
        self.note = note
        self.text = note[:cut + 1]
        lines = self.text[:-1].split("\n")
        if len(lines) < 3 or not lines[0]:
            raise CheckpointError("checkpoint needs origin, size and root lines")
        self.origin = lines[0]
        if not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]):
            raise CheckpointError("tree size %r is not a decimal without leading zeros" % lines[1])
        self.size = int(lines[1])
        try:
            self.root = base64.b64decode(lines[2], validate=True)
        except ValueError:                  # binascii.Error, or a non-ASCII line
            raise CheckpointError("root is not base64")
        if len(self.root) != 32:
            raise CheckpointError("root is not 32 bytes")
        self.extensions = lines[3:]
        self.time = None
        for ext in self.extensions:
            if re.fullmatch(r"time [0-9]{1,12}", ext):
                self.time = int(ext[5:])
        self.signatures = []
        for line in note[cut + 2:-1].split("\n"):
            m = re.fullmatch(DASH + r" (\S+) ([A-Za-z0-9+/=]+)", line)
            if not m:
                raise CheckpointError("bad signature line %r" % line)
            try:
                raw = base64.b64decode(m.group(2), validate=True)
            except binascii.Error:
                raise CheckpointError("signature is not base64")
            if len(raw) < 5:
                raise CheckpointError("signature too short")
            self.signatures.append((m.group(1), raw[:4], raw[4:]))

    def verify(self, pub_der: bytes, name: Optional[str] = None) -> None:
        """Raise WrongKey / BadSignature unless the key (named `name`, default the origin)
        signed this note."""
        name = self.origin if name is None else name
        kid = key_id(pub_der)
        mine = [sig for n, k, sig in self.signatures if n == name and k == kid]
        if not mine:
            raise WrongKey("no signature by key %s (%s) on the checkpoint" % (kid.hex(), name))
        for sig in mine:
            if not sigcheck.verify(pub_der, self.text.encode(), sig, backend="both"):
                raise BadSignature("checkpoint signature does not verify")


def parse(note) -> Checkpoint:
    return Checkpoint(note)


class Equivocation(CheckpointError):
    """Two checkpoints signed by the same key that no append-only log could both produce:
    the pair itself is the proof of misbehaviour."""


def check_extends(old: Checkpoint, new: Checkpoint, proof: List[bytes], pub_der: bytes) -> None:
    """Verify both notes with the charger's key, then that `new` extends `old` (RFC 9162
    consistency proof). Raises WrongKey/BadSignature, or Equivocation if the log was rewritten."""
    from host_tools.verify import merkle
    old.verify(pub_der)
    new.verify(pub_der)
    if old.origin != new.origin:
        raise CheckpointError("checkpoints of different logs: %s, %s" % (old.origin, new.origin))
    if old.size > new.size:
        old, new = new, old
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except merkle.ProofError as exc:
        raise Equivocation("signed checkpoints %d and %d are not consistent: %s"
                           % (old.size, new.size, exc))
