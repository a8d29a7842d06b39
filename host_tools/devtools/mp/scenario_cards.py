# Runs inside MicroPython (and CPython): the card the scripted charger scenarios present and the
# provisioning that lets it in, as an operator does it (docs/security.md, "Card privacy"): a
# secrets file holding the operator's pseudonym key, and the card's pseudonym on the allow-list.
import json

from ledger.cards import CardPseudonyms

CARD = "04A2B3C4D5E6F7"         # the card's UID, as the reader returns it
KEY = "5a" * 32                 # the test operator's pseudonym key (never a real one)
CARD_ID = CardPseudonyms(KEY).of(CARD)


def provision(path, secrets=None):
    """Write the charger's secrets file at path: secrets (the ack keys; none if None) with the
    pseudonym key KEY unless they name one."""
    out = {"ack_keys": {}, "pseudonym_key": None}
    out.update(secrets or {})
    if out["pseudonym_key"] is None:
        out["pseudonym_key"] = KEY
    with open(path, "w") as f:
        f.write(json.dumps(out))
    return path
