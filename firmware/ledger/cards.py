# A card as the charger records it: a keyed pseudonym of its UID, made the moment the reader
# returns the UID, so the UID itself never reaches the session, the journal, a receipt, a
# message or a log (docs/security.md, "Card privacy").
#
#   pseudonym = upper-case hex of the first 16 bytes of
#               HMAC-SHA256(operator's pseudonym key, b"cp-card/1\n" + UID as upper-case hex)
#
# The host computes the same with Python's hmac (host_tools/provision/pseudonym.py,
# `chargeproof pseudonym`): the operator tells each driver their pseudonym and lists pseudonyms
# in allow-lists. Without a key a card cannot be recorded privately and is refused.
from binascii import hexlify, unhexlify

from ledger.hmac256 import HmacKey

DOMAIN = b"cp-card/1\n"        # binds the MAC to this use of the key, and to this version
PSEUDONYM_BYTES = 16           # 128 bits: no two cards of a fleet collide; 32 hex digits
NO_KEY = "no-pseudonym-key"    # the refusal of a card by a charger with no pseudonym key


class CardPseudonyms:
    def __init__(self, key_hex):
        """key_hex: the secrets file's pseudonym_key (64 hex digits) or None."""
        if key_hex is None:
            self._key = None
            return
        if type(key_hex) is not str or len(key_hex) != 64:
            raise ValueError("pseudonym_key must be 64 hex digits")
        try:
            key = unhexlify(key_hex)
        except ValueError:
            raise ValueError("pseudonym_key must be 64 hex digits")
        self._key = HmacKey(key)

    def of(self, uid):
        """The pseudonym (32 upper-case hex digits) of a card's UID (hex, any case), or None
        without a key. The UID is not kept."""
        if self._key is None:
            return None
        mac = self._key.mac(DOMAIN + uid.upper().encode())
        return hexlify(mac[:PSEUDONYM_BYTES]).decode().upper()
