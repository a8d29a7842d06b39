# Published tariffs waiting for the app (uplink.mqtt.Link fills it from tariff/+, the app takes
# one per loop pass and checks it). Retained messages come again at every (re)subscribe: one
# the app has already dealt with is recognised by its digest and not queued a second time, so
# its signature is not checked again. When more arrive at once than fit, the rest stay retained
# on the broker and come again at the next (re)connect (dropped counts them).
# Also here, not in modules the link imports (the uplink-only process has no heap to spare):
# the signature check of a published tariff and the tariff topic's id.
import hashlib

from uplink import commands
from uplink.topics import TARIFF_PREFIX

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


def tariff_topic(tariff_id):
    return TARIFF_PREFIX + tariff_id


def tariff_id_of(topic):
    """The tariff id of a tariff topic (str or bytes), or None if it is not one."""
    if isinstance(topic, (bytes, bytearray)):
        topic = bytes(topic).decode()
    if not topic.startswith(TARIFF_PREFIX):
        return None
    name = topic[len(TARIFF_PREFIX):]
    if not name or "/" in name:
        return None
    return name


def signed_payload(key, raw, max_len, idle=None):
    """The payload of <payload>|<hex DER signature> if the operator key signed it (tariff
    documents published on tariff/<id>: not for one charger, no counter, so nothing is
    persisted here). Raises commands.CommandRejected (malformed, unsigned, bad-signature)."""
    if not isinstance(raw, (bytes, bytearray)) or not 0 < len(raw) <= max_len:
        raise commands.CommandRejected(commands.MALFORMED, "empty or longer than %d bytes" % max_len)
    raw = bytes(raw)
    bar = raw.rfind(b"|")
    sig_hex = b"" if bar < 0 else raw[bar + 1:].strip()
    if not sig_hex:
        raise commands.CommandRejected(commands.UNSIGNED, "no signature")
    try:
        ok = commands.operator_signed(key, raw[:bar], sig_hex, idle)
    except (ValueError, TypeError) as exc:
        raise commands.CommandRejected(commands.BAD_SIGNATURE, "signature is not hex DER: %s" % exc)
    if not ok:
        raise commands.CommandRejected(commands.BAD_SIGNATURE, "not signed by the operator key")
    return raw[:bar]
