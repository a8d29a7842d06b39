# ChargerLog: the charger's append-only receipt log on flash.
#
# append_session(session) turns a finished session into (receipt record, checkpoint, index):
# it signs the OCMF record and the receipt, appends the receipt as the next Merkle leaf,
# signs a C2SP checkpoint, and commits all of it with ONE atomic state write before it
# returns. The charger keeps only the frontier (ledger/merkle.py); the receipts not yet
# acknowledged by a validator wait in the uplink's flash outbox (app/records.py puts them
# there), so no receipt is written to flash twice.
#
# Crash safety: the state file (seq, frontier, last receipt, last checkpoint) is the commit
# point. A power cut before it leaves the log as it was (the caller appends the session
# again: nothing was published). A power cut after it, before the receipt reached the
# outbox, is repaired on the next boot from last_receipt / last_checkpoint (app/records.py).
# Frontier and seq live in one atomically replaced record, so they can never disagree.
#
# session: a plain dict filled by the session layer (ints are epoch seconds UTC / Wh / minor):
#   charger_id       str, must equal the log's charger id (OCMF GS)
#   evse_id          str (OCMF CT=EVSEID, CI), optional
#   meter_model, meter_serial   str (OCMF MM, MS); meter_vendor, meter_firmware optional (MV, MF)
#   user_id          str, "" when no user was identified (OCMF ID; IS follows from it)
#   user_id_type     OCMF table 17 type, e.g. "LOCAL" (a card's pseudonym, ledger/cards.py), "EMAID",
#                    "CENTRAL" (OCMF IT)
#   id_level, id_flags   optional: OCMF IL (e.g. "HEARSAY") and IF (e.g. ["RFID_PLAIN"])
#   begin_wh, end_wh total import register at begin and end, integer Wh
#   begin_time, end_time        session begin and end (unplug)
#   charge_end_time  optional, last time energy flowed (idle fee starts), default end_time
#   clock_status     "S" synchronised, "I" informative, "U" unknown (OCMF TM)
#   segments         optional, [[start, Wh], ...] per tariff band (session/tariff.EnergySplit)
#   tariff           the Tariff (its .hash is used) or the tariff hash, 64 hex digits
#   net_minor, tax_minor, price_minor, currency   the price (session/tariff.price)
#   stop_reason      str, e.g. "EVDisconnected", "Local", "Remote", "PowerLoss"
#   optional: end_tx (OCMF TX of the end reading: E, L, R, A, P), meter_status (OCMF ST, "G"),
#   current_type ("AC"/"DC"), gateway_id, firmware, rv_decimals (kWh decimals, default 3)
import gc
import struct

from ledger import checkpoint, merkle, ocmf, receipt
from store import atomic

_MAGIC = b"CPL1"
_HEAD = "<4sIHHH"       # magic, seq, len(frontier), len(receipt), len(checkpoint)
_HEAD_LEN = 14
RECEIPT_MAX = 2048      # bytes; also keeps the OCMF part far below OCPP's 2500 characters


class LogError(Exception):
    pass


class LogFull(LogError):
    """Flash too full to record another session: refuse it, never drop old receipts."""


class ChargerLog:
    def __init__(self, dirpath, signer, charger_id, origin, clock, reserve_bytes=16384):
        self.dir = dirpath
        self.signer = signer
        self.charger_id = charger_id
        self.origin = origin
        self._now = clock.time if hasattr(clock, "time") else clock
        self.reserve_bytes = reserve_bytes
        checkpoint.body(origin, 0, bytes(32))       # validates the origin now, not mid-session
        atomic.makedirs(dirpath)
        self._state_path = dirpath + "/state"
        self._load()

    def _load(self):
        raw = atomic.read(self._state_path)
        if raw is None:
            self.seq, self.frontier = 0, merkle.Frontier()
            self.last_receipt = self.last_checkpoint = None
        else:
            if len(raw) < _HEAD_LEN:
                raise LogError("log state: short record")
            magic, seq, fl, rl, cl = struct.unpack(_HEAD, raw[:_HEAD_LEN])
            if magic != _MAGIC or len(raw) != _HEAD_LEN + fl + rl + cl:
                raise LogError("log state: bad header")
            p = _HEAD_LEN
            self.frontier = merkle.Frontier.from_bytes(raw[p:p + fl])
            self.seq = seq
            self.last_receipt = raw[p + fl:p + fl + rl] or None
            self.last_checkpoint = raw[p + fl + rl:p + fl + rl + cl].decode() or None

    @property
    def size(self):
        return self.frontier.size

    def root(self):
        return self.frontier.root()

    def append_session(self, s):
        """Record a finished session; returns (receipt record bytes, checkpoint str, index)."""
        if s.get("charger_id") != self.charger_id:
            raise LogError("session is for charger %r, this log is %r" % (s.get("charger_id"), self.charger_id))
        seq, index = self.seq + 1, self.frontier.size
        # Three signatures and records of 1-2 KB follow: start them on a heap cleared of the
        # session's garbage, so the larger blocks they need are found whole (ESP32 heap).
        # The collection between two safety polls (store.atomic's hook: the app's watch), so
        # its pause is not added to the work before or after it; the watch again between the
        # pieces of the receipt (the signatures call it themselves).
        atomic.idle()
        gc.collect()
        atomic.idle()
        try:
            # One name for each piece in turn: nothing outlives its use (the heap's peak).
            part = ocmf.payload(s, seq)
            atomic.idle()
            part = ocmf.sign(part, self.signer)
            atomic.idle()
            part = receipt.body(self.charger_id, seq, index, s, part)
            atomic.idle()
            rec = receipt.sign(part, self.signer)
            part = None
            atomic.idle()
        except (ocmf.OcmfError, receipt.ReceiptError, KeyError, TypeError) as e:
            raise LogError("session rejected: %s" % (e.args[0] if e.args else repr(e)))
        if len(rec) > RECEIPT_MAX:
            raise LogError("receipt of %d bytes exceeds %d" % (len(rec), RECEIPT_MAX))
        if atomic.free_bytes(self.dir) < 4 * len(rec) + 1024 + self.reserve_bytes:
            raise LogFull("flash full: session refused, old receipts kept")
        frontier = self.frontier.copy()
        frontier.append(rec)
        atomic.idle()
        cp = checkpoint.build(self.origin, frontier.size, frontier.root(), self._now(), self.signer)
        atomic.idle()
        fb, cb = frontier.to_bytes(), cp.encode()
        atomic.write(self._state_path, b"".join((       # one copy, not one per "+"
            struct.pack(_HEAD, _MAGIC, seq, len(fb), len(rec), len(cb)), fb, rec, cb)))
        # Committed: only now does RAM follow the flash.
        self.seq, self.frontier = seq, frontier
        self.last_receipt, self.last_checkpoint = rec, cp
        return rec, cp, index
