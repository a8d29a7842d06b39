# A finished session as the session layer hands it to ChargerLog (keys: ledger/log.py),
# shared by the ledger tests on both interpreters and by the host light-client tests.
T_BEGIN = 1768455000          # 2026-01-15 05:30:00 UTC


def session(**changes):
    s = {"charger_id": "CP-0001", "evse_id": "DE*CPF*E0001*1",
         "meter_vendor": "Eastron", "meter_model": "SDM630", "meter_serial": "SN21000042",
         "user_id": "04A1B2C3D4E5F6", "user_id_type": "ISO14443",
         "id_level": "HEARSAY", "id_flags": ["RFID_PLAIN"],
         "begin_wh": 1234567, "end_wh": 1245678,
         "begin_time": T_BEGIN, "end_time": T_BEGIN + 5400, "charge_end_time": T_BEGIN + 4800,
         "clock_status": "S",
         "segments": [[T_BEGIN, 5000], [T_BEGIN + 1800, 6111]],
         "tariff": "ab" * 32, "net_minor": 410, "tax_minor": 78, "price_minor": 488,
         "currency": "EUR", "stop_reason": "EVDisconnected", "firmware": "0.1.0"}
    s.update(changes)
    return s


class FixedClock:
    def __init__(self, t=T_BEGIN + 5401):
        self.t = t

    def time(self):
        self.t += 1
        return self.t
