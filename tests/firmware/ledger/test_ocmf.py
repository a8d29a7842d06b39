# OCMF payload built once with fixed key order; kWh from integer Wh without floats; TM format;
# the signature covers the payload bytes exactly; bad input raises OcmfError.
import json
import os

from support.fwtest import raises
from ledger import ocmf
from ledger.keys import KeyStore
from ledgerdata import T_BEGIN, session
from store import atomic


def test_kwh_is_exact_from_integer_wh():
    assert ocmf.kwh(1234567) == "1234.567"
    assert ocmf.kwh(5) == "0.005"
    assert ocmf.kwh(0) == "0.000"
    assert ocmf.kwh(99999999999) == "99999999.999"      # beyond float32's 7 digits
    assert ocmf.kwh(1234560, 2) == "1234.56"
    assert ocmf.kwh(7000, 0) == "7"
    raises(ocmf.OcmfError, ocmf.kwh, 1234567, 2)          # would lose a Wh
    raises(ocmf.OcmfError, ocmf.kwh, -1)
    raises(ocmf.OcmfError, ocmf.kwh, 1.5)


def test_time_format_and_calendar():
    assert ocmf.iso_time(1532431324, "S") == "2018-07-24T11:22:04,000+0000 S"
    assert ocmf.iso_time(1709251199, "I") == "2024-02-29T23:59:59,000+0000 I"
    assert ocmf.iso_time(0, "U") == "1970-01-01T00:00:00,000+0000 U"
    assert ocmf.iso_time(951868800, "S") == "2000-03-01T00:00:00,000+0000 S"
    raises(ocmf.OcmfError, ocmf.iso_time, 0, "X")


def test_payload_fields_order_and_values():
    p = ocmf.payload(session(), 7)
    assert p.startswith('{"FV":"1.0","GI":"ChargeProof","GS":"CP-0001","GV":"0.1.0","PG":"T7",'
                        '"MV":"Eastron","MM":"SDM630","MS":"SN21000042","IS":true,"IL":"HEARSAY",'
                        '"IF":["RFID_PLAIN"],"IT":"ISO14443","ID":"04A1B2C3D4E5F6",'
                        '"CT":"EVSEID","CI":"DE*CPF*E0001*1","RD":[')
    assert ('{"TM":"2026-01-15T05:30:00,000+0000 S","TX":"B","RV":1234.567,'
            '"RI":"01-00:01.08.00*FF","RU":"kWh","RT":"AC","EF":"","ST":"G"}') in p
    assert '"TX":"E","RV":1245.678,' in p
    d = json.loads(p)
    assert d["RD"][1]["TM"] == "2026-01-15T07:00:00,000+0000 S"
    assert " " not in p.replace(" S\"", "")     # no whitespace but the clock letter's space


def test_anonymous_session_has_is_false_and_no_id():
    d = json.loads(ocmf.payload(session(user_id="", id_flags=[]), 1))
    assert d["IS"] is False and d["IT"] == "NONE" and "ID" not in d and d["IF"] == []


def test_bad_sessions_raise_ocmf_error():
    raises(ocmf.OcmfError, ocmf.payload, session(end_wh=1000), 1)
    raises(ocmf.OcmfError, ocmf.payload, session(end_time=T_BEGIN - 1), 1)
    raises(ocmf.OcmfError, ocmf.payload, session(meter_serial='SN"1'), 1)
    raises(ocmf.OcmfError, ocmf.payload, session(user_id="AB|CD"), 1)
    raises(ocmf.OcmfError, ocmf.payload, session(clock_status="Z"), 1)
    raises(ocmf.OcmfError, ocmf.payload, session(), 0)
    raises(ocmf.OcmfError, ocmf.payload, session(begin_wh=1.5), 1)


def test_signed_record_verifies_over_exact_payload_bytes(tmp_path):
    key = KeyStore(tmp_path + "/key", urandom=os.urandom)
    p = ocmf.payload(session(), 3)
    rec = ocmf.sign(p, key)
    payload, sig_section = ocmf.split(rec)
    assert payload == p
    sig = json.loads(sig_section)
    assert sig["SA"] == "ECDSA-secp256r1-SHA256" and sig["SE"] == "hex"
    from binascii import unhexlify
    der = unhexlify(sig["SD"])
    assert key.verify(p.encode(), der)
    assert not key.verify(p.replace("1245.678", "1245.679").encode(), der)
    # OCPP 2.0.1 signedMeterData carries base64 of the record: at most 2500 characters
    assert (len(rec) + 2) // 3 * 4 < 2000
    raises(ocmf.OcmfError, ocmf.split, "OCMX|{}|{}")


def test_only_printable_ascii_without_the_separators_is_carried():
    # The check runs on the string's bytes in C; a character outside ASCII becomes bytes
    # above 126, so it is refused like a control character, and the one named is the first.
    for good in ("", "CP-0001", " !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{}~"):
        assert ocmf.uncarriable(good) is None
    for bad, first in (('SN"1', '"'), ("a\\b", "\\"), ("AB|CD", "|"), ("x\ty", "\t"),
                       ("del\x7f", "\x7f"), ("Zürich", "ü"), ("ok\x00", "\x00"), ("€", "€")):
        assert ocmf.uncarriable(bad) == first, (bad, first)
        assert "OCMF cannot carry" in str(raises(ocmf.OcmfError, ocmf.payload,
                                                 session(meter_serial=bad), 1))


def test_the_payload_is_made_in_pieces_with_the_safety_watch_between():
    # A payload's ~20 fields cost ~150 us on the 32-bit build in one piece (~30 ms on an
    # ESP32): store.atomic's hook (the app's safety watch) is called between its parts.
    calls = []
    prev = atomic.set_idle(lambda: calls.append(1))
    try:
        ocmf.payload(session(), 1)
    finally:
        atomic.set_idle(prev)
    assert len(calls) >= 2
