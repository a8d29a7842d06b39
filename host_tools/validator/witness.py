"""A validator as a witness: it cosigns every charger checkpoint it accepted (C2SP
tlog-cosignature/v1, host_tools.verify.cosignature), publishes the cosigned checkpoint retained
on cp/<charger>/cosig/<validator>, reads the other validators' cosigned checkpoints there, and
turns two roots for one tree size into split-view evidence at once.

    w = Witnessing(db, "val-1", Cosigner.from_seed("val-1", seed), peers=[parse_vkey(v2), ...])
    msgs = w.cosign_accepted(charger_id, size)        # after the checkpoint's transaction committed
    msgs = w.peer_message(topic, payload)             # a message on cp/+/cosig/+
    for topic, payload, retain in msgs: client.publish(topic, payload, qos=1, retain=retain)

A cosignature means "the largest tree head I accepted for this log, consistent with everything
I accepted before" (the validator only accepts a checkpoint after RFC 9162 consistency proofs
against its stored ones), so only a checkpoint at least as big as the newest one cosigned before
is published. Every cosignature, ours and the peers' verified ones, is stored: proof bundles
carry them (host_tools.validator.proofs) and light clients count them against a quorum.

A peer's message is hostile until verified: its topic must name a known witness, its
cosignature line must verify with that witness's key, and the checkpoint under it must carry
the enrolled charger's valid signature; otherwise it is dropped (counted, not stored). Only then
can a difference in roots be evidence: two notes signed by the same charger key for one size.
"""
import base64
import json
import os
import time

from host_tools.verify import checkpoint as cpmod
from host_tools.verify import cosignature as cs
from host_tools.verify import formats
from host_tools.verify import sigcheck

PREFIX = "cp"
MAX_COSIGNED_NOTE = 4096


def cosig_topic(charger_id, validator_id, prefix=PREFIX):
    return "%s/%s/cosig/%s" % (prefix, charger_id, validator_id)


def cosig_subscription(prefix=PREFIX):
    return "%s/+/cosig/+" % prefix


def route_cosig(topic, prefix=PREFIX):
    """(charger id, validator id) for cp/<charger>/cosig/<validator>, else None."""
    parts = str(topic).split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[2] != "cosig" or not parts[1] or not parts[3]:
        return None
    return parts[1], parts[3]


def load_cosigner(path, name):
    """The validator's Ed25519 cosigning key from a file holding its 32-byte seed in hex; the
    file is made (mode 0600) on first use. All workers of one validator identity share it."""
    if not os.path.exists(path):
        signer = cs.Cosigner(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(signer.seed().hex() + "\n")
    with open(path) as f:
        return cs.Cosigner.from_seed(name, bytes.fromhex(f.read().strip()))


class Witnessing:
    def __init__(self, db, validator_id, cosigner, peers=(), clock=time.time, trees=None):
        self.db = db
        self.validator_id = validator_id
        self.cosigner = cosigner
        self.peers = {p.name: p for p in peers if p.name != cosigner.name}
        self.clock = clock
        self.trees = trees              # optional callable charger id -> merkle.Tree of our log
        self.counts = {}

    def _count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    # ---- our cosignatures --------------------------------------------------------------------
    def cosign_accepted(self, charger_id, size):
        """Cosign the stored checkpoint (charger, size) in a transaction of its own; returns the
        messages to publish once it has committed (see cosign_in)."""
        cp = self.db.checkpoint(charger_id, size)
        if cp is None:
            return []
        with self.db.transaction() as tx:
            return self.cosign_in(tx, charger_id, size, cp["note"])

    def cosign_in(self, tx, charger_id, size, note):
        """Inside the transaction that stored the checkpoint `note` (charger, size): cosign and
        store. Returns the messages to publish after commit: the cosigned checkpoint (retained)
        if it is our newest for this charger, and evidence if a peer cosigned another root."""
        note = bytes(note)
        root = cpmod.parse(note).root
        now = int(self.clock())
        line = self.cosigner.cosign(note, now)
        # one round trip: our newer cosignatures of this log (then this one is not our newest)
        # and the peers' cosignatures of this size (a different root is a split view)
        rows = tx.execute("SELECT cosigner, size, root, line, note FROM cosignatures WHERE charger_id=?"
                          " AND ((cosigner=? AND size>?) OR (cosigner<>? AND size=?))",
                          (charger_id, self.cosigner.name, size, self.cosigner.name, size)).fetchall()
        newest = not any(r[0] == self.cosigner.name for r in rows)
        self.db.insert_cosignature(tx, charger_id, size, self.cosigner.name,
                                   self.cosigner.witness.key_id.hex(), root, now, line, note, now)
        self._count("cosigned")
        out = []
        if newest:
            out.append((cosig_topic(charger_id, self.validator_id),
                        cs.add_lines(note.decode(), [line]).encode(), True))
        for peer in rows:
            if peer[0] != self.cosigner.name and bytes(peer[2]) != root:
                theirs = cs.add_lines(bytes(peer[4]).decode(), [peer[3]]).encode()
                out += self._split_view(charger_id, size, note, theirs, peer[0], tx=tx)
        return out

    # ---- the other validators' cosignatures -----------------------------------------------------
    def peer_message(self, topic, payload):
        """Check a cosigned checkpoint published by another validator; returns messages to
        publish (evidence), stores the cosignature and any split view."""
        route = route_cosig(topic)
        if route is None:
            return []
        charger_id, peer_id = route
        if peer_id == self.validator_id:
            return []
        witness = self.peers.get(peer_id)
        if witness is None or not payload or len(payload) > MAX_COSIGNED_NOTE:
            self._count("peer_ignored")
            return []
        try:
            note = bytes(payload).decode("utf-8")
            cp = cpmod.parse(note)
            lines = [ln for ln in cs.signature_lines(note)
                     if ln.name == witness.name and ln.key_id == witness.key_id]
            if not lines:
                raise cs.CosignatureError("no line by %s" % witness.name)
            timestamp = cs.verify_line(witness, note, lines[-1])
            charger = self.db.charger(charger_id)
            if charger is None:
                raise cs.CosignatureError("charger %s is not enrolled here" % charger_id)
            if cp.origin != charger["origin"]:
                raise cs.CosignatureError("origin %r is not %s's" % (cp.origin, charger_id))
            pub = bytes.fromhex(charger["pubkey_hex"])
            mine = [s for n, k, s in cp.signatures if n == cp.origin and k.hex() == charger["key_id_hex"]]
            if not mine or not all(sigcheck.verify(pub, cp.text.encode(), s) for s in mine):
                raise cs.CosignatureError("checkpoint under the cosignature is not signed by %s" % charger_id)
        except (cs.CosignatureError, cpmod.CheckpointError, UnicodeError, ValueError) as exc:
            self._count("peer_refused")
            self.last_refusal = str(exc)
            return []
        now = int(self.clock())
        charger_note = self._charger_note(cp)
        with self.db.transaction() as tx:
            self.db.insert_cosignature(tx, charger_id, cp.size, witness.name, witness.key_id.hex(),
                                       cp.root, timestamp, lines[-1].text, charger_note, now)
        self._count("peer_cosignatures")
        theirs = cs.add_lines(charger_note.decode(), [lines[-1].text]).encode()
        ours = self.db.checkpoint(charger_id, cp.size)
        if ours is not None:
            if ours["root"] != cp.root:
                return self._split_view(charger_id, cp.size, ours["note"], theirs, peer_id)
            return []
        tree = self.trees(charger_id) if self.trees else None
        if tree is not None and cp.size <= tree.size and tree.root(cp.size) != cp.root:
            # no checkpoint of that size here, but the receipts we hold give another root: what
            # we hold is the charger-signed receipts (first = our root at that size)
            return self._split_view(charger_id, cp.size, tree.root(cp.size), theirs, peer_id,
                                    detail="our copy of the log has another root at size %d than %s's "
                                           "cosigned checkpoint" % (cp.size, peer_id))
        return []

    @staticmethod
    def _charger_note(cp):
        """The charger-signed checkpoint alone (its own signature lines, no cosignatures)."""
        lines = [cs.DASH + " " + n + " " + base64.b64encode(k + s).decode()
                 for n, k, s in cp.signatures if n == cp.origin]
        return (cp.text + "\n" + "".join(ln + "\n" for ln in lines)).encode()

    def _split_view(self, charger_id, size, ours, theirs, peer_id, detail=None, tx=None):
        """Store (once) and report two charger-signed roots for one size."""
        detail = detail or ("checkpoints of size %d with different roots: ours and %s's cosigned one"
                            % (size, peer_id))
        if tx is None:
            with self.db.transaction() as tx:
                return self._split_view(charger_id, size, ours, theirs, peer_id, detail, tx)
        seen = tx.execute("SELECT 1 FROM evidence WHERE charger_id=? AND kind='split-view' AND second=?",
                          (charger_id, bytes(theirs))).fetchone()
        if seen is not None:
            return []
        self.db.insert_evidence(tx, charger_id, "split-view", bytes(ours), bytes(theirs), detail,
                                int(self.clock()))
        self._count("split_views")
        doc = json.dumps({"kind": "split-view", "reason": "split-view", "detail": detail,
                                  "message": "checkpoint", "size": size, "peer": peer_id},
                                 separators=(",", ":")).encode()
        return [(formats.evidence_topic(charger_id, self.validator_id), doc, False)]
