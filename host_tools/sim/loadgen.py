"""A fleet load at protocol level: thousands of simulated chargers (host_tools.sim.charger:
the firmware's own ChargerLog, tariff and receipt code on CPython) publish real receipts and
checkpoints over MQTT and wait for the validators' acknowledgements, like the firmware's outbox.

    fleet = build_fleet(workdir, 10000, sessions=1, procs=2)   # keys, receipts, checkpoints
    load = FleetLoad(fleet, host, port, validator_id="val-1", rate=400)
    report = load.run(timeout_s=600)     # {"acked": ..., "unacked": ..., "ack_ms": [...], ...}

What each simulated charger does (as firmware/uplink does): publish its outbox records in order
on cp/<id>/<kind>/<seq> (QoS 1), keep each until an ack with the same seq and SHA-256 arrives on
cp/<id>/ack/<validator>, and resend what is still unacknowledged after `resend_s` (doubling,
bounded). The ack latency of a record is the time from its first publish to its ack.

Keys are P-256 keys made on the host (HostKeys, via `cryptography`): the same signatures the
firmware's KeyStore makes (ECDSA-secp256r1-SHA256, DER), ~100x faster on CPython, so 10,000
chargers fit in a bench run. Fleet building runs in `procs` processes.
"""
import hashlib
import json
import multiprocessing
import os
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class HostKeys:
    """The firmware KeyStore's signing interface (sign -> DER, key_id, public_key_der) over a
    P-256 key held by `cryptography`; deterministic from seed."""

    def __init__(self, seed):
        secret = int.from_bytes(hashlib.sha256(b"chargeproof-loadgen-%d" % seed).digest(), "big") % (_N - 1) + 1
        self._key = ec.derive_private_key(secret, ec.SECP256R1())
        self._spki = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        self._kid = hashlib.sha256(self._spki).digest()[:4]

    def public_key_der(self):
        return self._spki

    def key_id(self):
        return self._kid

    def sign(self, message):
        return self._key.sign(bytes(message), ec.ECDSA(hashes.SHA256()))


def charger_id(i):
    return "CP-%05d" % i


def _build_slice(args):
    workdir, start, stop, sessions = args
    from host_tools.sim.charger import SimCharger
    out = []
    for i in range(start, stop):
        ch = SimCharger(os.path.join(workdir, "c%05d" % i), charger_id(i), seed=i, keys=HostKeys(i),
                        start_wh=1000000 + 1000 * (i % 97))
        msgs = []
        for n in range(sessions):
            msgs += ch.charge(energy_wh=3000 + 37 * ((i + n) % 101), duration_s=1800 + 13 * (i % 89))
        out.append({"charger_id": ch.charger_id, "pubkey_der": ch.pubkey_der(), "origin": ch.origin,
                    "messages": msgs, "now": ch.now})
    return out


def build_fleet(workdir, chargers, sessions=1, procs=2):
    """{"chargers": [{"charger_id", "pubkey_der", "origin", "messages": [(topic, payload)...]}],
    "tariff": JSON text, "now": the fleet's latest clock}: every receipt and checkpoint made."""
    from host_tools.sim.charger import TARIFF
    os.makedirs(workdir, exist_ok=True)
    step = max(1, (chargers + procs * 4 - 1) // (procs * 4))
    slices = [(workdir, s, min(chargers, s + step), sessions) for s in range(0, chargers, step)]
    if procs > 1:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            parts = pool.map(_build_slice, slices)
    else:
        parts = [_build_slice(s) for s in slices]
    fleet = [c for part in parts for c in part]
    return {"chargers": fleet, "tariff": json.dumps(TARIFF), "now": max(c["now"] for c in fleet)}


class _Record:
    __slots__ = ("topic", "payload", "seq", "sha", "first", "sent", "acked", "tries")

    def __init__(self, topic, payload):
        self.topic = topic
        self.payload = payload
        self.seq = int(topic.rsplit("/", 1)[1])
        self.sha = hashlib.sha256(payload).hexdigest()
        self.first = self.sent = self.acked = None
        self.tries = 0


class FleetLoad:
    """Drives a built fleet through a broker: `connections` MQTT clients share the chargers,
    records go out at `rate` per second (open loop), acks are matched per charger."""

    def __init__(self, fleet, host, port, validator_id, rate=200.0, connections=8, resend_s=10.0,
                 window=2):
        import paho.mqtt.client as mqtt
        self.host, self.port = host, port
        self.validator_id = validator_id
        self.rate = float(rate)
        self.resend_s = resend_s
        self.window = window             # unacked records per charger in flight (the outbox head)
        self._lock = threading.Lock()
        self.outbox = {}                 # charger id -> [_Record...] in outbox order
        for c in fleet["chargers"]:
            self.outbox[c["charger_id"]] = [_Record(t, p) for t, p in c["messages"]]
        self.total = sum(len(v) for v in self.outbox.values())
        self.acks_seen = 0
        self.bad_acks = 0
        self._clients = []
        self._subscribed = threading.Semaphore(0)
        ids = sorted(self.outbox)
        self._owner = {}
        for n in range(connections):
            cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="loadgen-%d-%d" % (os.getpid(), n),
                             clean_session=True)
            cl.max_inflight_messages_set(200)
            cl.max_queued_messages_set(0)
            mine = ids[n::connections]
            for cid in mine:
                self._owner[cid] = cl
            cl.on_connect = self._on_connect(mine)
            cl.on_subscribe = lambda *a: self._subscribed.release()
            cl.on_message = self._on_message
            self._clients.append(cl)

    def _on_connect(self, mine):
        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                return
            # one wildcard per connection would deliver every charger's acks to every client:
            # each connection subscribes to its own chargers' ack topics, in chunks
            subs = [("cp/%s/ack/%s" % (cid, self.validator_id), 1) for cid in mine]
            for i in range(0, len(subs), 500):
                client.subscribe(subs[i:i + 500])
        return on_connect

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        now = time.monotonic()
        try:
            doc = json.loads(msg.payload)
            seq, sha = int(doc["seq"]), str(doc["sha256"])
        except (ValueError, KeyError, TypeError):
            self.bad_acks += 1
            return
        with self._lock:
            self.acks_seen += 1
            for rec in self.outbox.get(parts[1], ()):
                if rec.seq == seq and rec.sha == sha and rec.acked is None:
                    rec.acked = now
                    break

    def _publish(self, rec, now):
        cid = rec.topic.split("/")[1]
        if rec.first is None:
            rec.first = now
        rec.sent = now
        rec.tries += 1
        self._owner[cid].publish(rec.topic, rec.payload, qos=1)

    def run(self, timeout_s=600.0, progress=None):
        """Publish everything, resend what is unacked, until all acked or timeout_s; a report."""
        for cl in self._clients:
            cl.connect(self.host, self.port, keepalive=60)
            cl.loop_start()
        chunks = sum((len(self.outbox) // len(self._clients) + 500) // 500 for _ in self._clients)
        for _ in range(chunks):
            if not self._subscribed.acquire(timeout=60):
                raise RuntimeError("load generator: broker did not confirm the ack subscriptions")
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        sent = 0
        order = sorted(self.outbox)
        pending = set(order)
        while pending and time.monotonic() < deadline:
            now = time.monotonic()
            budget = int((now - t0) * self.rate) - sent
            with self._lock:
                for cid in list(pending):
                    recs = self.outbox[cid]
                    unacked = [r for r in recs if r.acked is None]
                    if not unacked:
                        pending.discard(cid)
                        continue
                    for rec in unacked[:self.window]:
                        if rec.sent is None:
                            if budget <= 0:
                                continue
                            budget -= 1
                            sent += 1
                            self._publish(rec, now)
                        elif now - rec.sent > self.resend_s * min(8, 2 ** (rec.tries - 1)):
                            self._publish(rec, now)
            if progress:
                progress(self)
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        for cl in self._clients:
            cl.loop_stop()
            cl.disconnect()
        return self.report(elapsed)

    def report(self, elapsed):
        with self._lock:
            recs = [r for v in self.outbox.values() for r in v]
        acked = [r for r in recs if r.acked is not None]
        lat = sorted((r.acked - r.first) * 1000.0 for r in acked)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
        return {"chargers": len(self.outbox), "records": len(recs), "acked": len(acked),
                "unacked": len(recs) - len(acked), "resends": sum(max(0, r.tries - 1) for r in recs),
                "elapsed_s": round(elapsed, 2), "records_per_s": round(len(acked) / elapsed, 1) if elapsed else 0,
                "ack_p50_ms": pct(0.50), "ack_p99_ms": pct(0.99), "ack_max_ms": pct(1.0),
                "bad_acks": self.bad_acks}
