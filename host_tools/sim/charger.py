"""Real receipts for the validator's tests, bench and demos: the firmware's own ledger code
(firmware/ledger/log.py ChargerLog, keys.KeyStore, session/tariff.py), run under CPython.

    ch = SimCharger(tmpdir, "CP-1", TARIFF_DOC)
    msgs = ch.charge(energy_wh=7400)        # [(topic, payload), (topic, payload)]: receipt, checkpoint
    validator.enroll(ch.charger_id, ch.pubkey_der(), origin=ch.origin)

Each session: the meter register continues from the previous session's end (unless told
otherwise), the firmware's tariff code computes segments and price, ChargerLog signs the OCMF
record, the receipt and the checkpoint. Messages are numbered as the uplink outbox numbers
them (one seq per record, receipts and checkpoints alike) on cp/<id>/<kind>/<seq>.
"""
import json
import os
import random

from host_tools.paths import firmware_on_path

firmware_on_path()

from ledger.ids import default_origin       # noqa: E402  (firmware import root)
from ledger.keys import KeyStore            # noqa: E402
from ledger.log import ChargerLog           # noqa: E402
from session import tariff as fw_tariff      # noqa: E402

T0 = 1768455000                              # 2026-01-15 05:30:00 UTC

# A card's pseudonym (firmware/ledger/cards.py): what a charger's receipt identifies a driver by.
CARD_ID = "A6D7DBB77F3545D973D684F3DF2356D7"
TARIFF = {"v": 1, "currency": "EUR", "utc_offset_min": 60, "session_fee_minor": 50,
          "bands": [{"start_min": 0, "kwh_price_milli": 25000},
                    {"start_min": 7 * 60, "kwh_price_milli": 39000},
                    {"start_min": 22 * 60, "kwh_price_milli": 25000}],
          "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900}


class _Clock:
    def __init__(self, owner):
        self.owner = owner

    def time(self):
        return self.owner.now


class SimCharger:
    def __init__(self, dirpath, charger_id, tariff_doc=None, seed=1, start_wh=1000000, start_time=T0,
                 prefix="cp", keys=None):
        self.dir = str(dirpath)
        os.makedirs(self.dir, exist_ok=True)
        self.charger_id = charger_id
        self.origin = default_origin(charger_id)               # the firmware's default origin
        self.tariff_doc = tariff_doc or TARIFF
        self.tariff = fw_tariff.Tariff(self.tariff_doc)
        rng = random.Random(seed)
        # keys: the firmware's KeyStore by default; a load generator may pass a faster signer with
        # the same interface (sign -> DER, key_id, public_key_der), e.g. host_tools.sim.loadgen.HostKeys
        self.keys = keys or KeyStore(self.dir + "/key",
                                     urandom=lambda n: bytes(rng.getrandbits(8) for _ in range(n)))
        self.now = start_time
        self.meter_wh = start_wh
        self.log = ChargerLog(self.dir + "/log", self.keys, charger_id, self.origin, _Clock(self))
        self.outbox_seq = 0
        self.prefix = prefix

    def pubkey_der(self):
        return bytes(self.keys.public_key_der())

    def tariff_json(self):
        return json.dumps(self.tariff_doc)

    def session_dict(self, energy_wh=7400, duration_s=3600, idle_s=600, pause_s=900, gap_wh=0, **changes):
        """A finished session as the session layer would fill it (prices from the firmware tariff)."""
        begin_t = self.now + pause_s
        begin_wh = self.meter_wh + gap_wh
        split = fw_tariff.EnergySplit(self.tariff, begin_t, begin_wh)
        steps = 6
        for i in range(1, steps + 1):
            split.sample(begin_t + duration_s * i // steps, begin_wh + energy_wh * i // steps)
        end_t = begin_t + duration_s + idle_s
        split.sample(end_t, begin_wh + energy_wh)
        charge_end = split.charge_end if energy_wh else begin_t
        net, tax, total = fw_tariff.price(self.tariff, split.segments, begin_t, charge_end, end_t)
        s = {"charger_id": self.charger_id, "evse_id": "DE*CPF*E%s*1" % self.charger_id[-4:],
             "meter_vendor": "Eastron", "meter_model": "SDM630", "meter_serial": "SN-" + self.charger_id,
             "user_id": CARD_ID, "user_id_type": "LOCAL", "id_level": "HEARSAY",
             "id_flags": ["RFID_PLAIN"], "begin_wh": begin_wh, "end_wh": begin_wh + energy_wh,
             "begin_time": begin_t, "end_time": end_t, "charge_end_time": charge_end, "clock_status": "S",
             "segments": [list(x) for x in split.segments], "tariff": self.tariff.hash,
             "net_minor": net, "tax_minor": tax, "price_minor": total, "currency": self.tariff_doc["currency"],
             "stop_reason": "EVDisconnected", "firmware": "0.1.0"}
        s.update(changes)
        return s

    def append(self, s):
        """Record session dict s; returns (receipt bytes, checkpoint bytes, index)."""
        self.now = max(self.now, s["end_time"]) + 1
        rec, cp, index = self.log.append_session(s)
        self.meter_wh = max(self.meter_wh, s["end_wh"])
        return bytes(rec), cp.encode() if isinstance(cp, str) else bytes(cp), index

    def charge(self, **kw):
        """One session; the outbox messages (topic, payload) for its receipt and checkpoint."""
        rec, cp, _ = self.append(self.session_dict(**kw))
        return [self.message("receipt", rec), self.message("checkpoint", cp)]

    def message(self, kind, payload):
        self.outbox_seq += 1
        return "%s/%s/%s/%d" % (self.prefix, self.charger_id, kind, self.outbox_seq), payload

    def clone(self, dirpath):
        """A second charger with this one's key and log state, as if its flash had been copied
        (or restored from a backup): what it appends next forks the log."""
        import shutil
        shutil.copytree(self.dir, str(dirpath))
        twin = SimCharger(dirpath, self.charger_id, self.tariff_doc, start_wh=self.meter_wh,
                          start_time=self.now, prefix=self.prefix)
        twin.outbox_seq = self.outbox_seq
        return twin
