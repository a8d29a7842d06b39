# A closed session's receipt fields (session/receipt_fields.py).
from session.receipt_fields import END_TX, receipt_fields

CFG = {"charger_id": "CP-1", "meter_model": "SDM630", "meter_serial": "S1", "evse_id": ""}
SESSION = {"seq": 7, "id": "04A2", "id_type": "ISO14443", "begin_wh": 1000, "end_wh": 1500,
           "begin_time": 100, "end_time": 900, "charge_end": 800, "segments": [[100, 500]],
           "tariff": "ab" * 32, "price": [100, 19, 119], "reason": None}


def test_fields_of_a_closed_session():
    f = receipt_fields(CFG, SESSION, "S", "EUR")
    assert f["seq"] == 7 and f["charger_id"] == "CP-1" and f["clock_status"] == "S"
    assert (f["net_minor"], f["tax_minor"], f["price_minor"]) == (100, 19, 119)
    assert f["stop_reason"] == "ev-unplugged" and f["end_tx"] == "E"   # no reason: unplugged
    assert f["currency"] == "EUR" and "evse_id" not in f
    assert f["charge_end_time"] == 800 and f["begin_wh"] == 1000 and f["end_wh"] == 1500


def test_stop_reason_gives_the_end_reading_tx():
    s = dict(SESSION)
    for reason, tx in (("user", "L"), ("remote", "R"), ("power-loss", "P"),
                       ("segment-limit", "L"), ("fault:meter-jump", "A")):
        s["reason"] = reason
        assert receipt_fields(CFG, s, "U", "EUR")["end_tx"] == tx
    assert END_TX["ev-unplugged"] == "E"
    cfg = dict(CFG)
    cfg["evse_id"] = "DE*CPX*E1"
    assert receipt_fields(cfg, SESSION, "S", "EUR")["evse_id"] == "DE*CPX*E1"
