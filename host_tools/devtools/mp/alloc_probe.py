# Runs inside MicroPython (the 32-bit build with the firmware frozen in) for
# host_tools/bench/esp32.py: bytes allocated per pass by what the charging loop does every pass.
#
# stdin, one JSON line: {"board", "meter": {"port", "baud", "control"}, "data", "n"}
# prints: ALLOC {"meter_read", "pilot_poll", "clock", "idle_step", "charging_step"} (bytes per
# pass, the mean over n passes with the collector off, rounded up).
import gc
import json
import sys

from app import config
from app.board import load_board
from app.charger_app import ChargerApp
from app.simulated import sim_hardware
from hal.meterctl import MeterControl
from hal.sim import SimClock
from scenario_cards import CARD, CARD_ID, provision


def per_pass(fn, n, watch=None):
    """Bytes left allocated per call of fn, the mean over n calls with no collection at all:
    the collector off, and the safety watch's own collections (its tidy() at the end of a
    pass, watch.gc_bytes) paused too: one inside the n passes hid what came before it."""
    fn()                            # warm: first-time lookups, lazily made buffers
    gc.collect()
    gc.disable()
    share = 0
    if watch is not None:
        share, watch.gc_bytes = watch.gc_bytes, 0
    try:
        before = gc.mem_alloc()
        for _ in range(n):
            fn()
        used = gc.mem_alloc() - before
    finally:
        if watch is not None:
            watch.gc_bytes = share
        gc.enable()
    return -(-used // n)


def main():
    sc = json.loads(sys.stdin.readline())
    n = sc["n"]
    board = load_board(sc["board"])
    cfg = config.load(board, None, {"charger_id": "CP-ALLOC", "data_dir": sc["data"],
                                    "allow_list": [CARD_ID], "meter_serial": "SIM-A",
                                    "mqtt_host": None,
                                    "secrets_path": provision(sc["data"] + "-secrets.json")})
    clock = SimClock()
    m = sc["meter"]
    hw = sim_hardware(board, m["port"], m["baud"], clock)
    ctl = MeterControl(m["control"])
    ctl.set_energy_wh(1234567)
    ctl.set_current_ma(16000)
    app = ChargerApp(board, cfg, hw)
    ch = app.charger
    out = {}
    out["meter_read"] = per_pass(ch.meter.read, n)

    def poll():
        clock.advance(20)
        ch.pilot.poll()
    out["pilot_poll"] = per_pass(poll, n)

    def tick():
        clock.advance(20)
        clock.time()
        clock.ticks_diff(clock.ticks_ms(), 0)
    out["clock"] = per_pass(tick, n)

    def step():
        clock.advance(20)
        app.step()
    for _ in range(200):
        step()
    out["idle_step"] = per_pass(step, n, app.safety)
    hw["ev"].set_state("B")
    for _ in range(200):
        step()
    if app.present_card(CARD):
        raise AssertionError("card refused")
    hw["ev"].set_state("C")
    for _ in range(200):
        step()
    if not hw["relay"].contacts_closed():
        raise AssertionError("not charging")
    out["charging_step"] = per_pass(step, n, app.safety)
    print("ALLOC " + json.dumps(out))
    ctl.close()
    hw["uart"].close()


main()
