# Updates over MQTT to the whole charger app (app/ota.py + app/update.py + uplink/mqtt.py), with
# the host's update server (host_tools/operate/ota_server.py, fixture ota_service) answering
# chunk requests through a real Mosquitto: an update published mid-session is downloaded (a
# corrupt chunk refused and asked for again), waits for the session's end, switches, and the
# charger boots it on trial, confirms it and puts its version in receipts (OCMF GV); a wrong
# signature and a downgrade are refused and said so on the status topic; a connection dropped
# mid-download resumes at the chunk the flash says, never fetching a finished chunk again.
import json

from store import bootsel
from support.mqttpeer import Peer, control, wait_for
from support.rig import Rig

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
        peer.publish(b"cp/CP-TEST-1/ota/manifest", svc["manifests"]["v2"].encode(), retain=True)
        ota = rig.app.ota
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
        assert bootsel.active(root) == (2, "2.0.0") and rig.app.ota.updater.manifest is None
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
