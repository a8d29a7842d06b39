# Recovery after a reboot (session/recovery.py), on simulated hardware against the pymodbus
# meter: a reboot mid-session neither loses nor double-bills the session; a damaged journal,
# a meter that does not come back, an RTC behind the journal are handled.
from support.rig import BEGIN_WH, Rig
from session import charger as ch


def test_reboot_mid_session_resumes_and_bills_once(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=600)
    before_wh = rig.meter_wh
    rig.close()
    # Power cut: new devices (coil off), same flash; the EV is still plugged in and asks.
    rig2 = Rig(charger_env, meter_wh=None, ev=rig.ev, clock=rig.clock)
    rig2.meter_wh = before_wh
    try:
        rig2.run(1)
        assert rig2.charger.state == ch.RECOVERING and not rig2.relay.contacts_closed()
        rig2.run(5)
        assert rig2.charger.state == ch.CHARGING     # re-established, then closed again
        rig2.run(600, step_ms=5000, power_w=11000)
        rig2.unplug()
        receipts = rig2.receipts()
        assert len(receipts) == 1
        assert receipts[0]["energy_wh"] == rig2.meter_wh - BEGIN_WH
    finally:
        rig2.close()


def test_reboot_after_unplug_closes_session_with_meter_reading(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=600)
    rig.meter_wh += 20                                   # counted before the power went
    rig.meter.set_energy_wh(rig.meter_wh)
    rig.close()
    rig.ev.set_state("A")                                # unplugged while the charger was off
    with Rig(charger_env, meter_wh=None, ev=rig.ev, clock=rig.clock) as rig2:
        rig2.run(10)
        assert rig2.charger.state == ch.IDLE
        r = rig2.receipts()[0]
        assert r["reason"] == "power-loss" and r["energy_wh"] == rig.meter_wh - BEGIN_WH


def test_crash_between_ledger_and_journal_does_not_bill_twice(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=300)
    s = rig.charger.session
    rig.unplug()
    # The receipt is in the ledger; put the closing session back in the journal, as if the
    # power went before the journal was cleared.
    s["phase"] = ch.CLOSING
    s["end_wh"] = s["last_wh"]
    rig.charger.sessions.save(s)
    rig.close()
    with Rig(charger_env, meter_wh=None, ev=rig.ev, clock=rig.clock) as rig2:
        rig2.run(5)
        assert len(rig2.receipts()) == 1 and rig2.app.records.log.size == 1
        assert rig2.charger.sessions.load() is None


def test_damaged_session_journal_is_a_fault_not_a_crash(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=300)
    rig.unplug()
    rig.plug_and_charge(seconds=300)                 # a second session, running
    rig.close()
    path = charger_env["data"] + "/session/current"
    for p in (path, path + ".tmp"):
        try:
            with open(p, "r+b") as f:
                f.seek(20)
                f.write(b"XXXX")                     # flash damage in the running session
        except OSError:
            pass
    with Rig(charger_env, meter_wh=None, ev=rig.ev, clock=rig.clock) as rig2:
        assert rig2.app.faults.records()[-1]["code"] == "session-journal"
        assert len(rig2.receipts()) == 1            # the recorded session is untouched
        rig2.ev.set_state("A")
        rig2.run(3)
        assert rig2.charger.state == ch.IDLE


def test_silent_meter_after_reboot_closes_the_session_as_a_fault(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=300)
    rig.close()
    with Rig(charger_env, meter_wh=None, ev=rig.ev, clock=rig.clock, max_meter_failures=3) as rig2:
        rig2.meter.fault("silent")                  # the meter did not come back with the power
        rig2.run(10)
        assert rig2.charger.state == ch.FAULT and not rig2.relay.contacts_closed()
        r = rig2.receipts()[0]
        assert r["reason"] == "fault:meter-silent" and r["energy_wh"] >= 0


def test_rtc_behind_the_journal_after_a_power_cut_still_bills(charger_env):
    rig = Rig(charger_env)
    rig.plug_and_charge(seconds=3600)
    rig.close()
    # The board's RTC lost the time with the power: it restarts hours behind the journal.
    with Rig(charger_env, meter_wh=None, ev=rig.ev) as rig2:
        rig2.meter_wh = rig.meter_wh
        rig2.run(5)
        assert rig2.charger.state == ch.CHARGING
        rig2.run(600, step_ms=5000, power_w=11000)
        rig2.unplug()
        r = rig2.receipts()[0]
        assert r["energy_wh"] == rig2.meter_wh - BEGIN_WH
        assert r["end"] >= r["charge_end"] >= r["begin"]
