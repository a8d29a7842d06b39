# Authenticated, content-bound acks (docs/mqtt.md, "Acks").
#
# A validator acks one outbox record on cp/<charger>/ack/<validator> with
#   {"v": validator, "c": charger, "k": "receipt"|"checkpoint", "seq": N,
#    "sha256": "<64 lowercase hex of the exact bytes acked>", "kid": "<ack key id>", "mac": "<64 hex>"}
#   mac = HMAC-SHA256(ack key, "cp-ack/1\n<c>\n<v>\n<k>\n<seq>\n<sha256>\n")
# The ack key is a 32-byte secret per (validator, charger), made when the validator enrolls the
# charger and put on the charger's flash by provisioning; no broker client has it. During a
# rotation a validator has two key ids (current and next), never more.
#
# check() tells whether an ack is authentic and names this charger and the validator of its
# topic; the outbox then checks seq, kind and digest against what it holds. Nothing here
# changes state: a forged, malformed or foreign ack raises BadAck and deletes nothing.
import json
from binascii import hexlify, unhexlify

from ledger.hmac256 import HmacKey, equal
from uplink.outbox import BadAck
from uplink.topics import KINDS, check_id

ACK_MAX = 512           # bytes; a genuine ack is about 250
MAX_KEYS = 2            # per validator: the current key and, during a rotation, the next


def mac_input(charger, validator, kind, seq, sha256_hex):
    """The bytes an ack's MAC covers."""
    return ("cp-ack/1\n%s\n%s\n%s\n%d\n%s\n" % (charger, validator, kind, seq, sha256_hex)).encode()


def _is_hex64(s):
    # Lower case, then every character a hex digit: checked in C (unhexlify refuses anything
    # else, a non-ASCII character included); a loop over the 64 characters here cost ~35 us
    # on the 32-bit build, twice per ack.
    if not isinstance(s, str) or len(s) != 64 or s.lower() != s:
        return False
    try:
        unhexlify(s)
    except ValueError:
        return False
    return True


def load_keys(ack_keys):
    """{validator: {kid: HmacKey}} from the secrets file's {"validator": {"kid": "<64 hex>"}}.
    Raises ValueError naming the bad entry."""
    out = {}
    if not isinstance(ack_keys, dict):
        raise ValueError("ack_keys must be an object {validator: {key id: hex}}")
    for validator, keys in ack_keys.items():
        check_id(validator, "validator id")
        if not isinstance(keys, dict) or not 0 < len(keys) <= MAX_KEYS:
            raise ValueError("ack keys of %s: 1..%d key ids" % (validator, MAX_KEYS))
        mine = {}
        for kid, key_hex in keys.items():
            check_id(kid, "ack key id")
            if not isinstance(key_hex, str) or len(key_hex) != 64:
                raise ValueError("ack key %s/%s must be 64 hex digits" % (validator, kid))
            try:
                mine[kid] = HmacKey(unhexlify(key_hex))
            except ValueError:
                raise ValueError("ack key %s/%s must be 64 hex digits" % (validator, kid))
        out[validator] = mine
    return out


class AckChecker:
    def __init__(self, charger_id, ack_keys):
        self.charger_id = charger_id
        self.keys = load_keys(ack_keys)

    def validators(self):
        return tuple(self.keys)

    def check(self, validator, payload):
        """(seq, kind tag, sha256 hex) of an authentic ack by validator (from the topic) for
        this charger. Raises BadAck for anything else."""
        keys = self.keys.get(validator)
        if keys is None:
            raise BadAck("no ack key for validator %r" % validator)
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > ACK_MAX:
            raise BadAck("ack longer than %d bytes" % ACK_MAX)
        try:
            obj = json.loads(payload)
        except (ValueError, TypeError):
            raise BadAck("ack is not JSON")
        if not isinstance(obj, dict):
            raise BadAck("ack must be a JSON object")
        v, c, k, seq = obj.get("v"), obj.get("c"), obj.get("k"), obj.get("seq")
        digest, kid, mac = obj.get("sha256"), obj.get("kid"), obj.get("mac")
        if v != validator:
            raise BadAck("ack names validator %r on the topic of %r" % (v, validator))
        if c != self.charger_id:
            raise BadAck("ack for another charger")
        if k not in KINDS:
            raise BadAck("ack kind must be one of %s" % ", ".join(KINDS))
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise BadAck("ack needs a positive integer seq")
        if not _is_hex64(digest):
            raise BadAck("sha256 must be 64 lowercase hex digits")
        if not _is_hex64(mac):
            raise BadAck("mac must be 64 lowercase hex digits")
        key = keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise BadAck("unknown ack key id for %s" % validator)
        want = hexlify(key.mac(mac_input(c, v, k, seq, digest)))
        if not equal(want, mac.encode()):
            raise BadAck("ack MAC does not verify")
        return seq, KINDS.index(k), digest
