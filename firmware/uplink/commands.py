# Operator commands: verified here, executed by the session layer.
#
# Wire form (docs/mqtt.md):  <payload JSON bytes> "|" <hex of the DER ECDSA signature>
# The signature is ECDSA P-256 / SHA-256 over the payload bytes exactly as received (never
# re-serialised: MicroPython's json does not keep key order), by the operator key whose public
# half was provisioned on the charger. The payload:
#   {"charger": "<id>", "n": <counter>, "exp": <unix seconds>, "cmd": "<name>", "args": {...}}
# n must exceed the last accepted n (persisted with store.atomic before the command is handed
# out, so neither a replay nor a reboot can run it twice); exp bounds how late it may arrive.
# Any failure raises CommandRejected(reason) and changes nothing (the counter included).
import hashlib
import json
from binascii import hexlify, unhexlify

from ledger import der, p256
from store import atomic

MAX_COMMAND = 4096          # bytes; a tariff document is the largest payload

OK = "ok"
MALFORMED = "malformed"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad-signature"
WRONG_CHARGER = "wrong-charger"
UNKNOWN_COMMAND = "unknown-command"
REPLAYED = "replayed"
EXPIRED = "expired"
CLOCK_UNSYNCED = "clock-unsynchronised"

# Commands whose effect only makes the charger do less: accepted whatever the clock says. Every
# other command is bounded by its expiry, which means nothing while the clock is not
# synchronised (it counts from 2000 until NTP answers): refused then, and the result says so.
CLOCK_FREE = ("stop", "cancel_reservation")

# name -> ((arg, type, required), ...). Unknown args are malformed: a typo must not be ignored.
SCHEMA = {
    "authorize": (("id_tag", str, True),),
    "start": (("id_tag", str, True), ("connector", int, False)),
    "stop": (("reason", str, False), ("connector", int, False)),
    # Charging current limit in mA: 0 pauses charging, else IEC 61851-1's 6..80 A PWM range.
    # ttl_s: a site controller's lease; unless renewed, fallback_current_ma applies after it.
    "current_limit": (("ma", int, True), ("connector", int, False), ("ttl_s", int, False)),
    # The tariff document as a string: its exact bytes are hashed into receipts.
    "tariff": (("tariff", str, True),),
    "reserve": (("id_tag", str, True), ("until", int, True), ("connector", int, False)),
    "cancel_reservation": (("connector", int, False),),
    # Clear a fault that needs the operator (a welded contactor, once it reads open again).
    "reset_fault": (("connector", int, False),),
}


class CommandRejected(Exception):
    def __init__(self, reason, detail="", n=None, cmd=None):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.n = n
        self.cmd = cmd


class Command:
    def __init__(self, name, args, n, exp, ref=""):
        self.name = name
        self.args = args
        self.n = n
        self.exp = exp
        self.ref = ref


def ref_of(raw):
    """The id a result names its command by: 16 hex digits of SHA-256 over the raw message
    (also for a message that could not be parsed or verified)."""
    return hexlify(hashlib.sha256(raw).digest()[:8]).decode()

    def __repr__(self):
        return "Command(%s n=%d %r)" % (self.name, self.n, self.args)


def load_operator_key(key):
    """The operator's public point from SPKI DER (91 bytes), a SEC 1 point (65 bytes), their
    hex, or an (x, y) pair. Raises ValueError if it is not a valid P-256 key."""
    if isinstance(key, str):
        key = unhexlify(key)
    if isinstance(key, (bytes, bytearray)):
        if len(key) == 91:
            return der.decode_spki(key)
        return p256.decode_point(bytes(key))
    p256.check_point(key)
    return (key[0], key[1])


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_args(name, args):
    spec = SCHEMA[name]
    for key in args:
        for arg, _, _ in spec:
            if arg == key:
                break
        else:
            raise ValueError("unexpected argument %r" % key)
    for arg, typ, required in spec:
        if arg not in args:
            if required:
                raise ValueError("missing argument %r" % arg)
            continue
        v = args[arg]
        if typ is int:
            if not _is_int(v):
                raise ValueError("%s must be an integer" % arg)
        elif not isinstance(v, typ):
            raise ValueError("%s has the wrong type" % arg)
    if "connector" in args and not 1 <= args["connector"] <= 16:
        raise ValueError("connector out of range")
    if name == "current_limit" and not (args["ma"] == 0 or 6000 <= args["ma"] <= 80000):
        raise ValueError("ma must be 0 or 6000..80000")
    if name == "current_limit" and "ttl_s" in args and not 1 <= args["ttl_s"] <= 86400:
        raise ValueError("ttl_s must be 1..86400")
    if name == "reserve" and args["until"] <= 0:
        raise ValueError("until must be a unix time")
    for arg in ("id_tag", "reason"):
        if arg in args and not 0 < len(args[arg]) <= 64:
            raise ValueError("%s must be 1..64 characters" % arg)


def operator_signed(pub, payload, sig_hex, idle=None):
    """True if sig_hex (hex DER) is the operator key's ECDSA P-256 signature over payload;
    raises ValueError when it is not hex DER at all. idle is the safety poll the verifier
    calls between field operations (commands and update manifests share this check)."""
    r, s = der.decode_sig(unhexlify(sig_hex))      # DerError and binascii.Error: ValueErrors
    prev = p256.set_idle(idle)
    try:
        return p256.verify_digest(pub, hashlib.sha256(payload).digest(), r, s)
    finally:
        p256.set_idle(prev)


class Verifier:
    """Checks commands for one charger. now() returns the charger's clock in unix seconds."""

    def __init__(self, state_path, operator_key, charger_id, now, clock_status=None):
        self.pub = load_operator_key(operator_key)
        self.charger_id = charger_id
        self.now = now
        self.clock_status = clock_status    # the clock's OCMF status letter; None: trusted
        self.state_path = state_path
        raw = atomic.read(state_path, b"0")
        self.last_n = int(raw)
        self.idle = None            # the safety hook, called while the signature is checked

    def verify(self, raw):
        """Command for a valid message; raises CommandRejected(reason) and changes nothing
        otherwise. The accepted counter is on flash when this returns."""
        if not isinstance(raw, (bytes, bytearray)) or not 0 < len(raw) <= MAX_COMMAND:
            raise CommandRejected(MALFORMED, "empty or longer than %d bytes" % MAX_COMMAND)
        raw = bytes(raw)
        bar = raw.rfind(b"|")
        payload = raw if bar < 0 else raw[:bar]
        sig_hex = b"" if bar < 0 else raw[bar + 1:].strip()
        if not sig_hex:
            # Tell "unsigned command" from garbage, so the operator sees the real mistake.
            _parse(payload)
            raise CommandRejected(UNSIGNED, "no signature")
        try:
            ok = operator_signed(self.pub, payload, sig_hex, self.idle)
        except (ValueError, TypeError) as exc:
            raise CommandRejected(BAD_SIGNATURE, "signature is not hex DER: %s" % exc)
        if not ok:
            raise CommandRejected(BAD_SIGNATURE, "not signed by the operator key")
        obj = _parse(payload)
        n, exp, name, args = obj.get("n"), obj.get("exp"), obj.get("cmd"), obj.get("args", {})
        if not (_is_int(n) and n > 0 and _is_int(exp) and isinstance(name, str)
                and isinstance(args, dict) and isinstance(obj.get("charger"), str)):
            raise CommandRejected(MALFORMED, "needs charger, n, exp, cmd, args", n if _is_int(n) else None)
        if obj["charger"] != self.charger_id:
            raise CommandRejected(WRONG_CHARGER, "for %s" % obj["charger"], n, name)
        if name not in SCHEMA:
            raise CommandRejected(UNKNOWN_COMMAND, name, n, name)
        try:
            _check_args(name, args)
        except ValueError as exc:
            raise CommandRejected(MALFORMED, str(exc), n, name)
        if n <= self.last_n:
            raise CommandRejected(REPLAYED, "n %d <= last accepted %d" % (n, self.last_n), n, name)
        status = self.clock_status() if self.clock_status is not None else "S"
        if status != "S" and name not in CLOCK_FREE:
            raise CommandRejected(CLOCK_UNSYNCED, "clock status %s: %s depends on its expiry (exp %d); "
                                  "refused until the clock is synchronised" % (status, name, exp), n, name)
        if self.now() > exp:
            raise CommandRejected(EXPIRED, "expired at %d" % exp, n, name)
        atomic.write(self.state_path, b"%d" % n)
        self.last_n = n
        return Command(name, args, n, exp, ref_of(raw))


def _parse(payload):
    try:
        obj = json.loads(payload)
    except (ValueError, TypeError):
        obj = None
    if not isinstance(obj, dict):
        raise CommandRejected(MALFORMED, "payload is not a JSON object")
    return obj


def result(reason, n=None, cmd=None, detail="", ref=""):
    """The cmd/result message: {"ref": .., "n": .., "cmd": .., "result": "ok"|reason,
    "detail": ..}. n and cmd are null when the command was refused before they were known."""
    return json.dumps({"ref": ref, "n": n, "cmd": cmd, "result": reason,
                       "detail": detail}).encode()


def rejection(exc, raw=b""):
    return result(exc.reason, exc.n, exc.cmd, exc.detail, ref_of(raw))
