"""A card's pseudonym, as the charger computes it (firmware/ledger/cards.py), on the host.

The charger never publishes a card's UID: receipts, allow-lists and bills carry

    upper-case hex of HMAC-SHA256(operator pseudonym key, b"cp-card/1\\n" + UID as upper-case hex)[:16]

(32 hex digits, OCMF IT "LOCAL"). The operator computes it here to put a card on an
allow-list and to tell the card's driver which receipts are theirs (docs/security.md, "Card
privacy"):

    chargeproof pseudonym --key-file operator-pseudonym.key --uid 04A1B2C3D4
"""
from __future__ import annotations

import hashlib
import hmac
import pathlib
from typing import Iterable

DOMAIN = b"cp-card/1\n"
PSEUDONYM_BYTES = 16
_SEPARATORS = ": -"            # "04:A1:B2:C3", "04 A1 B2 C3" as card tools print UIDs
UID_BYTES = (4, 7, 10)         # ISO/IEC 14443-3 single, double and triple size UIDs


class PseudonymError(ValueError):
    pass


def canonical_uid(uid: str) -> str:
    """A card UID as the charger's reader gives it: upper-case hex of 4, 7 or 10 bytes."""
    text = "".join(c for c in uid.strip() if c not in _SEPARATORS).upper()
    try:
        size = len(bytes.fromhex(text))
    except ValueError:
        raise PseudonymError("a card UID is hex digits (separators ':', ' ', '-' allowed)")
    if size not in UID_BYTES:
        raise PseudonymError("a card UID has 4, 7 or 10 bytes, not %d" % size)
    return text


def key_from_hex(key_hex: str) -> bytes:
    try:
        key = bytes.fromhex(key_hex.strip())
    except ValueError:
        raise PseudonymError("the pseudonym key is 64 hex digits")
    if len(key) != 32:
        raise PseudonymError("the pseudonym key is 64 hex digits")
    return key


def read_key(path: str | pathlib.Path) -> bytes:
    """The operator's pseudonym key from its file (`secrets pseudonym-key --out`) or from a
    charger's secrets file (its "pseudonym_key")."""
    text = pathlib.Path(path).read_text().strip()
    if text.startswith("{"):
        import json
        key_hex = json.loads(text).get("pseudonym_key")
        if not isinstance(key_hex, str):
            raise PseudonymError("%s holds no pseudonym_key" % path)
        text = key_hex
    return key_from_hex(text)


def pseudonym(key: bytes | str, uid: str) -> str:
    """The pseudonym (32 upper-case hex digits) the charger records for the card uid."""
    if isinstance(key, str):
        key = key_from_hex(key)
    mac = hmac.new(key, DOMAIN + canonical_uid(uid).encode(), hashlib.sha256).digest()
    return mac[:PSEUDONYM_BYTES].hex().upper()


# OCPP 1.6's idTag is a CiString20: a card is known to a CSMS by the first 20 of its
# pseudonym's 32 hex digits (80 bits; docs/security.md, "Cards and the CSMS"). Every OCPP
# message the bridge sends for a card (Authorize, StartTransaction, StopTransaction) carries
# this same prefix; the full pseudonym stays in the signed OCMF record (transactionData).
OCPP_ID_TAG_LEN = 20


def ocpp_id_tag(identifier: str) -> str:
    """The OCPP 1.6 idTag for a session's identification: a card's pseudonym becomes its first
    20 hex digits; any other id (a remote start's, which a CSMS gave as an idTag already)
    its first 20 characters."""
    return identifier[:OCPP_ID_TAG_LEN]


def allow_list(key: bytes | str, uids: Iterable[str]) -> list[str]:
    """A charger's allow_list (config) for these cards."""
    return [pseudonym(key, uid) for uid in uids]
