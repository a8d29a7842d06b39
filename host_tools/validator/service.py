"""The validator: checks every receipt and checkpoint a charger publishes, keeps the charger's
whole log in its own SQLite ledger, acknowledges what it has stored, and turns misbehaviour
into evidence.

    v = Validator("ledger.sqlite", "val-1", tariffs=[tariff_json])
    v.enroll("cp-001", pubkey_der)
    result = v.process(topic, payload)      # in-process: tests, bench, replay
    v.run(host, port)                       # as a service on an MQTT broker (paho-mqtt 2.x)

Order of checks for a receipt (the first failure decides the reason):
  envelope/parse ............ malformed
  charger enrolled .......... unknown-charger                     (evidence: unknown-key)
  receipt + OCMF signatures . bad-signature / bad-ocmf-signature  (evidence: forged-signature)
                              unknown-key when both signatures recover to one and the same
                              key that is not the enrolled one     (evidence: that key)
  log position .............. duplicate (same bytes: ack again, count once)
                              fork (other bytes at a stored index: evidence)
                              gap (index beyond our log: evidence, not stored, not acked)
  -- from here the receipt is authentic and part of the charger's log: it is stored whatever
     the verdict, because later leaves and checkpoints build on it --
  receipt vs its OCMF ....... energy-mismatch, begin-after-end, time-mismatch, charger-mismatch,
                              pagination-mismatch (host_tools.verify.receipt), inconsistent (price sum)
                                                                  (evidence: self-contradiction)
  seq continuity ............ pagination-gap: seq is not the previous one + 1 (evidence)
  time sanity ............... time-order / time-future / time-overlap
  meter continuity .......... meter-backwards (evidence); energy between sessions -> flagged
  tariff .................... unknown-tariff / price-mismatch
A receipt failing a check after the log position is stored with status 'disputed' and a
rejection row; it is acknowledged (the verdict is final, resending cannot change it).

For a checkpoint: parse, charger, key id, signature (as above); then
  same size seen with another root ...... split-view (evidence: both signed notes)
  bigger than the log we hold ........... gap (not stored, not acked: receipts come first)
  root differs from our log at that size  fork (evidence)
  consistency with the previous checkpoint and inclusion of the receipts it newly covers are
  verified with RFC 9162 proofs (host_tools.verify.merkle).

Never acknowledged: anything whose signature does not verify against the enrolled key. An ack
tells the charger it may delete a message from its flash outbox, so a forged message must not
be able to make us ack (and the charger drop) a genuine one.
"""
import base64
import hashlib
import logging
import threading
import time

from host_tools.verify import merkle
from host_tools.verify import sigcheck
from host_tools.verify import formats
from host_tools.validator.store import LedgerError, key_id_hex, open_ledger

DEFAULT_SKEW_S = 300          # a charger clock may run this far ahead of ours
MAX_MESSAGE = 8192            # receipts are <= 2048 bytes (firmware/ledger/log.py RECEIPT_MAX)


class Result:
    """What process() decided. `ack` is the payload to publish on `ack_topic` (None: no ack)."""
    __slots__ = ("kind", "charger_id", "status", "reason", "detail", "index", "ack", "ack_topic",
                 "evidence", "digest")

    def __init__(self, kind, charger_id, status, reason="", detail="", index=None):
        self.kind = kind
        self.charger_id = charger_id
        self.status = status          # accepted / flagged / duplicate / rejected / ignored
        self.reason = reason
        self.detail = detail
        self.index = index
        self.ack = None
        self.ack_topic = None
        self.evidence = None          # kind of evidence stored for this message, if any
        self.digest = None            # SHA-256 hex of the message

    @property
    def stored(self):
        return self.ack is not None

    def __repr__(self):
        return "Result(%s %s %s %s %s)" % (self.kind, self.charger_id, self.status, self.reason, self.detail)


class _Reject(Exception):
    def __init__(self, reason, detail="", evidence=None):
        Exception.__init__(self, reason)
        self.reason = reason
        self.detail = detail
        self.evidence = evidence      # (kind, first bytes, second bytes) or None


class Validator:
    def __init__(self, db_path, validator_id, host=None, port=1883, tariffs=(),
                 backend="fast", skew_s=DEFAULT_SKEW_S, clock=time.time, broker=None):
        if not validator_id or "/" in validator_id or "+" in validator_id or "#" in validator_id:
            raise ValueError("validator id must be a plain MQTT topic level: %r" % (validator_id,))
        if backend not in sigcheck.BACKENDS:
            raise ValueError("backend must be one of %s" % (sigcheck.BACKENDS,))
        self.db = open_ledger(db_path)
        self.validator_id = validator_id
        self.host = host
        self.port = port
        # broker: a host_tools.mqtt_conn.BrokerSpec (login, TLS); host/port override its address.
        self.broker = broker
        self.backend = backend
        self.skew_s = skew_s
        self.clock = clock
        self._trees = {}              # charger id -> merkle.Tree of its log (leaf hashes)
        self._lock = threading.RLock()
        self._client = None
        self.subscribed = threading.Event()     # set once the broker confirmed our subscriptions
        self.counts = {}
        for doc in tariffs:
            self.publish_tariff(doc)

    # ---- registry --------------------------------------------------------------------------
    def enroll(self, charger_id, pubkey_der, origin=None):
        if not sigcheck.valid_public_key(pubkey_der):
            raise LedgerError("not a P-256 SubjectPublicKeyInfo: %s" % bytes(pubkey_der).hex()[:40])
        return self.db.enroll(charger_id, bytes(pubkey_der), origin=origin)

    def publish_tariff(self, document):
        """Register a tariff document (JSON text or dict); returns its canonical hash."""
        text, tariff_hash = formats.tariff_canonical(document)
        self.db.add_tariff(tariff_hash, text)
        return tariff_hash

    def _tree(self, charger_id):
        tree = self._trees.get(charger_id)
        if tree is None:
            tree = merkle.Tree()
            for h in self.db.leaf_hashes(charger_id):
                tree.append_hash(h)
            self._trees[charger_id] = tree
        return tree

    # ---- the entry point -------------------------------------------------------------------
    def process(self, topic, payload):
        """Check one MQTT message and record the verdict. The store has committed before this
        returns; the caller publishes result.ack (if any) afterwards. Messages are processed
        one at a time (the log position checks read, then write)."""
        with self._lock:
            return self._process(topic, bytes(payload))

    def _process(self, topic, payload):
        route = formats.route(topic)
        if route is None:
            return self._count(Result("unknown", None, "ignored", "not-our-topic", topic))
        charger_id, kind = route
        if len(payload) > MAX_MESSAGE:
            # Kept for the record, but truncated: a flood of huge messages must not fill our disk.
            return self._reject_unauthenticated(kind, charger_id, topic, payload[:256],
                                                _Reject("malformed", "%d bytes, more than %d" % (len(payload), MAX_MESSAGE)))
        try:
            envelope = formats.unwrap(kind, payload, topic)
        except formats.FormatError as exc:
            return self._reject_unauthenticated(kind, charger_id, topic, payload,
                                                _Reject("malformed", str(exc)))
        try:
            if kind == "receipt":
                result = self._receipt(charger_id, topic, payload, envelope)
            else:
                result = self._checkpoint(charger_id, topic, payload, envelope)
        except _Reject as rej:
            return self._reject_unauthenticated(kind, charger_id, topic, payload, rej)
        return self._count(result)

    def _count(self, result):
        key = "%s_%s" % (result.kind, result.status)
        self.counts[key] = self.counts.get(key, 0) + 1
        return result

    def _ack(self, result, envelope):
        result.ack_topic = formats.ack_topic(result.charger_id, self.validator_id)
        result.ack = formats.ack_payload(envelope, result)
        return result

    def _reject_unauthenticated(self, kind, charger_id, topic, payload, rej):
        """Record a refusal of something we could not attribute to the charger: no ack."""
        with self.db.transaction() as tx:
            self.db.insert_rejection(tx, charger_id, kind, rej.reason, rej.detail, topic, payload,
                                     received_at=int(self.clock()))
            stored = rej.evidence and not self._known_gap(tx, charger_id, rej.evidence)
            if stored:
                ekind, first, second = rej.evidence
                self.db.insert_evidence(tx, charger_id, ekind, first, second, rej.detail,
                                        received_at=int(self.clock()))
        result = Result(kind, charger_id, "rejected", rej.reason, rej.detail)
        result.evidence = rej.evidence[0] if stored else None
        result.digest = hashlib.sha256(payload).hexdigest()
        return self._count(result)

    @staticmethod
    def _known_gap(tx, charger_id, evidence):
        """A validator that missed record n sees every later record as a gap until n arrives
        (or `chargeproof replay` fills it): one piece of evidence per hole is enough."""
        if evidence[0] != "gap":
            return False
        return tx.execute("SELECT 1 FROM evidence WHERE charger_id=? AND kind='gap' AND first=? LIMIT 1",
                          (charger_id, bytes(evidence[1]))).fetchone() is not None

    def _charger(self, charger_id, raw):
        charger = self.db.charger(charger_id)
        if charger is None:
            raise _Reject("unknown-charger", "charger %s is not enrolled" % charger_id,
                          ("unknown-key", b"", raw))
        charger["pubkey_der"] = bytes.fromhex(charger["pubkey_hex"])
        return charger

    def _verify(self, pub_der, message, sig_der):
        return sigcheck.verify(pub_der, message, sig_der, self.backend)

    # ---- receipts --------------------------------------------------------------------------
    def _receipt(self, charger_id, topic, payload, envelope):
        body = envelope["body"]
        try:
            rc = formats.parse_receipt(body)
        except formats.FormatError as exc:
            raise _Reject("malformed", str(exc))
        if rc["charger_id"] != charger_id:
            raise _Reject("wrong-topic", "receipt names charger %s on the topic of %s"
                          % (rc["charger_id"], charger_id))
        charger = self._charger(charger_id, body)
        pub = charger["pubkey_der"]
        receipt_ok = self._verify(pub, rc["signed"], rc["signature"])
        ocmf_ok = receipt_ok and self._verify(pub, rc["ocmf_signed"], rc["ocmf_signature"])
        if not ocmf_ok:
            other = sigcheck.recover_signer([(rc["signed"], rc["signature"]),
                                             (rc["ocmf_signed"], rc["ocmf_signature"])])
            if other is not None and other != pub:
                raise _Reject("unknown-key", "receipt and OCMF record both signed by key %s, not %s's"
                              % (key_id_hex(other), charger_id), ("unknown-key", other, body))
            if not receipt_ok:
                raise _Reject("bad-signature", "receipt signature does not verify with %s's key" % charger_id,
                              ("forged-signature", pub, body))
            raise _Reject("bad-ocmf-signature", "OCMF signature does not verify with %s's key" % charger_id,
                          ("forged-signature", pub, body))
        tree = self._tree(charger_id)
        index = rc["index"]
        leaf = merkle.leaf_hash(body)
        if index < tree.size:
            held = self.db.receipt_at(charger_id, index)
            if held["leaf_hash"] == leaf:
                result = Result("receipt", charger_id, "duplicate", "", "index %d already stored" % index, index)
                return self._ack(result, envelope)
            raise _Reject("fork", "log index %d already holds another receipt" % index,
                          ("fork", held["receipt"], body))
        if index > tree.size:
            raise _Reject("gap", "receipt at log index %d, but the log we hold ends at %d"
                          % (index, tree.size), ("gap", str(tree.size).encode(), body))

        # Authentic and next in the log: stored whatever the billing verdict.
        now = int(self.clock())
        status, reason, detail, evidence = "accepted", "", "", None
        try:
            note = self._billing_checks(charger_id, rc, now)
            if note:
                status, detail = "flagged", note
        except _Reject as rej:
            status, reason, detail, evidence = "disputed", rej.reason, rej.detail, rej.evidence
        row = dict(rc)
        row.update(charger_id=charger_id, log_index=index, leaf_hash=leaf, receipt=body,
                   status=status, note=(reason + ": " + detail) if reason else detail, received_at=now)
        with self.db.transaction() as tx:
            self.db.insert_receipt(tx, row)
            if reason:
                self.db.insert_rejection(tx, charger_id, "receipt", reason, detail, topic, payload, now)
            if evidence:
                self.db.insert_evidence(tx, charger_id, evidence[0], evidence[1], evidence[2], detail, now)
        tree.append_hash(leaf)
        result = Result("receipt", charger_id, "rejected" if reason else status, reason, detail, index)
        result.evidence = evidence[0] if evidence else None
        result.digest = hashlib.sha256(payload).hexdigest()
        return self._ack(result, envelope)

    def _billing_checks(self, charger_id, rc, now):
        """Everything that decides whether an authentic receipt bills. Raises _Reject; returns
        a note for a flagged receipt."""
        problem = formats.receipt_inconsistency(rc)
        if problem:
            raise _Reject(problem[0], problem[1], ("self-contradiction", rc["ocmf"].encode(), rc["raw"]))
        index = rc["index"]
        before = self.db.receipt_at(charger_id, index - 1) if index else None
        want = before["seq"] + 1 if before else 1
        if rc["seq"] != want:
            # OCMF's PG counter rises by exactly one per record: a skipped number is a record
            # the charger signed but kept out of its log.
            raise _Reject("pagination-gap", "receipt seq %d at log index %d, expected %d" % (rc["seq"], index, want),
                          ("pagination-gap", before["receipt"] if before else b"", rc["raw"]))
        if rc["end_time"] < rc["begin_time"]:
            raise _Reject("time-order", "session ends (%d) before it begins (%d)" % (rc["end_time"], rc["begin_time"]))
        if rc["end_time"] > now + self.skew_s:
            raise _Reject("time-future", "session ends %d s in the future" % (rc["end_time"] - now))
        note = ""
        last = self.db.last_receipt(charger_id, any_meter=True)
        if last is not None and rc["begin_time"] < last["end_time"]:
            raise _Reject("time-overlap", "session begins at %d, before the previous one ended (%d)"
                          % (rc["begin_time"], last["end_time"]))
        prev = self.db.last_receipt(charger_id, rc.get("meter_serial"))
        if prev is not None:
            if rc["begin_wh"] < prev["end_wh"]:
                raise _Reject("meter-backwards", "meter %s begins at %d Wh, previous session ended at %d Wh"
                              % (rc.get("meter_serial"), rc["begin_wh"], prev["end_wh"]),
                              ("meter-backwards", prev["receipt"], rc["raw"]))
            if rc["begin_wh"] > prev["end_wh"]:
                note = "energy-between-sessions: %d Wh drawn outside any session" % (rc["begin_wh"] - prev["end_wh"])
        tariff_doc = self.db.tariff(rc["tariff_hash"])
        if tariff_doc is None:
            raise _Reject("unknown-tariff", "tariff %s is not published" % rc["tariff_hash"])
        try:
            expected = formats.recompute_price(tariff_doc, rc)
        except formats.FormatError as exc:
            raise _Reject("price-mismatch", "price cannot be recomputed: %s" % exc)
        if expected != (rc["net"], rc["tax"], rc["price_minor"]):
            raise _Reject("price-mismatch", "receipt says net %d + tax %d = %d, tariff gives %d + %d = %d %s"
                          % ((rc["net"], rc["tax"], rc["price_minor"]) + expected + (rc["currency"],)))
        return note

    # ---- checkpoints -----------------------------------------------------------------------
    def _checkpoint(self, charger_id, topic, payload, envelope):
        note = envelope["body"]
        try:
            cp = formats.parse_checkpoint(note)
        except formats.FormatError as exc:
            raise _Reject("malformed", str(exc))
        charger = self._charger(charger_id, note)
        cp = formats.parse_checkpoint(note, charger["key_id_hex"])
        pub = charger["pubkey_der"]
        if cp["origin"] != charger["origin"]:
            raise _Reject("wrong-origin", "checkpoint origin %r, enrolled origin %r" % (cp["origin"], charger["origin"]))
        if cp["key_id"] != charger["key_id_hex"]:
            raise _Reject("unknown-key", "checkpoint signed by key %s, enrolled key is %s"
                          % (cp["key_id"], charger["key_id_hex"]), ("unknown-key", pub, note))
        if not self._verify(pub, cp["signed"], cp["signature"]):
            raise _Reject("bad-signature", "checkpoint signature does not verify with %s's key" % charger_id,
                          ("forged-signature", pub, note))
        size, root = cp["size"], cp["root"]
        held = self.db.checkpoint(charger_id, size)
        if held is not None:
            if held["root"] == root:
                return self._ack(Result("checkpoint", charger_id, "duplicate", "", "size %d" % size, size), envelope)
            raise _Reject("split-view", "two signed checkpoints of size %d with different roots" % size,
                          ("split-view", held["note"], note))
        tree = self._tree(charger_id)
        if size > tree.size:
            raise _Reject("gap", "checkpoint of size %d, but we hold %d receipts" % (size, tree.size),
                          ("gap", str(tree.size).encode(), note))
        if tree.root(size) != root:
            raise _Reject("fork", "checkpoint root at size %d differs from the receipts we hold" % size,
                          ("fork", tree.root(size), note))
        now = int(self.clock())
        if cp.get("time") is not None and cp["time"] > now + self.skew_s:
            raise _Reject("time-future", "checkpoint time %d s in the future" % (cp["time"] - now))
        self._check_proofs(charger_id, tree, size, root)
        with self.db.transaction() as tx:
            self.db.insert_checkpoint(tx, charger_id, size, root, note, now)
        return self._ack(Result("checkpoint", charger_id, "accepted", "", "size %d" % size, size), envelope)

    def _check_proofs(self, charger_id, tree, size, root):
        """Consistency with the nearest stored checkpoints on either side, and inclusion of the
        receipts this checkpoint newly covers, verified as a light client would."""
        older = self.db.checkpoint_below(charger_id, size)
        newer = self.db.checkpoint_above(charger_id, size)
        try:
            if older is not None:
                proof = tree.consistency_proof(older["size"], size)
                merkle.verify_consistency(older["size"], size, older["root"], root, proof)
            if newer is not None:
                proof = tree.consistency_proof(size, newer["size"])
                merkle.verify_consistency(size, newer["size"], root, newer["root"], proof)
            start = older["size"] if older is not None else 0
            for index in range(start, size):
                merkle.verify_inclusion(tree.leaf(index), index, size, tree.inclusion_proof(index, size), root)
        except merkle.ProofError as exc:
            raise _Reject("fork", "proof against stored checkpoints failed: %s" % exc)

    # ---- proofs for light clients ----------------------------------------------------------
    def proof_bundle(self, charger_id, seq=None, index=None):
        return proof_bundle(self.db, charger_id, seq=seq, index=index, tree=self._tree(charger_id))

    # ---- MQTT service ----------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        client.subscribe([(t, 1) for t in formats.subscriptions()])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.subscribed.clear()

    def _on_message(self, client, userdata, msg):
        try:
            result = self.process(msg.topic, msg.payload)
        except Exception as exc:                  # the service keeps running; the message is not acked
            self.counts["internal_error"] = self.counts.get("internal_error", 0) + 1
            self.last_error = exc
            logging.getLogger("chargeproof.validator").exception("message on %s not processed", msg.topic)
            return
        if result.ack is not None:
            client.publish(result.ack_topic, result.ack, qos=1)
        if result.evidence is not None and result.charger_id is not None:
            # Misbehaviour is reported where operators and other validators can see it; the
            # evidence itself (both conflicting items) stays in the ledger (`chargeproof evidence`).
            client.publish(formats.evidence_topic(result.charger_id, self.validator_id),
                           formats.evidence_payload(result), qos=1)
        if self.on_result is not None:
            self.on_result(result)

    on_result = None
    last_error = None

    def _spec(self, host=None, port=None):
        from host_tools.mqtt_conn import BrokerSpec
        spec = self.broker or BrokerSpec()
        return spec.at(host or self.host, port or (self.port if self.broker is None else None))

    def _make_client(self, spec):
        from host_tools import mqtt_conn
        # A persistent session: the broker keeps QoS 1 messages for us while we are down.
        # (A broker with use_username_as_clientid replaces the id with the login.)
        client = mqtt_conn.client(spec, client_id="validator-" + self.validator_id,
                                  clean_session=False)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        return client

    def start(self, host=None, port=None):
        """Connect and serve in paho's background thread (returns at once)."""
        spec = self._spec(host, port)
        self._client = self._make_client(spec)
        self._client.connect(spec.host, spec.port, keepalive=30)
        self._client.loop_start()
        return self

    def stop(self):
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def run(self, host=None, port=None):
        """Serve in the calling thread until interrupted."""
        spec = self._spec(host, port)
        self._client = self._make_client(spec)
        self._client.connect(spec.host, spec.port, keepalive=30)
        try:
            self._client.loop_forever(retry_first_connection=True)
        finally:
            self._client.disconnect()

    def close(self):
        self.stop()
        self.db.close()


# ---- proof serving (used by the CLI and by Validator.proof_bundle) ---------------------------
def proof_bundle(db, charger_id, seq=None, index=None, tree=None, old_size=None):
    """The light-client bundle for one receipt: the receipt bytes, its inclusion proof against
    the latest checkpoint that covers it, that checkpoint, the charger's public key, the tariff
    document, and (if old_size is given) the consistency proof from old_size to that checkpoint."""
    if index is None:
        row = db.receipt_by_seq(charger_id, seq)
    else:
        row = db.receipt_at(charger_id, index)
    if row is None:
        raise LedgerError("no receipt %s %s for charger %s" % ("index" if index is not None else "seq",
                                                             index if index is not None else seq, charger_id))
    cp = db.latest_checkpoint(charger_id)
    if cp is None or cp["size"] <= row["log_index"]:
        raise LedgerError("no checkpoint of %s covers log index %d yet" % (charger_id, row["log_index"]))
    if tree is None:
        tree = merkle.Tree()
        for h in db.leaf_hashes(charger_id):
            tree.append_hash(h)
    charger = db.charger(charger_id)
    bundle = formats.make_bundle(
        receipt=row["receipt"], index=row["log_index"], size=cp["size"],
        inclusion=tree.inclusion_proof(row["log_index"], cp["size"]),
        checkpoint=cp["note"], pubkey_hex=charger["pubkey_hex"], tariff=db.tariff(row["tariff_hash"]))
    if old_size is not None:
        old = db.checkpoint(charger_id, old_size)
        if old is None:
            raise LedgerError("no checkpoint of size %d for %s" % (old_size, charger_id))
        bundle["consistency"] = {
            "old_size": old_size, "new_size": cp["size"], "old_checkpoint": old["note"].decode(),
            "proof": [base64.b64encode(h).decode() for h in tree.consistency_proof(old_size, cp["size"])]}
    return bundle
