# The charger id rule and the default origin (ledger/ids.py), on both interpreters. The host's
# users of the same rule are run against one list in tests/host/test_shared_rules.py.
from ledger import ids
from support.fwtest import raises


def test_charger_id_rule():
    for good in ("CP-0001", "x" * 64, "a", "~!$%&'()*,-.:;<=>?@[]^_`{|}"):
        assert ids.check_id(good) == good and ids.valid_id(good)
    for bad in ("", "x" * 65, "a b", "a/b", "a+b", "a#", "\u00e9", "\x7f", None, 7):
        assert not ids.valid_id(bad)
        raises(ids.IdError, ids.check_id, bad)


def test_default_origin():
    assert ids.default_origin("CP-7") == "chargeproof.local/CP-7"
