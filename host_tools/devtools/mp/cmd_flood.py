# Runs inside MicroPython for the command-flood attack test and bench (host_tools/bench/
# cmd_flood.py, tests/host/attacks/test_command_flood.py): the whole charger app on simulated
# pilot/contactor hardware, its meter served by pymodbus on a pty, its MQTT uplink on a real
# broker. The host floods cp/<id>/cmd with junk while the operator sends real commands.
# stdin: {"board", "meter_port", "baud", "meter_control", "data", "host", "port", "t0",
#         "operator_spki", "secrets", "charger", "real": how many real commands to expect,
#         "junk": how many junk messages the host sends, "leave_at": junk count at which the
#         EV leaves state C, "wall_s": give up after this long}
# stdout: "CHARGING" once the contactor is closed (the host starts the flood then), then one
# JSON line with what happened.
import json
import sys
from time import ticks_diff, ticks_ms

from app import config
from app.board import load_board
from app.charger_app import ChargerApp
from app.simulated import sim_hardware
from hal.meterctl import MeterControl
from hal.sim import SimClock


def say(line):
    sys.stdout.write(line + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def main():
    cfg = json.loads(sys.stdin.readline())
    board = load_board(cfg["board"])
    conf = config.load(board, None, {
        "charger_id": cfg["charger"], "meter_serial": "SIM0001", "data_dir": cfg["data"],
        "mqtt_host": cfg["host"], "mqtt_port": cfg["port"], "auth_mode": "free",
        "operator_key": cfg["operator_spki"], "telemetry_interval_s": 5,
        "health_interval_s": 5, "meter_poll_ms": 1000, "secrets_path": cfg["secrets"]})
    meter = MeterControl(cfg["meter_control"])
    meter.set_energy_wh(1000000)
    clock = SimClock(epoch=cfg["t0"])
    hw = sim_hardware(board, cfg["meter_port"], cfg["baud"], clock)
    app = ChargerApp(board, conf, hw)
    ev, relay, link = hw["ev"], hw["relay"], app.link
    inbox = link.inbox
    executed = []
    execute = app.execute

    def counted(cmd):
        out = execute(cmd)
        executed.append((cmd.name, cmd.n, out[0]))
        return out
    app.execute = counted
    steps = [0]

    def step():
        clock.advance(100)
        app.step()
        steps[0] += 1

    start = ticks_ms()

    def wall_left():
        return ticks_diff(ticks_ms(), start) < cfg["wall_s"] * 1000

    while not link.connected and wall_left():
        step()
    ev.set_state("B")
    for _ in range(5):
        step()
    ev.set_state("C")
    while not relay.contacts_closed() and wall_left():
        step()
    say("CHARGING")
    closed_steps = None         # steps from the EV leaving C until the contactor was open
    left_at = None              # junk refused when it left
    opened_junk = None          # junk refused when the contactor was open
    seen, quiet_at = 0, ticks_ms()
    while wall_left():
        step()
        now_seen = inbox.junk + inbox.dropped + len(executed)
        if now_seen != seen:
            seen, quiet_at = now_seen, ticks_ms()
        if left_at is None and inbox.junk + inbox.dropped >= cfg["leave_at"]:
            ev.set_state("B")
            left_at = inbox.junk + inbox.dropped
            closed_steps = 0
        elif left_at is not None and opened_junk is None:
            closed_steps += 1
            if not relay.contacts_closed():
                opened_junk = inbox.junk + inbox.dropped
        if len(executed) >= cfg["real"] and opened_junk is not None and \
                (seen >= cfg["junk"] + cfg["real"] or ticks_diff(ticks_ms(), quiet_at) > 3000):
            break           # everything arrived, or the broker dropped some and all is quiet
    health = json.loads(app.health())
    out = {"executed": executed, "junk_cmds": inbox.junk, "dropped_cmds": inbox.dropped,
           "sig_checks": link.verifier.sig_checks, "left_at_junk": left_at,
           "open_after_steps": closed_steps if opened_junk is not None else None,
           "opened_at_junk": opened_junk, "contactor_closed": relay.contacts_closed(),
           "state": app.charger.state, "fault": app.charger.fault, "steps": steps[0],
           "wall_ms": ticks_diff(ticks_ms(), start), "health_cmd_junk": health["cmd_junk"],
           "health_cmd_dropped": health["cmd_dropped"]}
    link.close()
    meter.close()
    say(json.dumps(out))


main()
