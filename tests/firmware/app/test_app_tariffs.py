# Published tariffs through a real broker to the whole charger app: retained on tariff/<id>,
# signed by the operator key. The app takes one per pass, checks the signature, and either puts
# it in force, schedules it (valid_from ahead: only sessions starting after it are billed by it)
# or refuses it, answering on cmd/result; a refused message changes nothing.
import gc
import json

from hal.sim import SimClock
from support.mqttpeer import Peer, wait_for
from support.rig import Rig


def _results(rig, peer, n):
    got = []

    def step():
        rig.run(0.1)
        peer.pump()
        got.extend(json.loads(p) for _, p in peer.take(b"cp/CP-TEST-1/cmd/result"))
    wait_for(lambda: len(got) >= n, step, timeout_ms=20000)
    return got


def test_retained_tariffs_are_taken_scheduled_and_attacks_refused(charger_env, amqtt_broker,
                                                                 published_tariffs):
    m = published_tariffs["msgs"]
    peer = Peer(amqtt_broker, "operator", [b"cp/CP-TEST-1/cmd/result"])
    env = dict(charger_env)
    env["broker"] = amqtt_broker
    rig = Rig(env, clock=SimClock(epoch=published_tariffs["t0"]),
              operator_key=published_tariffs["operator_spki"], telemetry_interval_s=0)
    try:
        before = rig.app.billing.tariff.hash
        wait_for(lambda: rig.app.link.connected, lambda: rig.run(0.1))
        expect = {"forged": "bad-signature", "unsigned": "unsigned", "altered": "bad-signature",
                  "expired": "expired", "mislabelled": "malformed", "oversized": "malformed"}
        for name in ("forged", "unsigned", "altered", "expired", "mislabelled", "oversized"):
            topic, msg = m[name]
            peer.publish(topic.encode(), msg.encode("latin-1"))
            r = _results(rig, peer, 1)[0]
            assert r["result"] == expect[name], (name, r)
            assert r["cmd"] == topic and r["n"] is None
            assert rig.app.billing.tariff.hash == before and rig.app.billing.pending == []
        # the oversized one was skipped on the wire, never allocated, and the link stayed up
        assert rig.app.link.connected and rig.app.link.drops == 0
        for name, status in (("now", "in-force"), ("later", "scheduled")):
            topic, msg = m[name]
            peer.publish(topic.encode(), msg.encode("latin-1"), retain=True)
            r = _results(rig, peer, 1)[0]
            assert r["result"] == "ok" and r["detail"].startswith(status), (name, r)
        now_hash = rig.app.billing.tariff.hash
        assert rig.app.billing.tariff.id == "std-now" and len(rig.app.billing.pending) == 1
        topic, msg = m["stale"]                  # older than the one in force: a replay
        peer.publish(topic.encode(), msg.encode("latin-1"))
        assert _results(rig, peer, 1)[0]["result"] == "stale"
        rig.plug_and_charge(power_w=11000, seconds=600)
        rig.unplug()
        rig.run(3600)                            # past std-later's valid_from
        rig.plug_and_charge(power_w=11000, seconds=600)
        rig.unplug()
        gc.collect()
        first, second = rig.receipts()[-2:]
        assert first["tariff"] == now_hash and second["tariff"] == rig.app.billing.tariff.hash
        assert rig.app.billing.tariff.id == "std-later"
        # the same energy at 0.30 and at 0.60 EUR per kWh (each rounded once)
        assert first["energy_wh"] == second["energy_wh"] > 1000
        assert abs(second["price"] - 2 * first["price"]) <= 1
    finally:
        peer.close()
        rig.close()
