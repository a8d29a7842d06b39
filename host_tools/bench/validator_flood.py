"""Bench rows for a validator under a junk flood (`python -m host_tools.bench validator_flood`):

  validator_ack_p99_ms_under_flood   99th percentile of the time from a genuine receipt's
                                     publish to its ack, while an attacker publishes 1,000 junk
                                     messages a second (8 KB each, half on an enrolled
                                     charger's topic, half on invented ids) on a real Mosquitto
  validator_ack_p50_ms_under_flood   the median of the same
  rejection_bytes_per_junk_message   growth of the ledger file (after a WAL checkpoint) per junk
                                     message received in the first JUNK_ONLY_S seconds (junk
                                     alone): the bounded rejection records (hash, size, 64-byte
                                     prefix, capped per charger and hour, so this falls as the
                                     flood goes on)
  validator_junk_dropped_from_queue  junk messages the service dropped because its queue was
                                     full (the charger resends genuine ones; 0 if it kept up)
  validator_flood_junk_per_s         the junk rate the flooder actually reached
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from typing import Dict, List

import paho.mqtt.client as mqtt

from host_tools.sim import attacks
from host_tools.sim.broker import MosquittoBroker
from host_tools.sim.charger import SimCharger
from host_tools.validator.service import Validator

JUNK_PER_S = 1000
GENUINE = 60             # receipts, one every GENUINE_EVERY_S
GENUINE_EVERY_S = 0.1
JUNK_ONLY_S = 3.0


def _client(port: int, name: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _flood(port: int, stop: threading.Event, sent: List[int]) -> None:
    c = _client(port, "junk")
    junk = attacks.junk_batch(seed=9, n=2000, size=8000)
    start, i = time.monotonic(), 0
    while not stop.is_set():
        ahead = start + i / JUNK_PER_S - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        cid = "CP-0001" if i % 2 else "CP-X%05d" % i
        c.publish("cp/%s/receipt/%d" % (cid, i + 1), junk[i % len(junk)], qos=i % 2)
        i += 1
    sent.append(i)
    sent.append(time.monotonic() - start)
    c.loop_stop()
    c.disconnect()


def _ledger_bytes(path: str) -> int:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return os.path.getsize(path)


def _genuine(port: int, charger: SimCharger) -> List[float]:
    acked: Dict[int, float] = {}
    c = _client(port, "genuine")
    c.on_message = lambda cl, ud, m: acked.setdefault(int(m.payload.split(b'"seq":')[1].split(b",")[0]),
                                                      time.monotonic())
    c.subscribe("cp/CP-0001/ack/+", qos=1)
    time.sleep(0.3)
    sent: Dict[int, float] = {}
    for n in range(GENUINE):
        (topic, payload), _ = charger.charge(energy_wh=2000 + n)
        seq = int(topic.rsplit("/", 1)[1])
        sent[seq] = time.monotonic()
        c.publish(topic, payload, qos=1)
        time.sleep(GENUINE_EVERY_S)
    deadline = time.monotonic() + 30
    while len(acked) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    return sorted((acked.get(s, deadline) - t) * 1000 for s, t in sent.items())


def run() -> Dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        broker = MosquittoBroker(workdir=tmp).start()
        charger = SimCharger(tmp + "/cp", "CP-0001", seed=21)
        path = tmp + "/ledger.sqlite"
        v = Validator(path, "val-1", tariffs=[charger.tariff_json()], clock=lambda: charger.now + 5)
        v.enroll(charger.charger_id, charger.pubkey_der(), origin=charger.origin)
        before = _ledger_bytes(path)
        v.start(broker.host, broker.port)
        v.subscribed.wait(10)
        stop, sent = threading.Event(), []
        flood = threading.Thread(target=_flood, args=(broker.port, stop, sent))
        try:
            flood.start()
            time.sleep(JUNK_ONLY_S)                  # junk alone first: what it costs on disk
            v.rejections.flush()
            junk_seen = sum(n for k, n in v.counts.items() if k in ("receipt_rejected", "queue_dropped"))
            grown = _ledger_bytes(path) - before
            latencies = _genuine(broker.port, charger)
        finally:
            stop.set()
            flood.join()
            time.sleep(1.0)
            v.close()
            broker.stop()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
    return {"validator_ack_p99_ms_under_flood": round(p99, 1),
            "validator_ack_p50_ms_under_flood": round(latencies[len(latencies) // 2], 1),
            "rejection_bytes_per_junk_message": round(grown / max(1, junk_seen), 1),
            "validator_junk_dropped_from_queue": v.counts.get("queue_dropped", 0),
            "validator_flood_junk_per_s": round(sent[0] / sent[1], 1)}
