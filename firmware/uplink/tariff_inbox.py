# Published tariffs waiting for the app (uplink.mqtt.Link fills it from tariff/+, the app takes
# one per loop pass and checks it). Retained messages come again at every (re)subscribe: one
# the app has already dealt with is recognised by its digest and not queued a second time, so
# its signature is not checked again. When more arrive at once than fit, the rest stay retained
# on the broker and come again at the next (re)connect (dropped counts them).
import hashlib

SEEN = 16           # digests remembered (more than any fleet keeps retained at once)


class TariffInbox:
    def __init__(self, max_pending=3):
        self.max_pending = max_pending
        self._queue = []        # [(topic, raw, digest)]
        self._seen = []         # digests of messages already handed to the app
        self.dropped = 0

    def put(self, topic, msg):
        digest = hashlib.sha256(msg).digest()[:8]
        if digest in self._seen:
            return
        for queued in self._queue:
            if queued[2] == digest:
                return
        if len(self._queue) < self.max_pending:
            self._queue.append((bytes(topic), bytes(msg), digest))
        else:
            self.dropped += 1

    def take(self):
        """(topic, raw) of the oldest message, or None; once taken it counts as dealt with."""
        if not self._queue:
            return None
        topic, raw, digest = self._queue.pop(0)
        self._seen.append(digest)
        if len(self._seen) > SEEN:
            self._seen.pop(0)
        return topic, raw
