# A card's pseudonym (ledger/cards.py), on both interpreters: the firmware's value is the host's
# (host_tools/provision/pseudonym.py, Python's hmac), it does not depend on the case of the UID,
# and it is keyed: another key, another pseudonym.
from ledger.cards import DOMAIN, CardPseudonyms
from support.fwtest import raises


def test_firmware_and_host_agree(card_pseudonyms):
    for key_hex, uid, host_value in card_pseudonyms["cases"]:
        assert CardPseudonyms(key_hex).of(uid) == host_value, (key_hex, uid)


def test_pinned_value():
    # HMAC-SHA256(0x5a * 32, b"cp-card/1\n04A2B3C4D5E6F7")[:16], upper-case hex; also what
    # `chargeproof pseudonym` prints (tests/host/provision/test_pseudonym.py).
    assert CardPseudonyms("5a" * 32).of("04A2B3C4D5E6F7") == "A6D7DBB77F3545D973D684F3DF2356D7"
    assert DOMAIN == b"cp-card/1\n"


def test_case_of_the_uid_does_not_matter_and_the_key_does():
    a = CardPseudonyms("11" * 32)
    b = CardPseudonyms("22" * 32)
    assert a.of("04a2b3c4d5e6f7") == a.of("04A2B3C4D5E6F7")
    assert a.of("04A2B3C4D5E6F7") != b.of("04A2B3C4D5E6F7")
    assert a.of("04A2B3C4D5E6F7") != a.of("04A2B3C4D5E6F8")
    p = a.of("CAFEBABE")
    assert len(p) == 32 and p == p.upper() and "CAFEBABE" not in p


def test_no_key_gives_no_pseudonym():
    assert CardPseudonyms(None).of("CAFEBABE") is None


def test_malformed_key_is_refused():
    for bad in ("5a" * 31, "zz" * 32, 42, "5a" * 33):
        raises(ValueError, CardPseudonyms, bad)
