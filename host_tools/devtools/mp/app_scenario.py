# Runs inside MicroPython (the 32-bit build with the firmware frozen in) for
# host_tools/bench/esp32.py: the whole charger app (app.charger_app) on simulated devices, a
# pymodbus meter, a real broker and a real validator that acknowledges every receipt.
#
# stdin, one JSON line: {"board", "meter": {"port", "baud", "control"}, "data", "mqtt_host",
#   "mqtt_port", "charger_id", "meter_serial", "operator_spki", "t0", "sessions", "charge_s",
#   "expect_cmds", "drain_s"}
# then it prints "PUBKEY <hex>" and waits for "go" (the host enrolls the key with its validator
# and publishes the signed commands). Each session: plug in, card, charge (telemetry on),
# unplug, receipt signed, logged, published, acknowledged. Last line:
#   RESULT {"ok", "sessions", "pending", "cmds", "min_free", "acks", "bad_acks", "fault", "detail"}
# followed by micropython.mem_info() (the host reads the largest free block from it).
import gc

gc.threshold(2048)      # as app/main.py: the boot's long-lived objects pack low (BOOT_GC_BYTES)

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from app import BOOT_ONLY, forget  # noqa: E402
from app.charger_app import ChargerApp  # noqa: E402
from app.simulated import sim_hardware  # noqa: E402
from hal.meterctl import MeterControl  # noqa: E402
from hal.sim import EnergyFlow, SimClock  # noqa: E402
from scenario_cards import CARD, CARD_ID, provision  # noqa: E402


class Scenario:
    def __init__(self, sc):
        self.sc = sc
        from app import config          # boot only, as app/main.py: forgotten below
        from app.board import load_board
        board = load_board(sc["board"])
        # as provisioning leaves it on flash: the host's ack keys and the card pseudonym key
        secrets_path = provision(sc["data"] + "/secrets.json", sc["secrets"])
        cfg = config.load(board, None, {
            "secrets_path": secrets_path,
            "charger_id": sc["charger_id"], "data_dir": sc["data"], "allow_list": [CARD_ID],
            "meter_serial": sc["meter_serial"], "mqtt_host": sc["mqtt_host"],
            "mqtt_port": sc["mqtt_port"], "operator_key": sc["operator_spki"],
            "telemetry_interval_s": 10, "health_interval_s": 60})
        self.clock = SimClock(epoch=sc["t0"])
        m = sc["meter"]
        self.hw = sim_hardware(board, m["port"], m["baud"], self.clock)
        self.ev = self.hw["ev"]
        self.relay = self.hw["relay"]
        self.meter = MeterControl(m["control"])
        self.wh = 1000000
        self.meter.set_energy_wh(self.wh)
        self.app = ChargerApp(board, cfg, self.hw)
        del config, load_board
        forget(*BOOT_ONLY)
        self.cmds = 0
        execute = self.app.execute

        def counted(cmd):                 # the app's own handler, counted
            self.cmds += 1
            return execute(cmd)
        self.app.execute = counted
        books = self.app.charger.books
        to_ledger = books.to_ledger

        def traced(session):              # the app's own, with a traceback when it fails
            try:
                return to_ledger(session)
            except Exception as exc:
                sys.print_exception(exc)
                raise
        books.to_ledger = traced
        self.min_free = None

    def sample(self):
        """The live heap's low water: free right after a collection."""
        gc.collect()
        f = gc.mem_free()
        if self.min_free is None or f < self.min_free:
            self.min_free = f

    def run(self, seconds, step_ms=100, power_w=0):
        left = seconds * 1000
        flow = EnergyFlow()
        while left > 0:
            self.clock.advance(step_ms)
            left -= step_ms
            gained = flow.add(power_w if self.relay.contacts_closed() else 0, step_ms)
            if gained:
                self.wh += gained
                self.meter.set_energy_wh(self.wh)
            self.app.step()

    def until(self, cond, real_s):
        """Keep the loop going (100 ms of simulated time per pass) until cond() or real_s."""
        t0 = time.ticks_ms()
        while not cond() and time.ticks_diff(time.ticks_ms(), t0) < real_s * 1000:
            self.run(0.1)
            time.sleep_ms(1)
        return cond()

    def session(self):
        self.ev.set_state("B")
        self.run(2)
        refused = self.app.present_card(CARD)
        if refused:
            raise AssertionError("card refused: %s" % refused)
        self.ev.set_state("C")
        self.run(2)
        self.sample()
        self.meter.set_power_w(11000)        # the meter's power register follows the flow
        self.run(self.sc["charge_s"], step_ms=5000, power_w=11000)
        self.meter.set_power_w(0)
        self.sample()
        self.ev.set_state("B")
        self.run(2)
        self.ev.set_state("A")
        self.run(2)
        self.sample()


def main():
    sc = json.loads(sys.stdin.readline())
    s = Scenario(sc)
    app = s.app
    if not s.until(lambda: app.link.connected, 20):
        raise AssertionError("never connected to the broker")
    print("PUBKEY %s" % app.public_key_hex())
    if sys.stdin.readline().strip() != "go":
        return
    s.sample()
    for _ in range(sc["sessions"]):
        s.session()
        # Let the validator's acks in before the next session (bounded, real time).
        s.until(lambda: not app.outbox.pending() and s.cmds >= sc["expect_cmds"], 5)
    s.until(lambda: not app.outbox.pending() and s.cmds >= sc["expect_cmds"], sc["drain_s"])
    s.sample()
    receipts = app.records.log.size
    fault = app.charger.fault
    ok = (receipts == sc["sessions"] and not app.outbox.pending()
          and s.cmds >= sc["expect_cmds"] and fault is None)
    print("RESULT " + json.dumps({
        "ok": ok, "sessions": receipts, "pending": app.outbox.pending(), "cmds": s.cmds,
        "min_free": s.min_free, "acks": app.link.acks, "bad_acks": app.link.bad_acks,
        "fault": fault["code"] if fault else None,
        "detail": fault["detail"] if fault else None}))
    import micropython
    micropython.mem_info()
    app.link.close()
    s.meter.close()
    s.hw["uart"].close()


if __name__ == "__main__":
    main()
