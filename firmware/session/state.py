# The running session, persisted on flash with atomic replace at every step that matters
# (authorised, contactor about to close, readings, closing), so a reboot never loses it.
import json

from store import atomic


# The charger's states; a journalled session's "phase" is one of the session states.
IDLE = "idle"
CONNECTED = "connected"
AUTHORISED = "authorised"
CHARGING = "charging"
SUSPENDED = "suspended"
STOPPED = "stopped"
FAULT = "fault"
RECOVERING = "recovering"
CLOSING = "closing"            # only in the journal: the end is fixed, the receipt not yet made


class SessionStore:
    def __init__(self, dirpath):
        atomic.makedirs(dirpath)
        self._current = dirpath + "/current"
        self._counters = dirpath + "/counters"
        counters = atomic.read(self._counters)
        counters = json.loads(counters) if counters else {}
        self.last_seq = counters.get("last_seq", 0)          # last session number handed out
        self.last_end_wh = counters.get("last_end_wh")       # meter at the end of the last session

    def load(self):
        """The running session (a dict) or None."""
        raw = atomic.read(self._current)
        return json.loads(raw) if raw else None

    def quarantine(self):
        """Move a damaged running-session record aside (current.bad) so the charger can go on."""
        import os
        atomic.remove(self._current + ".bad")
        for suffix in ("", ".tmp"):
            if atomic.exists(self._current + suffix):
                os.rename(self._current + suffix, self._current + ".bad" + suffix)

    def save(self, session):
        atomic.idle()           # the safety watch: the reading's checks are done, JSON next
        atomic.write(self._current, json.dumps(session).encode())

    def next_seq(self):
        return self.last_seq + 1

    def finish(self, session):
        """The session is recorded in the ledger: remember its end, then drop it."""
        self.last_seq = max(self.last_seq, session["seq"])
        self.last_end_wh = session["end_wh"]
        atomic.write(self._counters, json.dumps(
            {"last_seq": self.last_seq, "last_end_wh": self.last_end_wh}).encode())
        atomic.remove(self._current)

