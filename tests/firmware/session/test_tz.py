# POSIX TZ rules evaluated on the device (session/tz.py) against CPython's zoneinfo and the IANA
# database (fixture tz_reference): the offset at every second around each daylight-saving change
# of 2025-2028 in both hemispheres, and the change instants themselves.
from support.fwtest import raises
from session.tz import TzError, TzRule, days_from_civil, year_of


def test_offsets_and_changes_agree_with_zoneinfo(tz_reference):
    for zone in tz_reference:
        rule = TzRule(zone["rule"])
        for t, off in zone["points"]:
            got = rule.offset(t)
            assert got == off, "%s at %d: %d, zoneinfo %d" % (zone["zone"], t, got, off)
        changes = zone["changes"]
        if not changes:
            assert rule.next_change(changes and changes[0] or 1767225600) is None, zone["zone"]
            continue
        t = changes[0] - 86400
        for c in changes:
            got = rule.next_change(t)
            assert got == c, "%s: next change after %d is %d, zoneinfo %d" % (zone["zone"], t, got, c)
            assert rule.next_change(c - 1) == c
            t = c


def test_both_hemispheres_are_covered(tz_reference):
    by_zone = {z["zone"]: z for z in tz_reference}
    assert len(by_zone["Europe/Berlin"]["changes"]) == 8            # 4 years, 2 changes each
    sydney = TzRule(by_zone["Australia/Sydney"]["rule"])
    assert sydney.offset(1767225600) == 11 * 3600                  # 1 Jan 2026: summer (AEDT)
    assert sydney.offset(1782864000) == 10 * 3600                  # 1 Jul 2026: winter (AEST)


def test_rule_forms():
    berlin = TzRule("CET-1CEST,M3.5.0,M10.5.0/3")
    assert berlin.offset(1774745999) == 3600 and berlin.offset(1774746000) == 7200
    assert berlin.next_change(1774745999) == 1774746000
    fixed = TzRule("<+0530>-5:30")
    assert fixed.offset(1774746000) == 19800 and fixed.next_change(0) is None
    # Jn never counts 29 February, n does: J60 is 1 March, 59 is 29 February in a leap year
    j = TzRule("AAA0BBB,J60/0,J300/0")
    n = TzRule("AAA0BBB,59/0,J300/0")
    assert j.next_change(days_from_civil(2028, 2, 1) * 86400) == days_from_civil(2028, 3, 1) * 86400
    assert n.next_change(days_from_civil(2028, 2, 1) * 86400) == days_from_civil(2028, 2, 29) * 86400
    assert year_of(days_from_civil(2028, 12, 31)) == 2028 and year_of(days_from_civil(2029, 1, 1)) == 2029
    assert days_from_civil(1970, 1, 1) == 0 and days_from_civil(2000, 3, 1) == 11017


def test_bad_rules_are_refused():
    for bad in ("", "CET", "CE-1", "CET-1CEST", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
                "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0/168",
                "CET-25", "<+05", "CET-1CEST,M3.5.0,M10.5.0x", "C\"T-1", "X" * 65, 5, None):
        raises(TzError, TzRule, bad)
