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
