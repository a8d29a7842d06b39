# Fault records on flash: every fault is stored before anything else is done with it.
import json

from store.journal import Journal, JournalFull


class FaultLog:
    def __init__(self, dirpath, keep=200):
        self.journal = Journal(dirpath, segment_bytes=2048, reserve_bytes=4096)
        self.keep = keep
        self.last = None

    def record(self, now, code, detail=""):
        self.last = {"time": now, "code": code, "detail": detail}
        try:
            self.journal.append(json.dumps(self.last).encode())
        except JournalFull:
            pass   # the fault is still handled (contactor open); only its record is not kept
        # Keep the log bounded: old fault records are history, not bills.
        excess = self.journal.pending() - self.keep
        if excess > 0:
            self.journal.ack(self.journal.acked + excess)
        return self.last

    def records(self):
        return [json.loads(data) for _, data in self.journal.records()]
