# Operator commands through a real broker to the whole charger app: each signed command has its
# effect on the session, answered on cmd/result; a command the session cannot carry out changes
# nothing and says why.
import json

from hal.sim import SimClock
from support.mqttpeer import Peer, wait_for
from support.cards import CARD, CARD_ID, card_id
from support.rig import Rig
from session import charger as ch


def _rig(charger_env, amqtt_broker, app_commands):
    env = dict(charger_env)
    env["broker"] = amqtt_broker
    return Rig(env, clock=SimClock(epoch=app_commands["t0"]),
               operator_key=app_commands["operator_spki"], telemetry_interval_s=0,
               health_interval_s=1)


def _command(rig, peer, raw):
    """Publish a signed command; run the app until its result arrives; return the result.
    (The peers subscribe to what their test reads, never to cp/<id>/#: every message they
    hold stays in the test's heap beside the app's, and a peer that kept the charger's health,
    receipts and checkpoints for a whole test scattered them until a receipt's 1.2 KB block
    could no longer be found.)"""
    peer.publish(b"cp/CP-TEST-1/cmd", raw.encode())
    got = []

    def step():
        rig.run(0.1)
        peer.pump()
        got.extend(peer.take(b"cp/CP-TEST-1/cmd/result"))
    wait_for(lambda: got, step)
    return json.loads(got[0][1])


def test_remote_start_limit_stop_and_tariff(charger_env, amqtt_broker, app_commands):
    msgs = app_commands["msgs"]
    rig = _rig(charger_env, amqtt_broker, app_commands)
    peer = Peer(amqtt_broker, "operator", [b"cp/CP-TEST-1/cmd/result", b"cp/CP-TEST-1/telemetry"])
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        rig.ev.set_state("B")
        rig.run(1)
        assert _command(rig, peer, msgs["start"])["result"] == "ok"
        assert rig.charger.state == ch.AUTHORISED
        rig.ev.set_state("C")
        rig.run(1)
        assert rig.relay.contacts_closed()
        assert rig.charger.pilot.offered_ma() > 31000          # the board's 32 A
        assert _command(rig, peer, msgs["limit"])["result"] == "ok"
        offered = rig.charger.pilot.offered_ma()               # duty rounds down, never up
        assert 15500 < offered <= 16000
        bad = _command(rig, peer, msgs["bad_limit"])           # 40 A: above the board's rating
        assert bad["result"] == "rejected" and rig.charger.pilot.offered_ma() == offered
        rig.run(60, step_ms=5000, power_w=3700)
        telemetry = []

        def more():                 # QoS 0 through a loaded broker: wait for it, bounded
            peer.pump()
            for _, payload in peer.take(b"cp/CP-TEST-1/telemetry"):
                telemetry.append(json.loads(payload))
            rig.run(5, step_ms=5000, power_w=3700)
        wait_for(lambda: telemetry and telemetry[-1]["wh"] > 0, more)
        # The remote id, as the receipt names it: the OCPP bridge's idTag for the session.
        assert all(t["id"] == "APP-USER-7" and t["it"] == "CENTRAL" for t in telemetry)
        assert _command(rig, peer, msgs["stop"])["result"] == "ok"
        # The result may arrive in the very pass that opened the coil, before the simulated
        # contacts (30 ms drop-out) have moved: give them one pass of simulated time.
        rig.run(0.1)
        assert rig.charger.state == ch.STOPPED and not rig.relay.contacts_closed()
        old_tariff = rig.app.billing.tariff.hash
        assert _command(rig, peer, msgs["tariff"])["result"] == "ok"
        assert rig.app.billing.tariff.hash != old_tariff
        rig.unplug()
        r = rig.receipts()[0]
        assert r["reason"] == "remote" and r["tariff"] == old_tariff   # the session keeps its tariff
        assert '"ID":"APP-USER-7"' in r["ocmf"] and '"IT":"CENTRAL"' in r["ocmf"]
    finally:
        peer.close()
        rig.close()


def test_telemetry_names_the_card_by_its_pseudonym_never_its_uid(charger_env, amqtt_broker,
                                                                  app_commands):
    rig = _rig(charger_env, amqtt_broker, app_commands)
    peer = Peer(amqtt_broker, "bridge", [b"cp/CP-TEST-1/telemetry"])
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        rig.plug_and_charge(card=CARD, seconds=30)
        raw = []

        def more():
            peer.pump()
            raw.extend(p for _, p in peer.take(b"cp/CP-TEST-1/telemetry"))
            rig.run(5, step_ms=5000, power_w=11000)
        wait_for(lambda: len(raw) >= 2, more)
        for payload in raw:                 # from the first one on: the session's start
            t = json.loads(payload)
            assert t["id"] == CARD_ID and t["it"] == "LOCAL"
            assert CARD.encode() not in payload and CARD.lower().encode() not in payload
    finally:
        peer.close()
        rig.close()
    env = dict(charger_env)                 # free mode: no id to name
    env["data"] = charger_env["data"] + "-free"
    env["broker"] = amqtt_broker
    rig = Rig(env, clock=SimClock(epoch=app_commands["t0"]), auth_mode="free",
              telemetry_interval_s=0)
    peer = Peer(amqtt_broker, "bridge2", [b"cp/CP-TEST-1/telemetry"])
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        rig.ev.set_state("B")
        rig.run(3)
        rig.ev.set_state("C")
        raw = []

        def more_free():
            peer.pump()
            raw.extend(p for _, p in peer.take(b"cp/CP-TEST-1/telemetry"))
            rig.run(5, step_ms=5000, power_w=11000)
        wait_for(lambda: raw, more_free)
        assert "id" not in json.loads(raw[0]) and "it" not in json.loads(raw[0])
    finally:
        peer.close()
        rig.close()


def test_reservation_holds_the_connector(charger_env, amqtt_broker, app_commands):
    msgs = app_commands["msgs"]
    rig = _rig(charger_env, amqtt_broker, app_commands)
    peer = Peer(amqtt_broker, "operator", [b"cp/CP-TEST-1/cmd/result"])
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        assert _command(rig, peer, msgs["reserve"])["result"] == "ok"
        rig.charger.auth.allow_list.add(card_id("04FE00DD11EE22"))
        rig.ev.set_state("B")
        rig.run(1)
        assert rig.app.present_card("04FE00DD11EE22") == "reserved"
        assert rig.app.present_card(CARD) is None          # the card it is reserved for
        # A replayed command (same counter) is refused and changes nothing.
        assert _command(rig, peer, msgs["reserve"])["result"] == "replayed"
    finally:
        peer.close()
        rig.close()


def test_health_is_retained_with_the_heap_low_water_mark(charger_env, amqtt_broker, app_commands):
    rig = _rig(charger_env, amqtt_broker, app_commands)
    try:
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        rig.plug_and_charge(seconds=120)
        rig.unplug()
        rig.run(1)
    finally:
        rig.close()
    # A subscriber that comes later still gets the latest health (retained).
    peer = Peer(amqtt_broker, "dashboard", [b"cp/CP-TEST-1/health"])
    try:
        got = []

        def step():
            peer.pump()
            got.extend(peer.take(b"cp/CP-TEST-1/health"))
        wait_for(lambda: got, step)
        health = json.loads(got[-1][1])
        assert health["state"] == ch.IDLE and health["fault"] is None
        assert health["log_size"] == 1 and health["outbox_pending"] == 2   # no validator acked
        import sys
        if sys.implementation.name == "micropython":
            import gc
            gc.collect()
            # The all-time low: below what is free now, which is at most this test's budget.
            assert 0 < health["heap_min"] <= gc.mem_free() + 64
        else:
            assert health["heap_min"] is None
    finally:
        peer.close()
