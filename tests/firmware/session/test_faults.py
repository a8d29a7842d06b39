# The fault table (session/faults.py): how each fault clears. That it lists every code the
# firmware raises is checked over the sources in tests/host/test_firmware_rules.py.
from drivers import pilot
from session import faults


def test_how_faults_clear():
    assert faults.needs_operator("contactor-welded")
    assert not faults.needs_operator("pilot-diode") and not faults.needs_operator("meter-jump")
    assert faults.needs_operator("no-such-code")        # unknown: the safe answer
    assert faults.meter_untrusted("meter-stale") and not faults.meter_untrusted("rcd-tripped")
    for reason in pilot._FAULT_REASON.values():
        assert faults.code_of("pilot", reason) in faults.FAULTS
    for code in faults.FAULTS:
        clears, untrusted = faults.FAULTS[code]
        assert clears in (faults.UNPLUG, faults.OPERATOR, faults.LATCHED, faults.EVENT)
        assert untrusted == code.startswith("meter-")
