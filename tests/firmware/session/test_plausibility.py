# Meter plausibility (session/plausibility.py): unit checks of the rules, then whole sessions
# against the pymodbus meter where an implausible register is a fault that opens the contactor
# and closes the session on the last good reading.
from support.rig import BEGIN_WH, CARD, Rig
from session import charger as ch
from session.plausibility import Plausibility

CFG = {"rated_current_a": 32, "nominal_voltage_v": 230, "phases": 3}    # 22 kW, 27.6 kW max


def test_rules_backwards_and_jump_beyond_rated_power():
    p = Plausibility(CFG)
    assert p.max_w == 27600
    assert p.check(1000, 100, 1000, 100) is None                 # no change
    assert p.check(1000, 100, 999, 160)[0] == "meter-backwards"
    # 27.6 kW for 3600 s is 27600 Wh, plus 10 Wh for meters counting in 10 Wh steps.
    assert p.check(0, 0, 27610, 3600) is None
    assert p.check(0, 0, 27611, 3600)[0] == "meter-jump"
    assert p.check(0, 0, 27611, 3600, bound_jump=False) is None  # unknown elapsed time
    assert p.check(0, 100, 17, 100) is None                      # 0 s counts as 1 s: 7+10 Wh
    assert p.check(0, 100, 18, 100)[0] == "meter-jump"


def test_rules_begin_after_the_last_session():
    assert Plausibility.check_begin(500, None) is None
    assert Plausibility.check_begin(500, 500) is None
    code, detail = Plausibility.check_begin(499, 500)
    assert code == "meter-backwards" and "499" in detail


def test_silent_meter_is_a_fault_with_contactor_open(charger_env):
    with Rig(charger_env, max_meter_failures=3) as rig:
        rig.plug_and_charge(seconds=300)
        last_good = rig.meter_wh
        rig.meter.fault("silent")
        rig.run(30)
        assert rig.charger.state == ch.FAULT
        assert not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"] == "meter-silent"
        r = rig.receipts()[0]
        assert r["reason"] == "fault:meter-silent" and r["energy_wh"] == last_good - BEGIN_WH


def test_register_going_backwards_is_a_fault(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=300)
        rig.meter.set_energy_wh(rig.meter_wh - 50)
        rig.run(3)
        assert rig.charger.state == ch.FAULT and not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"] == "meter-backwards"


def test_register_jumping_beyond_rated_power_is_a_fault(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=300)
        rig.meter.set_energy_wh(rig.meter_wh + 500)      # 500 Wh in one second: 1.8 MW
        rig.run(2)
        assert rig.charger.state == ch.FAULT and not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"] == "meter-jump"
        # The receipt bills the last plausible reading, not the jump.
        assert rig.receipts()[0]["energy_wh"] == rig.meter_wh - BEGIN_WH


def test_a_jump_in_the_stop_reading_is_a_fault_not_a_crash(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=300)
        good_wh = rig.meter_wh
        rig.meter.set_energy_wh(good_wh + 900)         # implausible: counted while stopping
        assert rig.app.present_card(CARD) is None      # the card again: stop
        rig.run(2)
        assert rig.charger.state == ch.FAULT and rig.charger.session is None
        r = rig.receipts()[0]
        assert r["reason"] == "fault:meter-jump" and r["energy_wh"] == good_wh - BEGIN_WH


# ---- stale and inconsistent meters (FlowCheck) ------------------------------------------------

FLOW_CFG = {"meter_stale_power_w": 1000, "meter_stale_s": 120, "meter_check_window_s": 300,
            "meter_check_tolerance_pct": 25}


def _feed(check, clock, seconds, wh_per_s, power_w, flowing=True, wh=1000):
    """One reading a second; returns (first fault or None, register at the end)."""
    for _ in range(seconds):
        clock.advance(1000)
        wh += wh_per_s
        bad = check.check(wh, power_w, flowing)
        if bad is not None:
            return bad, wh
    return None, wh


def test_flow_rules_stale_register():
    from hal.sim import SimClock
    from session.plausibility import FlowCheck
    clock = SimClock()
    check = FlowCheck(FLOW_CFG, clock)
    bad, _ = _feed(check, clock, 119, 0, 5000)
    assert bad is None                                  # frozen, but not yet 120 s
    bad, _ = _feed(check, clock, 2, 0, 5000)
    assert bad[0] == "meter-stale" and "5000 W" in bad[1]
    check.reset()
    # Below 1 kW the frozen register is not stale (the window's comparison may still catch it).
    assert _feed(check, clock, 250, 0, 900)[0] is None
    check.reset()
    assert _feed(check, clock, 600, 0, 5000, flowing=False)[0] is None   # contactor open
    # A register that moves only every 30 s (coarse steps) is not stale.
    check.reset()
    wh = 2000
    for _ in range(20):                                 # 1.2 kW: 10 Wh every 30 s
        bad, wh = _feed(check, clock, 29, 0, 1200, wh=wh)
        assert bad is None
        clock.advance(1000)
        wh += 10
        assert check.check(wh, 1200, True) is None


def test_flow_rules_power_and_energy_must_agree():
    from hal.sim import SimClock
    from session.plausibility import FlowCheck
    clock = SimClock()
    check = FlowCheck(FLOW_CFG, clock)
    # 3.6 kW is 1 Wh a second: exact agreement for 20 minutes.
    assert _feed(check, clock, 1200, 1, 3600)[0] is None
    # Within 20 Wh + 25 %: 1 Wh a second against 4.5 kW (1.25 Wh a second).
    check.reset()
    assert _feed(check, clock, 1200, 1, 4500)[0] is None
    # The register counts half of what the power says.
    check.reset()
    bad, _ = _feed(check, clock, 301, 1, 7200)
    assert bad[0] == "meter-inconsistent" and "+300 Wh" in bad[1]
    # The power register stuck at a low value while the register counts 3.6 kW.
    check.reset()
    bad, _ = _feed(check, clock, 301, 1, 1500)
    assert bad[0] == "meter-inconsistent"


def test_frozen_register_while_power_flows_is_a_fault(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(power_w=11000, seconds=300)
        last_good = rig.meter_wh
        # The meter answers and reports 11 kW, but its energy register no longer moves.
        rig.run(100, step_ms=5000, power_w=11000, register_pct=0)
        assert rig.charger.state == ch.CHARGING          # 100 s: within meter_stale_s
        rig.run(60, step_ms=5000, power_w=11000, register_pct=0)
        assert rig.charger.state == ch.FAULT and not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"] == "meter-stale"
        r = rig.receipts()[0]
        assert r["reason"] == "fault:meter-stale" and r["energy_wh"] == last_good - BEGIN_WH


def test_register_counting_less_than_the_power_says_is_a_fault(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(power_w=11000, seconds=60)
        # From here the register counts 60 % of the energy the meter's power implies.
        rig.run(900, step_ms=5000, power_w=11000, register_pct=60)
        assert rig.charger.state == ch.FAULT and not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"] == "meter-inconsistent"
        assert rig.receipts()[0]["reason"] == "fault:meter-inconsistent"


def test_a_paused_ev_with_a_still_register_is_no_fault(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(power_w=11000, seconds=300)
        rig.ev.set_state("B")                           # the EV pauses: contactor opens
        rig.run(600, step_ms=5000)
        rig.ev.set_state("C")
        rig.run(600, step_ms=5000, power_w=7400)
        assert rig.charger.state == ch.CHARGING and rig.app.faults.records() == []
