"""The validator as an MQTT service (paho-mqtt 2.x): what arrives is checked and recorded by
host_tools.validator.engine, on a worker thread, never on paho's network thread.

    v = Validator("ledger.sqlite", "val-1", tariffs=[tariff_json])
    v.enroll("cp-001", pubkey_der)
    result = v.process(topic, payload)      # in-process: tests, bench, replay
    v.start(host, port) / v.run(host, port) # as a service on a broker

Why a worker: a message that takes long to check must not stop paho from answering the
broker's keepalive; a validator the broker drops gets its unacknowledged messages again on
reconnect, the same slow one first, forever. So the network thread only puts messages into
a bounded queue. MQTT acknowledgements are manual: a QoS 1 message is PUBACKed when the
worker is done with it, so the broker's in-flight window is the back-pressure. When the queue
is full the message is dropped and PUBACKed (counted in counts["queue_dropped"]): the
charger's outbox resends everything that has no application ack, so nothing is lost, and a
dropped message is never redelivered by the broker in a loop.
"""
from __future__ import annotations

import logging
import time
import queue
import threading
from typing import Any, Callable, Optional

from host_tools.verify import formats
from host_tools.validator.checks import Result
from host_tools.validator.engine import DEFAULT_SKEW_S, EXPIRY_CHECK_S, MAX_MESSAGE, Engine
from host_tools.validator.proofs import proof_bundle

__all__ = ["Validator", "Result", "proof_bundle", "DEFAULT_SKEW_S", "MAX_MESSAGE"]

QUEUE_SIZE = 1024             # messages waiting for the worker: at most 8 MB of payloads
REJECTION_BATCH = 64          # junk refusals committed together (flushed whenever the queue is empty)
KEEPALIVE_S = 30

_log = logging.getLogger("chargeproof.validator")


class Validator(Engine):
    on_result: Optional[Callable[[Result], None]] = None
    last_error: Optional[BaseException] = None

    def __init__(self, db_path: str, validator_id: str, host: Optional[str] = None, port: int = 1883,
                 tariffs: Any = (), backend: str = "fast", skew_s: int = DEFAULT_SKEW_S,
                 clock: Callable[[], float] = time.time, broker: Optional[Any] = None,
                 queue_size: int = QUEUE_SIZE, store: Optional[Any] = None,
                 operator_key: Optional[bytes] = None, **parking: Any) -> None:
        # parking: park_ahead, park_max, park_expire_s (host_tools/validator/engine.py)
        Engine.__init__(self, db_path, validator_id, tariffs=tariffs, backend=backend, skew_s=skew_s,
                        clock=clock, store=store, operator_key=operator_key, **parking)
        self.host = host
        self.port = port
        # broker: a host_tools.mqtt_conn.BrokerSpec (login, TLS); host/port override its address.
        self.broker = broker
        self._client: Any = None
        self._queue: "queue.Queue[Optional[tuple]]" = queue.Queue(maxsize=queue_size)
        self._worker: Optional[threading.Thread] = None
        self.subscribed = threading.Event()     # set once the broker confirmed our subscriptions

    # ---- paho's network thread: never blocks, never checks --------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            return
        client.subscribe([(t, 1) for t in formats.validator_subscriptions()])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.subscribed.clear()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self._queue.put_nowait((client, msg.topic, bytes(msg.payload), msg.mid, msg.qos))
        except queue.Full:
            self.count("queue_dropped")
            client.ack(msg.mid, msg.qos)

    # ---- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        next_expiry = time.monotonic() + EXPIRY_CHECK_S
        while True:
            try:
                item = self._queue.get(timeout=EXPIRY_CHECK_S)
            except queue.Empty:
                self._expire()
                next_expiry = time.monotonic() + EXPIRY_CHECK_S
                continue
            if time.monotonic() >= next_expiry:
                next_expiry = time.monotonic() + EXPIRY_CHECK_S
                self._expire()
            if item is None:
                self.rejections.flush()
                return
            client, topic, payload, mid, qos = item
            try:
                self.handle(client, topic, payload)
            finally:
                client.ack(mid, qos)
            if self._queue.empty():
                self._flush_rejections()

    def _expire(self) -> None:
        """Parked records whose predecessor never came become gaps (engine.PARK_EXPIRE_S)."""
        try:
            results = self.expire_parked()
        except Exception as exc:                  # the store failed: try again later
            self.count("internal_error")
            self.last_error = exc
            _log.exception("parked records not expired")
            return
        for result in results:
            if self._client is not None:
                self.publish_result(self._client, result)
            if self.on_result is not None:
                self.on_result(result)

    def _flush_rejections(self) -> None:
        try:
            self.rejections.flush()
        except Exception as exc:                  # the store failed: try again with the next batch
            self.count("internal_error")
            self.last_error = exc
            _log.exception("rejection records not written")

    def handle(self, client: Any, topic: str, payload: bytes) -> Optional[Result]:
        """Check one message and publish what follows from it (ack, evidence report)."""
        try:
            result = self.process(topic, payload)
        except Exception as exc:                  # the store failed: not acked, the charger resends
            self.count("internal_error")
            self.last_error = exc
            _log.exception("message on %s not processed", topic)
            return None
        for r in [result] + result.also:         # also: parked records it let through
            self.publish_result(client, r)
            if self.on_result is not None:
                self.on_result(r)
        return result

    def publish_result(self, client: Any, result: Result) -> None:
        if result.ack is not None:
            client.publish(result.ack_topic, result.ack, qos=1)
        if result.evidence is not None and result.charger_id is not None:
            # Misbehaviour is reported where operators and other validators can see it; the
            # evidence itself (both conflicting items) stays in the ledger (`chargeproof evidence`).
            client.publish(formats.evidence_topic(result.charger_id, self.validator_id),
                           formats.evidence_payload(result), qos=1)

    # ---- lifecycle ----------------------------------------------------------------------------
    def _spec(self, host: Optional[str] = None, port: Optional[int] = None) -> Any:
        from host_tools.mqtt_conn import BrokerSpec
        spec = self.broker or BrokerSpec()
        return spec.at(host or self.host, port or (self.port if self.broker is None else None))

    def _make_client(self, spec: Any) -> Any:
        from host_tools import mqtt_conn
        # A persistent session: the broker keeps QoS 1 messages for us while we are down.
        # (A broker with use_username_as_clientid replaces the id with the login.)
        client = mqtt_conn.client(spec, client_id="validator-" + self.validator_id,
                                  clean_session=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Telemetry and health go to the dashboard's time series, never through process().
        # (SQLite ledgers only: the time series is a side table of the ledger file.)
        if getattr(self.db, "path", None):
            from host_tools.validator.timeseries import TimeSeries
            TimeSeries(self.db.path).attach(client)
        return client

    def _start_worker(self) -> None:
        self.rejections.batch_rows = REJECTION_BATCH
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="validator-worker", daemon=True)
            self._worker.start()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)
            self._worker = None

    def start(self, host: Optional[str] = None, port: Optional[int] = None) -> "Validator":
        """Connect and serve in background threads (returns at once)."""
        self._start_worker()
        spec = self._spec(host, port)
        self._client = self._make_client(spec)
        self._client.connect(spec.host, spec.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._stop_worker()

    def run(self, host: Optional[str] = None, port: Optional[int] = None) -> None:
        """Serve until interrupted (paho's loop in the calling thread, checks on the worker)."""
        self._start_worker()
        spec = self._spec(host, port)
        self._client = self._make_client(spec)
        self._client.connect(spec.host, spec.port, keepalive=KEEPALIVE_S)
        try:
            self._client.loop_forever(retry_first_connection=True)
        finally:
            self._client.disconnect()
            self._stop_worker()

    def close(self) -> None:
        self.stop()
        Engine.close(self)
