# A whole charger on simulated hardware with a pymodbus meter, for session tests.
import json

from app import config
from app.board import load_board
from app.charger_app import ChargerApp
from app.simulated import sim_hardware
from ledger import receipt
from hal.meterctl import MeterControl
from support.cards import CARD, CARD_ID, CARD_KEY

BEGIN_WH = 1000000        # the meter's register at the start of a test: 1000.000 kWh


class Rig:
    def __init__(self, env, clock=None, ev=None, meter_wh=BEGIN_WH, pseudonym_key=CARD_KEY,
                 **overrides):
        """pseudonym_key: the operator's card pseudonym key in the charger's secrets file
        (None: a charger provisioned without one)."""
        self.env = env
        self.board = load_board(env["board"])
        secrets_path = env["data"] + "-secrets.json"
        with open(secrets_path, "w") as f:      # a plain file, as deploy.py --secrets leaves it
            f.write(json.dumps({"ack_keys": {}, "pseudonym_key": pseudonym_key}))
        cfg = {"charger_id": "CP-TEST-1", "data_dir": env["data"], "allow_list": [CARD_ID],
               "recover_settle_ms": 2000, "meter_serial": "SIM0001",
               "mqtt_host": None, "secrets_path": secrets_path}
        if env.get("broker"):
            cfg["mqtt_host"] = env["broker"]["host"]
            cfg["mqtt_port"] = env["broker"]["port"]
        cfg.update(overrides)
        self.cfg = config.load(self.board, None, cfg)
        self.meter = MeterControl(env["meter"]["control"])
        if meter_wh is not None:
            self.meter.set_energy_wh(meter_wh)
        self.meter_wh = self.meter_wh_start = meter_wh
        self._mwh = 0                       # energy counted below one Wh, carried over
        self._power_w = 0                   # what the meter's power register says now
        self.meter.set_power_w(0)
        self.hw = sim_hardware(self.board, env["meter"]["port"], env["meter"]["baud"], clock, ev)
        self.clock = self.hw["clock"]
        self.ev = self.hw["ev"]
        self.relay = self.hw["relay"]
        self.app = ChargerApp(self.board, self.cfg, self.hw)
        self.charger = self.app.charger

    def run(self, seconds, step_ms=100, power_w=0, register_pct=100):
        """Advance time; while the relay's contacts are closed the meter reports power_w and
        its register counts register_pct % of that energy (100: a good meter; 0: a frozen
        register). With an MQTT broker configured, each pass is the app's whole loop."""
        step = self.app.step if self.app.link is not None else self.charger.step
        ms = 0
        while ms < seconds * 1000:
            self.clock.advance(step_ms)
            ms += step_ms
            flowing = power_w and self.relay.contacts_closed()
            self._set_power(power_w if flowing else 0)
            if flowing:
                self._mwh += power_w * step_ms * register_pct // 360000
                if self._mwh >= 1000:
                    self.meter_wh += self._mwh // 1000
                    self._mwh %= 1000
                    self.meter.set_energy_wh(self.meter_wh)
            step()

    def _set_power(self, w):
        if w != self._power_w:
            self.meter.set_power_w(w)
            self._power_w = w

    def plug_and_charge(self, card=CARD, power_w=11000, seconds=600):
        self.ev.set_state("B")
        self.run(3)
        assert self.app.present_card(card) is None
        self.ev.set_state("C")
        self.run(1)
        self.run(seconds, step_ms=5000, power_w=power_w)

    def unplug(self):
        self.ev.set_state("B")
        self.run(3)
        self.ev.set_state("A")
        self.run(3)

    def receipts(self):
        """The receipt bodies (dicts) waiting in the outbox, in order."""
        out = []
        for _, tag, payload in self.app.outbox.items(limit=100):
            if payload.startswith(b"{"):
                out.append(json.loads(receipt.split(payload)[0]))
        return out

    def close(self):
        self.meter.close()
        self.hw["uart"].close()
        if self.app.link is not None:
            self.app.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
