# Operator commands: verified here, executed by the session layer.
#
# Wire form (docs/mqtt.md):  [<command MAC, 64 hex> "|"] <payload JSON bytes> "|" <hex of the
# DER ECDSA signature>
# The signature is ECDSA P-256 / SHA-256 over the payload bytes exactly as received (never
# re-serialised: MicroPython's json does not keep key order), by the operator key whose public
# half was provisioned on the charger. The payload:
#   {"charger": "<id>", "n": <counter>, "exp": <unix seconds>, "cmd": "<name>", "args": {...}}
# n must exceed the last accepted n (persisted with store.atomic before the command is handed
# out, so neither a replay nor a reboot can run it twice); exp bounds how late it may arrive.
# Any failure raises CommandRejected(reason) and changes nothing (the counter included).
#
# The command MAC: a P-256 verification costs about a second on an ESP32, so a flood of
# well-formed junk must never reach it. A charger provisioned with a command key (secrets
# "cmd_key", 32 bytes made by the operator for this charger) first checks
#   mac = HMAC-SHA256(cmd_key, "cp-cmd/1\n<charger id>\n" + <payload> "|" <signature hex>)
# in screen(): two SHA-256 runs in C, microseconds. Without a valid MAC a message is refused
# there, before any signature work and before it takes a place in the queue. A charger without
# a command key ignores the MAC (it cannot check it) and relies on the signature alone.
import hashlib
import json
from binascii import hexlify, unhexlify

from ledger import der, p256
from ledger.hmac256 import HmacKey, equal
from store import atomic

# The operator key gets a comb of its own (p256.Verifier), built once at boot: on the 32-bit
# build a verification then leaves 367 KB of big-int garbage instead of 836 KB (the safety
# watch's collections per command: 2.3x fewer) and takes ~45% of the time, for 1.2 KB of heap
# (6 teeth: 325 KB, 2.2 KB).
OPERATOR_TEETH = 5

MAX_COMMAND = 4096          # bytes without the MAC; a tariff document is the largest payload
MAC_HEX = 64                # the command MAC's hex digits, then "|"
MAX_MESSAGE = MAX_COMMAND + MAC_HEX + 1

OK = "ok"
MALFORMED = "malformed"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad-signature"
WRONG_CHARGER = "wrong-charger"
UNKNOWN_COMMAND = "unknown-command"
REPLAYED = "replayed"
EXPIRED = "expired"
CLOCK_UNSYNCED = "clock-unsynchronised"
BAD_MAC = "bad-mac"

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


def load_command_key(key_hex):
    """The charger's command MAC key (HmacKey) from the secrets file's 64 hex digits; None
    when there is none. Raises ValueError if it is not 32 bytes of lowercase hex."""
    if key_hex is None:
        return None
    if not isinstance(key_hex, str) or len(key_hex) != 64:
        raise ValueError("cmd_key must be 64 hex digits")
    try:
        return HmacKey(unhexlify(key_hex))
    except ValueError:
        raise ValueError("cmd_key must be 64 hex digits")


def mac_input(charger_id, body):
    """The bytes a command MAC covers: a label, the charger's id and the signed command."""
    return b"cp-cmd/1\n" + charger_id.encode() + b"\n" + body


def _mac_prefix(raw):
    """The 32 MAC bytes if raw starts with 64 hex digits and "|", else None. (A payload
    starts with "{", so a command without a MAC is never taken for one with it.)"""
    if len(raw) <= MAC_HEX or raw[MAC_HEX] != 0x7C:     # "|"
        return None
    try:
        return unhexlify(raw[:MAC_HEX])
    except ValueError:                                  # binascii.Error is one
        return None


def operator_verifier(key, idle=None):
    """The operator key's p256.Verifier, its comb built now (idle: the safety hook, called
    between field operations), from anything load_operator_key takes; a Verifier is
    returned as it is (the app's updater shares the command verifier's)."""
    if isinstance(key, p256.Verifier):
        return key
    pub = load_operator_key(key)
    prev = p256.set_idle(idle)
    try:
        return p256.Verifier(pub, OPERATOR_TEETH)
    finally:
        p256.set_idle(prev)


def operator_signed(key, payload, sig_hex, idle=None):
    """True if sig_hex (hex DER) is the operator key's ECDSA P-256 signature over payload;
    raises ValueError when it is not hex DER at all. key: operator_verifier()'s. idle is the
    safety poll the verifier calls between field operations (commands, tariffs and update
    manifests share this check)."""
    r, s = der.decode_sig(unhexlify(sig_hex))      # DerError and binascii.Error: ValueErrors
    prev = p256.set_idle(idle)
    try:
        return key.verify(hashlib.sha256(payload).digest(), r, s)
    finally:
        p256.set_idle(prev)


class Verifier:
    """Checks commands for one charger. now() returns the charger's clock in unix seconds."""

    def __init__(self, state_path, operator_key, charger_id, now, clock_status=None,
                 cmd_key=None, idle=None):
        # The operator key's verifier (its comb: see OPERATOR_TEETH); idle, the safety hook,
        # runs while it is built and while each signature is checked.
        self.key = operator_verifier(operator_key, idle)
        # The command MAC key (secrets "cmd_key", hex), or None: signature only.
        self.mac_key = load_command_key(cmd_key)
        self._mac_head = mac_input(charger_id, b"")
        self.charger_id = charger_id
        self.now = now
        self.clock_status = clock_status    # the clock's OCMF status letter; None: trusted
        self.state_path = state_path
        raw = atomic.read(state_path, b"0")
        self.last_n = int(raw)
        self.idle = idle
        self.sig_checks = 0         # P-256 verifications made (the costly step), for tests

    def screen(self, raw):
        """The cheap first check, made as a message arrives: size, then the command MAC when
        this charger has a command key, then (the sender being the operator) the counter.
        Returns the signed part (payload "|" signature); raises CommandRejected. No
        signature work, and junk costs no copy of the message: two SHA-256 runs over it."""
        if not isinstance(raw, (bytes, bytearray)) or not 0 < len(raw) <= MAX_MESSAGE:
            raise CommandRejected(MALFORMED, "empty or longer than %d bytes" % MAX_COMMAND)
        mac = _mac_prefix(raw)
        start = 0 if mac is None else MAC_HEX + 1
        if len(raw) - start > MAX_COMMAND:
            raise CommandRejected(MALFORMED, "empty or longer than %d bytes" % MAX_COMMAND)
        key = self.mac_key
        if key is None:
            return bytes(raw[start:])
        if mac is None:
            raise CommandRejected(BAD_MAC, "no command MAC")
        if not equal(key.mac(self._mac_head, memoryview(raw)[start:]), mac):
            raise CommandRejected(BAD_MAC, "command MAC does not match this charger's key")
        # Authentic: the operator sent it, so its JSON is worth parsing. A replay of a
        # genuine command is refused here too, before the signature check it would cost.
        body = bytes(raw[start:])
        bar = body.rfind(b"|")
        obj = _parse(body if bar < 0 else body[:bar])
        n = obj.get("n")
        if _is_int(n) and n <= self.last_n:
            raise CommandRejected(REPLAYED, "n %d <= last accepted %d" % (n, self.last_n), n,
                                  obj.get("cmd") if isinstance(obj.get("cmd"), str) else None)
        return body

    def verify(self, raw):
        """Command for a valid message; raises CommandRejected(reason) and changes nothing
        otherwise. The accepted counter is on flash when this returns."""
        body = self.screen(raw)
        ref = ref_of(bytes(raw))
        raw = body
        bar = raw.rfind(b"|")
        payload = raw if bar < 0 else raw[:bar]
        sig_hex = b"" if bar < 0 else raw[bar + 1:].strip()
        if not sig_hex:
            # Tell "unsigned command" from garbage, so the operator sees the real mistake.
            _parse(payload)
            raise CommandRejected(UNSIGNED, "no signature")
        self.sig_checks += 1
        try:
            ok = operator_signed(self.key, payload, sig_hex, self.idle)
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
        return Command(name, args, n, exp, ref)


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
