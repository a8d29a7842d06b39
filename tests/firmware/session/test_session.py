# Whole charging sessions on simulated hardware against the pymodbus meter: the session's
# energy is the meter register's difference, faults open the contactor and are stored.
# Reboots: test_recovery.py; meter plausibility: test_plausibility.py.
from support.rig import BEGIN_WH, CARD, Rig
from session import charger as ch


def test_whole_session_energy_is_register_difference(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(power_w=11000, seconds=1800)
        assert rig.charger.state == ch.CHARGING and rig.relay.contacts_closed()
        rig.unplug()
        assert rig.charger.state == ch.IDLE, rig.app.faults.records()
        assert not rig.relay.contacts_closed()
        receipts = rig.receipts()
        assert len(receipts) == 1
        r = receipts[0]
        assert r["energy_wh"] == rig.meter_wh - BEGIN_WH
        assert 5000 < r["energy_wh"] < 5600            # 11 kW for about half an hour
        assert '"RV":1000.000' in r["ocmf"]            # begin reading, kWh from integer Wh
        assert r["price"] > 0 and r["reason"] == "ev-unplugged"
        assert rig.app.faults.records() == []


def test_unknown_card_is_refused_and_contactor_stays_open(charger_env):
    with Rig(charger_env) as rig:
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.app.present_card("UNKNOWN") == "unknown-id"
        rig.ev.set_state("C")
        rig.run(1)
        rig.run(30, step_ms=5000, power_w=11000)
        assert not rig.relay.contacts_closed()
        assert rig.charger.state == ch.CONNECTED and rig.receipts() == []


def test_same_card_stops_and_receipt_waits_for_unplug(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=600)
        assert rig.app.present_card(CARD) is None        # the card again: stop
        rig.run(3)
        assert rig.charger.state == ch.STOPPED and not rig.relay.contacts_closed()
        stopped_wh = rig.meter_wh
        rig.run(120, step_ms=1000, power_w=11000)       # EV still asks: nothing flows
        assert rig.meter_wh == stopped_wh and rig.receipts() == []
        rig.unplug()
        r = rig.receipts()[0]
        assert r["reason"] == "user" and r["energy_wh"] == stopped_wh - BEGIN_WH


def test_welded_contactor_is_a_fault_that_needs_a_reset(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=300)
        rig.relay.fault = "welded"
        rig.ev.set_state("B")                 # the EV pauses: the contactor must open
        rig.run(5)
        assert rig.charger.state == ch.FAULT
        assert rig.relay.value() == 0         # coil off, even though the contacts stick
        assert rig.app.faults.records()[-1]["code"].startswith("contactor-")
        rig.ev.set_state("A")
        rig.run(10)
        assert rig.charger.state == ch.FAULT  # a welded contact is not cleared by unplugging
        rig.relay.fault = None
        rig.run(1)
        assert rig.charger.reset_fault() and rig.charger.state == ch.IDLE


def test_full_flash_refuses_new_sessions(charger_env):
    with Rig(charger_env) as rig:
        rig.app.outbox.journal.reserve_bytes = 1 << 60       # no room left for a receipt
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.app.present_card(CARD) == "storage-full"
        rig.ev.set_state("C")
        rig.run(10)
        assert not rig.relay.contacts_closed()


def test_residual_current_trip_opens_the_contactor(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=300)
        rig.hw["rcd"].leak_ua = 7000              # 7 mA DC: above the 6 mA trip level
        rig.run(1)
        assert rig.charger.state == ch.FAULT and not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"] == "rcd-tripped"
        assert rig.receipts()[0]["reason"] == "fault:rcd-tripped"


def test_dead_residual_current_monitor_blocks_charging(charger_env):
    with Rig(charger_env) as rig:
        rig.hw["rcd"].fault = "no_trip"           # its self-test cannot trip it
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.app.present_card(CARD) is None
        rig.ev.set_state("C")
        rig.run(3)
        assert rig.charger.state == ch.FAULT and not rig.relay.contacts_closed()
        assert rig.app.faults.records()[-1]["code"].startswith("rcd-")


def test_state_d_without_ventilation_gets_no_energy(charger_env):
    with Rig(charger_env) as rig:
        assert rig.board.ventilation is False
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.app.present_card(CARD) is None
        rig.ev.set_state("D")                     # the EV asks for ventilation
        rig.run(1)
        rig.run(60, step_ms=1000)
        assert not rig.relay.contacts_closed() and rig.charger.state == ch.AUTHORISED


def test_free_mode_charges_without_a_card(charger_env):
    with Rig(charger_env, auth_mode="free") as rig:
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.charger.state == ch.AUTHORISED       # plugging in is the authorisation
        rig.ev.set_state("C")
        rig.run(1)
        rig.run(300, step_ms=5000, power_w=7400)
        rig.unplug()
        r = rig.receipts()[0]
        assert r["energy_wh"] == rig.meter_wh - BEGIN_WH > 0
        assert '"IS":false' in r["ocmf"] and '"ID"' not in r["ocmf"]


def test_remote_start_before_plug_in_waits_for_the_ev(charger_env):
    with Rig(charger_env) as rig:
        rig.charger.authorise("APP-USER-1", remote=True)   # the app starts before the cable
        rig.run(1)
        assert rig.charger.state == ch.IDLE and not rig.relay.contacts_closed()
        rig.ev.set_state("B")
        rig.run(3)
        assert rig.charger.state == ch.AUTHORISED and rig.charger.session["id"] == "APP-USER-1"


def test_ev_ignoring_a_zero_current_limit_is_disconnected(charger_env):
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=300)
        rig.charger.set_current_limit(0)                # the PWM goes: no current offered
        rig.run(3)
        assert rig.relay.contacts_closed()              # the EV gets time to stop drawing
        rig.run(5)
        assert not rig.relay.contacts_closed() and rig.charger.state == ch.SUSPENDED


def test_tariff_updates_keep_only_what_sessions_need_on_flash(charger_env):
    import os
    with Rig(charger_env) as rig:
        rig.plug_and_charge(seconds=60)
        running = rig.charger.session["tariff"]
        doc = ('{"v":1,"currency":"EUR","utc_offset_min":0,"session_fee_minor":%d,'
               '"bands":[{"start_min":0,"kwh_price_milli":30000}],'
               '"idle_min_price_milli":0,"idle_grace_min":0,"tax_bp":0}')
        for fee in range(5):
            rig.app.billing.set_tariff(doc % fee, keep=running)
        names = sorted(os.listdir(charger_env["data"] + "/tariff"))
        assert names == sorted(["current", running[:16], rig.app.billing.tariff.hash[:16]])
        rig.unplug()
        assert rig.receipts()[0]["tariff"] == running      # the session still billed by its own


def test_ev_leaving_c_opens_the_contactor_during_a_slow_meter_read(charger_env):
    # Real time: a silent meter makes one read wait for all its retries (3 x 200 ms). The
    # pilot is watched between the slices of that wait, so the coil drops within the debounce,
    # not after the read.
    import time
    from hal.clock import RealClock
    clock = RealClock()

    def steps(seconds):
        t_end = time.time() + seconds
        while time.time() < t_end:
            rig.charger.step()
            time.sleep(0.01)

    with Rig(charger_env, clock=clock) as rig:
        rig.ev.set_state("B")
        steps(0.3)
        assert rig.app.present_card(CARD) is None
        rig.ev.set_state("C")
        steps(0.3)
        assert rig.relay.contacts_closed()
        rig.meter.fault("silent")
        rig.charger._next_meter_ms = clock.ticks_ms()   # the next pass reads the meter
        rig.ev.set_state("B")                            # the EV stops asking, mid-read
        t0 = clock.ticks_ms()
        rig.charger.step()
        took = clock.ticks_diff(clock.ticks_ms(), t0)
        opened_after = clock.ticks_diff(rig.relay._changed, t0)
        assert took >= 400                               # the read did block
        assert rig.relay.value() == 0 and opened_after < 150
        steps(0.1)
        assert rig.charger.state == ch.SUSPENDED


def test_a_very_long_plug_in_is_closed_before_its_receipt_grows_too_big(charger_env):
    # Half-hour bands: a day plugged in crosses 48 band starts, one receipt segment each.
    tariff = ('{"v":1,"currency":"EUR","utc_offset_min":0,"session_fee_minor":0,"bands":[%s],'
              '"idle_min_price_milli":0,"idle_grace_min":0,"tax_bp":0}' % ",".join(
                  '{"start_min":%d,"kwh_price_milli":%d}' % (m, 20000 + m) for m in range(0, 1440, 30)))
    with Rig(charger_env, tariff=tariff) as rig:
        rig.plug_and_charge(seconds=1800, power_w=7400)
        rig.ev.set_state("B")                          # full, but left plugged in
        rig.run(1)
        rig.run(26 * 3600, step_ms=60000)
        r = rig.receipts()[0]                          # recorded: no ledger fault
        assert r["reason"] == "segment-limit" and len(r["segments"]) == 40
        assert r["energy_wh"] == rig.meter_wh - BEGIN_WH
        assert rig.app.faults.records() == []
        assert rig.charger.state == ch.CONNECTED       # a new session needs a new authorisation
