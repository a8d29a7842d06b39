"""Issue 8's command flood, replayed against the whole charger app on the MicroPython unix port
(the frozen 32-bit build, 112 KiB heap) and a real Mosquitto: anyone on the broker floods
cp/<id>/cmd with 1,000 well-formed junk commands (valid JSON for this charger, fresh counters,
DER signatures of random numbers, half behind a made-up MAC) while the operator sends 5 real
ones, and the EV leaves state C in the middle of it.

Before the command MAC, every junk command cost a P-256 verification (about a second on an
ESP32) and the 4-place queue was full of junk: 0 of 5 real commands were executed (the bench
row command_flood_real_commands_executed_without_cmd_key shows it again). Now junk is refused
by the MAC screen as it arrives: all 5 run, no junk reaches a signature check, and the safety
loop opens the contactor as usual while the flood goes on."""
from host_tools.sim.cmd_flood import JUNK, REAL, run_flood


def test_a_junk_flood_neither_starves_real_commands_nor_the_safety_loop(tmp_path):
    got = run_flood("mosquitto", workdir=str(tmp_path))
    sent = got["sent"]
    assert sent["junk"] == JUNK and len(sent["real"]) == REAL
    # Every real command executed, in order, each after exactly one signature check.
    assert [(name, n, result) for name, n, result in got["executed"]] == \
        [("current_limit", n, "ok") for n in sent["real"]], got
    assert got["sig_checks"] == REAL, got              # none spent on junk
    # Junk was refused by the screen, none crowded a real command out of the queue.
    assert got["dropped_cmds"] == 0
    assert 0.9 * JUNK <= got["junk_cmds"] <= JUNK, got
    assert (got["health_cmd_junk"], got["health_cmd_dropped"]) == (got["junk_cmds"], 0)
    # The EV left C mid-flood: the contactor opened within a few loop passes, with junk still
    # arriving after it had.
    assert got["open_after_steps"] is not None and got["open_after_steps"] <= 5, got
    assert got["left_at_junk"] <= got["opened_at_junk"] < got["junk_cmds"], got
    assert not got["contactor_closed"] and got["fault"] is None
