# The test card and the test operator's pseudonym key, on both interpreters: the Rig's charger
# is provisioned with CARD_KEY and allows CARD_ID, the pseudonym of CARD (ledger/cards.py).
from ledger.cards import CardPseudonyms

CARD = "04A2B3C4D5E6F7"               # the card's UID, as the reader returns it
CARD_KEY = "5a" * 32                  # the operator's pseudonym key in the tests
# Computed by the firmware; tests/firmware/ledger/test_cards.py pins it to the host's value.
CARD_ID = CardPseudonyms(CARD_KEY).of(CARD)


def card_id(uid, key_hex=CARD_KEY):
    return CardPseudonyms(key_hex).of(uid)
