"""Records from the firmware's OCMF builder are accepted by an existing, independent OCMF
verifier (pyocmf: strict parsing, signature, the Transparenzsoftware's Eichrecht checks) and
by the host's own strict reader; a changed byte in the payload fails both."""
import os
import warnings

import pyocmf
import pytest

from host_tools.verify import ocmf as host_ocmf
from ledger import ocmf
from ledger.keys import KeyStore
from ledgerdata import session

VARIANTS = {
    "rfid": {},
    "anonymous": {"user_id": "", "id_flags": [], "id_level": "NONE"},
    "dc-two-decimals": {"current_type": "DC", "rv_decimals": 2, "begin_wh": 1234560, "end_wh": 1300000},
    "informative-clock": {"clock_status": "I", "end_tx": "R"},
    "emaid": {"user_id": "DE8AAA1B2C3D4E5", "user_id_type": "EMAID", "id_flags": ["ISO15118_PNC"],
              "id_level": "SECURE"},
    "zero-energy": {"end_wh": 1234567},
}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return KeyStore(str(tmp_path_factory.mktemp("k") / "key"), urandom=os.urandom)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_pyocmf_accepts_firmware_record(key, name):
    rec = ocmf.sign(ocmf.payload(session(**VARIANTS[name]), 42), key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # a spec deviation warning fails the test
        o = pyocmf.OCMF.from_string(rec, strict=True)
        ok, issues = o.verify(key.public_key_hex())
    if VARIANTS[name].get("clock_status", "S") == "S":
        assert ok and issues == [], issues
    else:       # an unsynchronised clock is flagged, rightly, as unfit for billing: a warning
        assert ok and {i.code for i in issues} == {pyocmf.IssueCode.TIME_SYNC}
        assert all(i.severity == pyocmf.IssueSeverity.WARNING for i in issues)
    assert o.payload.PG == "T42"
    # and the host's own strict reader
    r = host_ocmf.parse(rec)
    assert r.verify(key.public_key_der())
    b, e = r.begin_end()
    s = session(**VARIANTS[name])
    assert e["wh"] - b["wh"] == s["end_wh"] - s["begin_wh"]


def test_one_changed_byte_fails_both_verifiers(key):
    rec = ocmf.sign(ocmf.payload(session(), 1), key)
    bad = rec.replace('"RV":1245.678', '"RV":1245.679')
    assert bad != rec
    assert not pyocmf.OCMF.from_string(bad).verify_signature(key.public_key_hex())
    assert not host_ocmf.parse(bad).verify(key.public_key_der())
    # whitespace is part of the signed bytes too
    spaced = rec.replace('"PG":"T1",', '"PG": "T1",')
    assert not pyocmf.OCMF.from_string(spaced).verify_signature(key.public_key_hex())
    assert not host_ocmf.parse(spaced).verify(key.public_key_der())


def test_record_fits_ocpp_signed_meter_value(key):
    # OCPP 2.0.1 SignedMeterValueType.signedMeterData: base64 of the record, <= 2500 chars.
    import base64
    long_ids = session(user_id="A" * 40, evse_id="DE*CPF*E" + "9" * 31, meter_serial="S" * 64)
    rec = ocmf.sign(ocmf.payload(long_ids, 2 ** 31), key)
    assert len(base64.b64encode(rec.encode())) < 2500


def _charger_card_session(id_type):
    """A session as the charger records a card (firmware/ledger/cards.py): its pseudonym, no
    IL and no IF claims."""
    s = session(user_id="A6D7DBB77F3545D973D684F3DF2356D7", user_id_type=id_type, id_flags=[])
    del s["id_level"]
    return s


def test_a_card_pseudonym_as_local_id_passes_pyocmf_strict_and_the_eichrecht_checks(key):
    rec = ocmf.sign(ocmf.payload(_charger_card_session("LOCAL"), 7), key)
    assert '"IS":true,"IF":[],"IT":"LOCAL","ID":"A6D7DBB77F3545D973D684F3DF2356D7"' in rec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        o = pyocmf.OCMF.from_string(rec, strict=True)
        ok, issues = o.verify(key.public_key_hex())
    assert ok and issues == [], issues
    assert host_ocmf.parse(rec).verify(key.public_key_der())
    # The same pseudonym labelled ISO14443 claims to be a card's UID: strict pyocmf refuses it.
    rec = ocmf.sign(ocmf.payload(_charger_card_session("ISO14443"), 7), key)
    with pytest.raises(pyocmf.exceptions.PyOCMFError, match="ISO14443"):
        pyocmf.OCMF.from_string(rec, strict=True)
