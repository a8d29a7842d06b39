# The ledger as the session layer sees it: the charger's signed log (ledger.log) feeding the
# uplink's flash outbox. A receipt is committed to the log (frontier and seq), then put in the
# outbox, which holds it until the validators acknowledge it: the one copy on flash of every
# receipt not yet acknowledged.

from ledger.log import RECEIPT_MAX
from store import atomic


def _nothing():
    pass


class Records:
    def __init__(self, log, outbox, dirpath):
        self.log = log
        self.outbox = outbox
        self._queued_path = dirpath + "/queued"     # log size already put in the outbox
        self._queued = int(atomic.read(self._queued_path, b"0"))
        self.idle = None            # the safety watch, between the flash writes of a receipt
        self._requeue()

    def _requeue(self):
        # A power cut between the log's commit and the outbox put: the log kept the last
        # receipt and checkpoint in its committed state, so queue them now.
        if self._queued < self.log.size and self.log.last_receipt is not None:
            self._queue(self.log.last_receipt, self.log.last_checkpoint)

    def _queue(self, receipt, checkpoint):
        idle = self.idle or _nothing
        idle()
        self.outbox.put("receipt", receipt)
        idle()
        self.outbox.put("checkpoint", checkpoint.encode())
        idle()
        atomic.write(self._queued_path, b"%d" % self.log.size)
        idle()
        self._queued = self.log.size

    def has_room(self):
        """Room for one more session: what the log demands to append (four receipts' worth
        plus its reserve), and the outbox for the receipt and its checkpoint."""
        need = 4 * RECEIPT_MAX + 1024 + self.log.reserve_bytes
        return atomic.free_bytes(self.log.dir) >= need and self.outbox.has_room(2 * RECEIPT_MAX)

    def next_seq(self):
        return self.log.seq + 1

    def recorded(self, seq):
        """Session seq is in the log and its receipt is in the outbox."""
        return self.log.seq >= seq and self._queued >= self.log.size

    def record(self, fields):
        if self.log.seq >= fields["seq"]:
            self._requeue()          # logged before, the outbox put failed: only queue it
            return
        receipt, checkpoint, _ = self.log.append_session(fields)
        self._queue(receipt, checkpoint)
