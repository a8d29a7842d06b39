# Test-side validators' acks (docs/mqtt.md): authenticated with the ack keys below, on both
# interpreters. KEYS is what a charger's secrets file holds: {validator: {key id: hex}}.
import hashlib
import json
from binascii import hexlify

from ledger.hmac256 import hmac_sha256
from uplink.acks import mac_input

KEYS = {
    "v1": {"k1": "11" * 32},
    "v2": {"k1": "22" * 32},
    "v3": {"k1": "33" * 32},
}


def sha_hex(payload):
    return hexlify(hashlib.sha256(payload).digest()).decode()


def ack(charger, validator, kind, seq, payload=None, digest=None, kid="k1", key_hex=None,
        keys=KEYS):
    """The ack payload (bytes) validator sends for record seq of kind holding payload."""
    if digest is None:
        digest = sha_hex(payload)
    if key_hex is None:
        key_hex = keys[validator][kid]
    mac = hmac_sha256(bytes.fromhex(key_hex), mac_input(charger, validator, kind, seq, digest))
    return json.dumps({"v": validator, "c": charger, "k": kind, "seq": seq, "sha256": digest,
                       "kid": kid, "mac": hexlify(mac).decode()}).encode()
