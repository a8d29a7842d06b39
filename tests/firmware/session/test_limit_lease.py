# A site controller's current limit is a lease: unless renewed within its ttl, the charger falls
# back to its configured safe current by itself, on the first loop pass after it ran out; an
# operator's limit without a ttl stays. Whole charger on simulated hardware, both interpreters.
from support.rig import Rig
from support.fwtest import raises
from session import charger as ch


def _charging(rig):
    rig.plug_and_charge(power_w=7000, seconds=60)
    assert rig.charger.state == ch.CHARGING


def test_limit_falls_back_when_the_lease_runs_out(charger_env):
    with Rig(charger_env, fallback_current_ma=6000) as rig:
        _charging(rig)
        rig.charger.set_current_limit(16000, ttl_s=30)
        assert 15500 < rig.charger.pilot.offered_ma() <= 16000
        rig.run(29, step_ms=500, power_w=3700)
        assert 15500 < rig.charger.pilot.offered_ma() <= 16000      # still leased
        rig.charger.set_current_limit(20000, ttl_s=30)               # renewed: a new lease
        rig.run(29, step_ms=500, power_w=3700)
        assert 19500 < rig.charger.pilot.offered_ma() <= 20000
        rig.run(1.5, step_ms=100, power_w=3700)                      # ran out: fallback
        assert 5500 < rig.charger.pilot.offered_ma() <= 6000
        assert rig.charger.current_limit_ma == 6000 and rig.charger.lease.expired == 1
        assert rig.charger.state == ch.CHARGING and rig.relay.contacts_closed()


def test_operator_limit_without_ttl_stays_and_zero_fallback_pauses(charger_env):
    with Rig(charger_env, fallback_current_ma=0) as rig:
        _charging(rig)
        rig.charger.set_current_limit(10000)
        rig.run(600, step_ms=5000, power_w=2300)
        assert 9500 < rig.charger.pilot.offered_ma() <= 10000 and rig.charger.lease.expired == 0
        rig.charger.set_current_limit(16000, ttl_s=5)
        rig.run(6, step_ms=100, power_w=3700)
        assert rig.charger.current_limit_ma == 0 and rig.charger.pilot.offered_ma() == 0


def test_bad_fallback_is_a_config_error(charger_env):
    from app import config
    exc = raises(config.ConfigError, Rig, charger_env, fallback_current_ma=3000)
    assert "fallback_current_ma" in str(exc)
