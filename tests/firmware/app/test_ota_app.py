# Updates over MQTT to the whole charger app (app/ota.py + app/update.py + uplink/mqtt.py), with
# the host's update server (host_tools/operate/ota_server.py, fixture ota_service) answering
# chunk requests through a real Mosquitto: an update published mid-session is downloaded (a
# corrupt chunk refused and asked for again), waits for the session's end, switches, and the
# charger boots it on trial, confirms it and puts its version in receipts (OCMF GV); a wrong
# signature and a downgrade are refused and said so on the status topic; a connection dropped
# mid-download resumes at the chunk the flash says, never fetching a finished chunk again; a
# version on trial that never reaches the broker, or has a loop fault, does not confirm and
# rolls itself back.
import json
import sys

from store import bootsel
from support.mqttpeer import Peer, control, wait_for
from support.rig import Rig

MICROPYTHON = sys.implementation.name == "micropython"

STATUS = b"cp/CP-TEST-1/ota/status"


def _rig(env, broker, svc, **kw):
    env = dict(env)
    env["broker"] = broker
    return Rig(env, operator_key=svc["spki"], ota_confirm_s=2, ota_retry_ms=1000,
               health_interval_s=60, telemetry_interval_s=60, **kw)


def _statuses(peer):
    peer.pump()
    return [json.loads(p) for _, p in peer.take(STATUS) if p]


def _run_until(rig, cond, seen, peer, timeout_ms=30000, power_w=0):
    def step():
        rig.run(0.1, power_w=power_w)
        seen.extend(_statuses(peer))
    wait_for(cond, step, timeout_ms)


def test_update_mid_session_waits_switches_at_idle_and_boots_on_trial(charger_env, mosquitto_broker,
                                                                       ota_service):
    svc = ota_service
    root = charger_env["data"] + "/ota"
    rig = _rig(charger_env, mosquitto_broker, svc)
    peer = Peer(mosquitto_broker, "operator", [STATUS])
    seen = []
    try:
        _run_until(rig, lambda: rig.app.link.connected, seen, peer)
        rig.plug_and_charge(seconds=60)
        assert rig.charger.session is not None
        ota = rig.app.ota
        # No update in hand: the Updater is not built and its module is not in the heap (on
        # MicroPython, one process per test; CPython's test process imports it for others).
        assert ota.updater is None
        assert MICROPYTHON is False or "app.update" not in sys.modules
        peer.publish(b"cp/CP-TEST-1/ota/manifest", svc["manifests"]["v2"].encode(), retain=True)
        _run_until(rig, lambda: ota.state == "waiting-idle", seen, peer, power_w=11000)
        assert ota.corrupt == 1 and ota.chunks_in == svc["chunks"]["v2"]   # refused, asked again
        assert rig.charger.session is not None and rig.relay.contacts_closed()
        assert bootsel.active(root) == (0, "0")                 # mid-session: still the image
        rig.run(30, step_ms=5000, power_w=11000)
        assert ota.state == "waiting-idle" and bootsel.active(root) == (0, "0")
        rig.unplug()
        _run_until(rig, lambda: ota.state == "rebooting", seen, peer)
        assert bootsel.active(root) == (2, "2.0.0") and bootsel.on_trial(root)
        _run_until(rig, lambda: seen and seen[-1]["state"] == "rebooting", seen, peer)
        states = [s["state"] for s in seen]
        assert "downloading" in states and "waiting-idle" in states, states
        assert states.index("waiting-idle") < states.index("rebooting")
        assert any(s["error"] == "corrupt" for s in seen)
        last = seen[-1]
        assert last["target"] == "2.0.0" and last["chunk"] == last["chunks"] == svc["chunks"]["v2"]
        meter_wh = rig.meter_wh
    finally:
        rig.close()
    # The reboot: the same flash, the version the selector chose.
    rig = _rig(charger_env, mosquitto_broker, svc, meter_wh=meter_wh)
    seen = []
    try:
        ota = rig.app.ota
        assert ota.trial and ota.version == "2.0.0" and rig.app.cfg["firmware_version"] == "2.0.0"
        _run_until(rig, lambda: not ota.trial and seen and not seen[-1]["trial"], seen, peer)
        assert not bootsel.on_trial(root) and seen[-1]["running"] == "2.0.0"
        assert seen[-1]["state"] == "current"         # the retained manifest names what runs
        rig.plug_and_charge(seconds=120)
        rig.unplug()
        r = rig.receipts()[-1]
        assert "\"GV\":\"2.0.0\"" in r["ocmf"], r       # OCMF GV: the running version
        # A manifest by another key, then a downgrade: refused, said on the status topic, and
        # the running version stays.
        peer.publish(b"ota/manifest", svc["manifests"]["foreign"].encode(), retain=True)
        _run_until(rig, lambda: seen and seen[-1]["error"] == "bad-signature", seen, peer)
        peer.publish(b"ota/manifest", svc["manifests"]["v1"].encode(), retain=True)
        _run_until(rig, lambda: seen and seen[-1]["error"] == "downgrade", seen, peer)
        assert seen[-1]["state"] == "rejected" and seen[-1]["running"] == "2.0.0"
        assert bootsel.active(root) == (2, "2.0.0")
        # Nothing in hand: the Updater and its module have left the heap.
        assert rig.app.ota.updater is None
        assert MICROPYTHON is False or "app.update" not in sys.modules
        peer.publish(b"ota/manifest", b"", retain=True)
        peer.publish(b"cp/CP-TEST-1/ota/manifest", b"", retain=True)
    finally:
        rig.close()


def test_dropped_connection_resumes_where_the_flash_says(charger_env, mosquitto_broker, ota_service):
    svc = ota_service
    root = charger_env["data"] + "/ota"
    rig = _rig(charger_env, mosquitto_broker, svc)
    peer = Peer(mosquitto_broker, "operator", [STATUS])
    seen = []
    try:
        _run_until(rig, lambda: rig.app.link.connected, seen, peer)
        peer.publish(b"ota/manifest", svc["manifests"]["v3"].encode(), retain=True)
        ota = rig.app.ota
        total = svc["chunks"]["v3"]
        _run_until(rig, lambda: ota.chunks_in >= total // 2, seen, peer)
        control(mosquitto_broker, "proxy down")           # the link dies mid-download
        _run_until(rig, lambda: not rig.app.link.connected, seen, peer)
        done = ota.updater.progress()[0]
        assert 0 < done < total
        # The manifest was checked with the command verifier's own comb: none built again.
        assert ota.updater.key is rig.app.link.verifier.key
        rig.run(3)
        assert ota.updater.progress()[0] == done         # nothing arrives while it is down
        control(mosquitto_broker, "proxy up")
        _run_until(rig, lambda: ota.state == "rebooting", seen, peer)
        assert rig.app.link.connects >= 2
        # every chunk written exactly once: the one refused as corrupt was asked for again
        assert ota.chunks_in == total and ota.corrupt == 1
        assert bootsel.active(root) == (3, "3.0.0")
        peer.publish(b"ota/manifest", b"", retain=True)
    finally:
        rig.close()


def _stage_v2(root, svc):
    """v2 staged and switched to by the update code itself (what a download ends in)."""
    from app import update as up
    u = up.Updater(root, svc["spki"], svc["charger"])
    u.offer(svc["manifests"]["v2"].encode())
    files = {"app/__init__.py": b""}
    probe = b"VERSION = '2.0.0'\n"
    for i in range(120):
        probe += b"# line %04d of padding\n" % i
    files["app/probe.py"] = probe
    want = u.next_needed()
    while want is not None:
        i, off = want
        path = u.manifest["files"][i]["path"]
        want = u.chunk(i, off, files[path][off:off + 256])
    assert u.apply(True)


def test_a_version_that_never_confirms_rolls_itself_back(charger_env, mosquitto_broker, ota_service):
    """On trial, the broker never reached (the link is down): after 3 x ota_confirm_s, once no
    session runs, the charger rolls back to the image and resets."""
    svc = ota_service
    root = charger_env["data"] + "/ota"
    _stage_v2(root, svc)
    control(mosquitto_broker, "proxy down")
    rig = _rig(charger_env, mosquitto_broker, svc)
    resets = []
    try:
        ota = rig.app.ota
        ota.reset = lambda: resets.append(1)
        assert ota.trial and rig.app.cfg["firmware_version"] == "2.0.0"
        rig.plug_and_charge(seconds=10)
        rig.run(5)                                   # 3 x ota_confirm_s passed, mid-session
        assert ota.trial and not resets and bootsel.active(root) == (2, "2.0.0")
        rig.unplug()
        rig.run(1)
        assert resets == [1] and not ota.trial
        assert bootsel.active(root) == (0, "0") and bootsel.state(root)["bad"] == 2
    finally:
        control(mosquitto_broker, "proxy up")
        rig.close()


def test_a_version_with_a_loop_fault_does_not_confirm(charger_env, mosquitto_broker, ota_service):
    """A loop fault on trial (app/main.py records an exception of the loop as one) keeps the
    version from confirming, also once the fault has cleared."""
    svc = ota_service
    root = charger_env["data"] + "/ota"
    _stage_v2(root, svc)
    rig = _rig(charger_env, mosquitto_broker, svc)
    try:
        ota = rig.app.ota
        rig.charger.fail("loop", "RuntimeError('broken')")   # what app/main.py records
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        rig.run(5)                          # past ota_confirm_s, and the fault has cleared
        assert rig.charger.fault is None
        assert ota.trial and bootsel.on_trial(root)
    finally:
        rig.close()


def test_a_refused_chunk_is_reported_even_when_its_status_was_lost(charger_env, mosquitto_broker,
                                                                   ota_service):
    # The status that says "corrupt" cannot be sent until the good copy has arrived (a full
    # send buffer, a link busy): the refusal must still reach the operator afterwards.
    svc = ota_service
    rig = _rig(charger_env, mosquitto_broker, svc)
    peer = Peer(mosquitto_broker, "operator", [STATUS])
    seen = []
    try:
        _run_until(rig, lambda: rig.app.link.connected, seen, peer)
        link, ota = rig.app.link, rig.app.ota
        real = link.publish
        lost = [0, None]                 # statuses lost; chunks_in when the refusal came

        def lossy(topic, payload, retain=False):
            if topic == link.topics.ota_status and ota.corrupt and lost[1] is None:
                lost[1] = ota.chunks_in
            if topic == link.topics.ota_status and lost[1] == ota.chunks_in:
                lost[0] += 1
                return False
            return real(topic, payload, retain)
        link.publish = lossy
        peer.publish(b"ota/manifest", svc["manifests"]["v3"].encode(), retain=True)
        _run_until(rig, lambda: ota.state == "rebooting", seen, peer)
        assert ota.corrupt == 1 and lost[0] >= 1
        assert any(s["error"] == "corrupt" for s in seen), seen
        peer.publish(b"ota/manifest", b"", retain=True)
    finally:
        rig.close()
