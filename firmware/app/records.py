# The ledger as the session layer sees it: the charger's signed log (ledger.log) feeding the
# uplink's flash outbox. A receipt is committed to the log (frontier and seq), then put in the
# outbox, which holds it until the validators acknowledge it: the one copy on flash of every
# receipt not yet acknowledged.

from ledger.log import RECEIPT_MAX, ChargerLog
from store import atomic


class Records:
    def __init__(self, log, outbox, dirpath):
        self.log = log
        self.outbox = outbox
        self._queued_path = dirpath + "/queued"     # log size already put in the outbox
        self._queued = int(atomic.read(self._queued_path, b"0"))
        self._requeue()

    def _requeue(self):
        # A power cut between the log's commit and the outbox put: the log kept the last
        # receipt and checkpoint in its committed state, so queue them now.
        if self._queued < self.log.size and self.log.last_receipt is not None:
            self._queue(self.log.last_receipt, self.log.last_checkpoint)

    def _queue(self, receipt, checkpoint):
        self.outbox.put("receipt", receipt)
        self.outbox.put("checkpoint", checkpoint.encode())
        atomic.write(self._queued_path, b"%d" % self.log.size)
        self._queued = self.log.size

    def has_room(self):
        """Room for one more session's receipt and checkpoint, with margin."""
        return self.outbox.has_room(2 * RECEIPT_MAX)

    def next_seq(self):
        return self.log.seq + 1

    def recorded(self, seq):
        return self.log.seq >= seq

    def record(self, fields):
        receipt, checkpoint, _ = self.log.append_session(fields)
        self._queue(receipt, checkpoint)
