# Reservations (session/auth.py), on both interpreters: a reservation holds the connector for
# its id until its time; a CSMS's ReserveNow names a card by the first 20 digits of its
# pseudonym (OCPP 1.6 idTag; docs/security.md "Cards and the CSMS") and holds for that card.
from session.auth import Authoriser
from support.cards import CARD_ID, card_id

OTHER = card_id("04FE00DD11EE22")


def _auth():
    return Authoriser("allow-list", [CARD_ID, OTHER])


def test_a_reservation_by_the_whole_pseudonym_or_its_ocpp_id_tag_holds_for_that_card():
    for held in (CARD_ID, CARD_ID[:20]):
        a = _auth()
        a.reserve(held, 1000)
        assert a.check(CARD_ID, 999) is None
        assert a.check(OTHER, 999) == "reserved"
        assert a.check(OTHER, 1001) is None                 # the reservation ran out
        assert a.check("APP-USER-1", 999, remote=True) == "reserved"


def test_no_other_prefix_holds():
    a = _auth()
    for held in (CARD_ID[:19], CARD_ID[:21], CARD_ID[1:21], "APP-USER-1"):
        a.reserve(held, 1000)
        assert a.check(CARD_ID, 999) == "reserved", held
    a.reserve("APP-USER-1", 1000)
    assert a.check("APP-USER-1", 999, remote=True) is None
