# The simulated board's main: the real charger (app.charger_app) on hal.sim devices, a pymodbus
# meter on a pty and a real MQTT broker, with a scripted EV and driver. Runs on the MicroPython
# unix port (the fleet simulator, `make demo`) and under CPython.
#
#   micropython -m app.sim_boot      stdin: the scenario as one JSON line, then "go"
#
# scenario: {"charger_id", "data_dir", "board", "meter": {"port", "baud", "control"},
#            "mqtt_host", "mqtt_port", "config": {...overrides}, "secrets": {...} (written to
#            <data_dir>/secrets.json as provisioning would; absent: keep what is there),
#            "sessions": [{"card", "power_w", "minutes", "idle_minutes", optional "until_ota" or
#            "cut_after_min" (print CUT n after that much charging, then wait to be killed)}...],
#            "start_wh" (null: keep the meter's count, as after a reboot), "start_time", "drain_s",
#            "serve_until" (optional: after the sessions, run until the update is "staged" or
#            the new version "confirmed")}
#   a session may hold "until_ota": <update state>: it charges until app/ota.py reaches it;
#   or "until_stopped": true: it charges in real time until the contacts open (a stop command)
#   or its minutes run out, then prints "CONTACTS <n> open|closed <charger state>".
# Prints one line per event: "PUBKEY <spki hex>" (then reads "secrets <json>" (optional: the
# provisioning after enrollment) and waits for "go": the operator enrolls the key with the
# validators), "CHARGING <n>", "UNPLUG <n> <unix ns>", "SESSION <n> <state> <unix ns>",
# "OTA <update state> <charger state> <running version> trial|confirmed", "REBOOT" (an
# update switched: the process ends, the caller boots it again from the same flash),
# "DRAINED <receipts not acknowledged> <meter Wh>".
# Simulated time runs as fast as the loop goes; the network keeps real time. app.sim_boot boots
# it as a board boots (/main.py): the boot selector picks the version under <data_dir>/ota and
# this module is imported from it.
import json
import sys
import time

from app import config
from app.board import load_board
from app.charger_app import ChargerApp
from app.simulated import sim_hardware
from hal import sim
from hal.meterctl import MeterControl
from ledger.keys import KeyStore
from store import atomic


class Reboot(Exception):
    """hw["reset"]: the board resets (after an update's switch or a trial's rollback)."""


def _reset():
    raise Reboot()


class SimCharger:
    def __init__(self, sc):
        self.sc = sc
        board = load_board(sc["board"])
        overrides = {"charger_id": sc["charger_id"], "data_dir": sc["data_dir"],
                     "mqtt_host": sc["mqtt_host"], "mqtt_port": sc["mqtt_port"]}
        overrides["secrets_path"] = sc["data_dir"] + "/secrets.json"
        overrides.update(sc.get("config", {}))
        self.board = board
        self.cfg = cfg = config.load(board, None, overrides)
        clock = sim.SimClock(epoch=sc.get("start_time", 1767225600))
        meter = sc["meter"]
        self.hw = sim_hardware(board, meter["port"], meter["baud"], clock)
        self.hw["reset"] = _reset
        self.clock = clock
        self.ev = self.hw["ev"]
        self.relay = self.hw["relay"]
        self.meter = MeterControl(meter["control"])
        self.power_w = 0
        self.meter.set_power_w(0)
        self.app = None
        # First boot makes the key (ChargerApp loads the same one): its public half is read out
        # before provisioning, as host_tools/provision/deploy.py --pubkey does on a board.
        atomic.makedirs(cfg["data_dir"])
        self.pubkey_hex = KeyStore(cfg["data_dir"] + "/key", self.hw["urandom"]).public_key_hex()

    def provision(self, secrets):
        """The secrets file on flash (ack keys, pseudonym key), as deploy.py --secrets writes it."""
        with open(self.cfg["secrets_path"], "w") as f:     # a plain file, as mpremote cp leaves it
            f.write(json.dumps(secrets))

    def boot(self):
        sc = self.sc
        self.app = ChargerApp(self.board, self.cfg, self.hw)
        if sc.get("start_wh") is None:        # a reboot: the meter kept counting
            self.wh = self.app.charger.meter.read_energy_wh()
        else:
            self.wh = sc["start_wh"]
            self.meter.set_energy_wh(self.wh)

    def run(self, seconds, step_ms=100, power_w=0):
        """Advance simulated time; the meter counts power_w while the contacts are closed."""
        left = seconds * 1000
        flow = sim.EnergyFlow()
        while left > 0:
            self.clock.advance(step_ms)
            left -= step_ms
            flowing = power_w and self.relay.contacts_closed()
            w = power_w if flowing else 0
            if w != self.power_w:              # the meter's power register follows the flow
                self.meter.set_power_w(w)
                self.power_w = w
            gained = flow.add(w, step_ms)
            if gained:
                self.wh += gained
                self.meter.set_energy_wh(self.wh)
            self.app.step()

    def session(self, n, s):
        self.ev.set_state("B")
        self.run(2)
        refused = self.app.present_card(s["card"])
        if refused:
            print("SESSION %d refused %s" % (n, refused))
            self.ev.set_state("A")
            self.run(2)
            return
        self.ev.set_state("C")
        self.run(2)
        print("CHARGING %d" % n)
        until = s.get("until_ota")
        if until:                      # charge (up to minutes) until the update reaches a state
            for _ in range(s["minutes"]):
                if self.app.ota.state == until:
                    break
                self.run(60, step_ms=5000, power_w=s["power_w"])
                time.sleep(0.01)       # real time for the network: the update server answers
            self.ota_line()
        elif s.get("until_stopped"):   # charge (up to minutes) in real time: a stop may come
            for _ in range(s["minutes"] * 12):     # over the network (the OCPP bridge's)
                self.run(5, step_ms=1000, power_w=s["power_w"])
                if not self.relay.contacts_closed():
                    break
                time.sleep(0.02)
            print("CONTACTS %d %s %s" % (n, "closed" if self.relay.contacts_closed() else "open",
                                         self.app.charger.state))
        elif s.get("cut_after_min"):   # the test cuts the power here: charge, then wait for it
            self.run(s["cut_after_min"] * 60, step_ms=5000, power_w=s["power_w"])
            print("CUT %d" % n)
            while True:
                time.sleep(1)
        else:
            self.run(s["minutes"] * 60, step_ms=5000, power_w=s["power_w"])
        self.ev.set_state("B")                       # the EV is full
        self.run(2)
        self.run(s.get("idle_minutes", 0) * 60, step_ms=5000)
        self.ev.set_state("A")
        print("UNPLUG %d %d" % (n, time.time_ns()))     # the session ends here
        self.run(2)
        print("SESSION %d %s %d" % (n, self.app.charger.state, time.time_ns()))

    def ota_line(self):
        ota = self.app.ota
        print("OTA %s %s %s %s" % (ota.state, self.app.charger.state, ota.version,
                                   "trial" if ota.trial else "confirmed"))

    def serve(self, until, seconds=120):
        """Keep the loop going (real time) until the update is "staged" (waiting for idle) or
        the running version "confirmed" (its trial over)."""
        deadline = time.time() + seconds
        ota = self.app.ota
        while time.time() < deadline:
            if until == "staged" and ota.state == "waiting-idle":
                break
            if until == "confirmed" and not ota.trial:
                break
            self.run(10, step_ms=100)
            time.sleep(0.01)
        self.ota_line()

    def drain(self, seconds):
        """Keep the loop going (real time) until every receipt is acknowledged."""
        deadline = time.time() + seconds
        while self.app.outbox.pending() and time.time() < deadline:
            self.run(1, step_ms=100)
            time.sleep(0.01)
        print("DRAINED %d %d" % (self.app.outbox.pending(), self.wh))


def run(sc):
    """The scenario, in the version the boot selector chose (main())."""
    ch = SimCharger(sc)
    if sc.get("secrets") is not None:
        ch.provision(sc["secrets"])
    print("PUBKEY %s" % ch.pubkey_hex)
    line = sys.stdin.readline().strip()
    if line.startswith("secrets "):          # provisioned after enrollment made the ack keys
        ch.provision(json.loads(line[8:]))
        line = sys.stdin.readline().strip()
    if line != "go":
        return
    ch.boot()
    try:
        # Past the recovery's settle time: a session the power cut interrupted ends (the EV is
        # gone) before the first new one.
        ch.run(1 + ch.cfg["recover_settle_ms"] // 1000)
        for n, s in enumerate(sc["sessions"]):
            ch.session(n + 1, s)
        if sc.get("serve_until"):
            ch.serve(sc["serve_until"])
    except Reboot:
        print("REBOOT")
        return
    ch.drain(sc.get("drain_s", 60))
    if ch.app.link is not None:
        ch.app.link.health(ch.app.health())     # the retained health shows the final state
        ch.app.link.close()


if __name__ == "__main__":          # the image's version only: app.sim_boot boots a board
    run(json.loads(sys.stdin.readline()))
