# Signed checkpoints in the C2SP tlog-checkpoint format (a C2SP signed note):
#   <origin>\n<tree size>\n<base64 root>\n[time <epoch s>\n]\n— <key name> <base64(key ID || sig)>\n
# Signature type 0x02 (ECDSA P-256): key ID = SHA-256(SPKI DER)[:4], the signature is DER over
# the note text (everything before the blank line, final newline included).
from binascii import a2b_base64, b2a_base64
from hashlib import sha256

_DASH = "\u2014"             # em dash, U+2014


class CheckpointError(Exception):
    pass


def _b64(b):
    return b2a_base64(b).strip().decode()


def _check_origin(origin):
    if type(origin) is not str or not origin:
        raise CheckpointError("origin must be a non-empty string")
    for c in origin:
        if c <= " " or c == "+" or c > "~":
            raise CheckpointError("origin must be printable ASCII without spaces or '+'")


def body(origin, size, root, time=None):
    """The note text that gets signed."""
    _check_origin(origin)
    if type(size) is not int or size < 0 or len(root) != 32:
        raise CheckpointError("bad size or root")
    text = "%s\n%d\n%s\n" % (origin, size, _b64(root))
    if time is not None:
        text += "time %d\n" % time
    return text


def sign(text, signer, key_name):
    """text + blank line + one signature line from signer (sign() -> DER, key_id())."""
    _check_origin(key_name)
    sig = signer.sign(text.encode())
    return "%s\n%s %s %s\n" % (text, _DASH, key_name, _b64(signer.key_id() + sig))


def build(origin, size, root, time, signer):
    return sign(body(origin, size, root, time), signer, origin)


def parse(note):
    """(origin, size, root bytes, time or None, text, [(key name, key id, sig)]) of a note."""
    if isinstance(note, (bytes, bytearray)):
        try:
            note = bytes(note).decode()
        except UnicodeError:
            raise CheckpointError("checkpoint is not UTF-8")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise CheckpointError("checkpoint has no signature block")
    text = note[:cut + 1]
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint text needs origin, size and root")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    _check_origin(origin)
    if not size_s.isdigit() or (len(size_s) > 1 and size_s[0] == "0"):
        raise CheckpointError("bad tree size %r" % size_s)
    try:
        root = a2b_base64(root_s)
    except Exception:
        raise CheckpointError("root is not base64")
    if len(root) != 32 or _b64(root) != root_s:
        raise CheckpointError("root is not a base64 SHA-256 hash")
    time = None
    for ext in lines[3:]:
        if ext.startswith("time ") and ext[5:].isdigit():
            time = int(ext[5:])
    sigs = []
    for line in note[cut + 2:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise CheckpointError("bad signature line")
        try:
            raw = a2b_base64(parts[2])
        except Exception:
            raise CheckpointError("signature is not base64")
        if len(raw) < 5:
            raise CheckpointError("signature too short")
        sigs.append((parts[1], raw[:4], raw[4:]))
    return origin, int(size_s), root, time, text, sigs


def key_id(spki_der):
    return sha256(spki_der).digest()[:4]


def verify(note, verifier, key_name=None):
    """True iff note carries a valid signature by verifier (key_id(), verify(msg, der)) under
    key_name (default: the note's origin). Signatures by other keys are ignored (C2SP)."""
    origin, size, root, time, text, sigs = parse(note)
    name = origin if key_name is None else key_name
    kid = verifier.key_id()
    found = False
    for n, k, sig in sigs:
        if n == name and k == kid:
            if not verifier.verify(text.encode(), sig):
                return False
            found = True
    return found
