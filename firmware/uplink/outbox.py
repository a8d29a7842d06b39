# Outbox on flash: receipts and checkpoints stay here until validators acknowledge them.
#
# Every record is appended to a store.journal.Journal (CRC'd, torn-tail safe) *before* anything is
# sent, and its journal seq is its outbox seq: it travels in the topic, validators ack it. The
# journal's ack mark moves only over a contiguous run of acknowledged seqs, so records leave the
# flash strictly in order and a lost ack just means a resend (validators dedupe by seq).
#
# The ack mark is kept in RAM and written to flash by sync() (the uplink calls it once per
# poll) or after persist_every acks: one flash write per burst of acks, not per ack. A power
# cut before sync() only means a few records are resent and deduplicated, never lost.
#
# Acks: the config names the validators whose ack is required, and how many of them (all by
# default, or k of n); an empty list means "any one validator". Only acks that uplink.acks has
# authenticated reach ack(), and ack() itself deletes nothing unless the digest names the bytes
# held under that seq and kind. Acks above the contiguous mark are held in RAM; after a reboot
# those records are resent and acked again, which validators treat as duplicates.
#
# Flash full: put() raises JournalFull and writes nothing; the session layer asks has_room()
# before it starts a session, so a running session's receipt always fits.
import hashlib
from binascii import hexlify

from store.journal import Journal, JournalFull, _HEADER_LEN
from store import atomic
from uplink.topics import kind_tag

__all__ = ("Outbox", "BadAck", "JournalFull")


class BadAck(ValueError):
    pass


class Outbox:
    def __init__(self, dirpath, validators=(), segment_bytes=4096, reserve_bytes=16384,
                 persist_every=16, quorum=None):
        self.journal = Journal(dirpath, segment_bytes=segment_bytes, reserve_bytes=reserve_bytes)
        self.required = tuple(validators)
        # How many of the required validators must ack: all of them unless configured k of n.
        if quorum is None or quorum == 0:
            quorum = len(self.required)
        if self.required and not 0 < quorum <= len(self.required):
            raise ValueError("ack quorum %r: 1..%d" % (quorum, len(self.required)))
        self.quorum = quorum
        self.persist_every = persist_every
        self.acked = self.journal.acked     # contiguous ack mark (RAM; flash via sync())
        self._acks = {}     # seq -> set of validator ids (or True when any validator will do)
        self.idle = None    # the charger's safety watch, between the steps of an ack

    # ---- writing ------------------------------------------------------------------------
    def has_room(self, nbytes):
        """True if a record of nbytes payload fits while keeping the journal's reserve free."""
        need = _HEADER_LEN + 1 + nbytes
        return atomic.free_bytes(self.journal.dir) >= need + self.journal.reserve_bytes

    def put(self, kind, payload):
        """Store payload (bytes) of kind ('receipt'/'checkpoint') on flash; return its seq.
        Raises JournalFull (nothing written) when the flash has no room."""
        tag = kind_tag(kind)
        if not isinstance(payload, (bytes, bytearray)):
            raise TypeError("outbox payload must be bytes")
        return self.journal.append((bytes((tag,)), payload))

    # ---- reading ------------------------------------------------------------------------
    @property
    def last_seq(self):
        return self.journal.last_seq

    def pending(self):
        """Number of records not yet acknowledged (all validators counted as required)."""
        return self.journal.last_seq - self.acked

    def items(self, after=None, limit=8, view=False):
        """Up to limit (seq, tag, payload) with seq > after (default: the ack mark), in order,
        skipping records already acknowledged out of order. view: each payload a memoryview
        of the record as read (the link's publish), not a copy: one 1.2 KB block per receipt
        instead of two, in a heap where every such block may be hard to find."""
        out = []
        if limit <= 0:
            return out
        if after is None or after < self.acked:
            after = self.acked
        for seq, data in self.journal.records(after):
            if self._done(seq):
                continue
            out.append((seq, data[0], memoryview(data)[1:] if view else data[1:]))
            if len(out) >= limit:
                break
        return out

    def get(self, seq):
        """(tag, payload) of an unacknowledged record, or None."""
        data = self._record(seq)
        return None if data is None else (data[0], data[1:])

    def _record(self, seq):
        """An unacknowledged record's bytes as stored (its tag, then its payload), or None."""
        if not self.acked < seq <= self.journal.last_seq:
            return None
        for s, data in self.journal.records(seq - 1):
            if s == seq:
                return data
            break
        return None

    # ---- acknowledgements ---------------------------------------------------------------
    def _done(self, seq):
        got = self._acks.get(seq)
        if got is None:
            return False
        if got is True:
            return True
        return len(got) >= self.quorum

    def ack(self, seq, validator, sha256_hex, tag=None):
        """Record validator's ack of seq, whose bytes hash to sha256_hex (and whose kind is
        tag, when given). Returns True if it counted, False for a duplicate or an ack of
        something already gone (normal after a resend). Raises BadAck (and changes nothing)
        for a seq never written, a validator not in the required list, a missing digest, or a
        digest or kind that is not the record's."""
        j = self.journal
        if sha256_hex is None:
            raise BadAck("an ack must name the bytes it acknowledges (sha256)")
        if seq <= self.acked:
            return False
        if seq > j.last_seq:
            raise BadAck("ack of seq %d beyond the last record %d" % (seq, j.last_seq))
        if self.required and validator not in self.required:
            raise BadAck("validator %r is not one whose ack is required" % validator)
        rec = self._record(seq)
        if rec is None:
            raise BadAck("seq %d not readable" % seq)
        if tag is not None and rec[0] != tag:
            raise BadAck("ack of seq %d names another kind of record" % seq)
        if self.idle is not None:
            self.idle()
        # The payload hashed where it lies: a copy of a 1.2 KB receipt is one more block a
        # fragmented heap may not have (an ack that cannot be checked drops the connection).
        want = hexlify(hashlib.sha256(memoryview(rec)[1:]).digest())
        got = sha256_hex.encode() if isinstance(sha256_hex, str) else bytes(sha256_hex)
        if got.lower() != want:
            raise BadAck("ack of seq %d names other bytes" % seq)
        if self._done(seq):
            return False
        if self.required:
            got = self._acks.get(seq)
            if got is None:
                got = set()
                self._acks[seq] = got
            if validator in got:
                return False
            got.add(validator)
        else:
            self._acks[seq] = True
        self._advance()
        return True

    def _advance(self):
        upto = self.acked
        while self._done(upto + 1):
            del self._acks[upto + 1]
            upto += 1
        self.acked = upto
        if upto - self.journal.acked >= self.persist_every:
            self.sync()

    def sync(self):
        """Write the ack mark to flash (drops wholly acknowledged segments)."""
        if self.acked > self.journal.acked:
            self.journal.ack(self.acked)

