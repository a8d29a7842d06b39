# The charger's command inbox: what arrives on cp/<id>/cmd waits here for its signature check.
#
# A P-256 verification costs about a second on an ESP32, so the inbox screens each message as
# it arrives (commands.Verifier.screen: size, the command MAC, the counter; microseconds) and
# keeps only what passes: junk never takes one of the max_pending places. Refused messages are
# counted (junk) and the latest is kept for one answer per poll (take_refused), so a flood of
# junk cannot become a flood of results either. A full queue drops the newest (dropped).
from uplink import commands


class CommandInbox:
    def __init__(self, verifier, max_pending=4):
        self.verifier = verifier
        self.max_pending = max_pending
        self._queue = []            # screened commands, oldest first
        self._refused = None        # (CommandRejected, raw) of the latest refused message
        self.junk = 0               # refused by the screen (no valid MAC, too long, replayed)
        self.dropped = 0            # screened in, but the queue was full

    def offer(self, msg):
        """A message from the command topic; False if the screen refused it (junk)."""
        if self.verifier is not None:
            try:
                self.verifier.screen(msg)
            except commands.CommandRejected as exc:
                self.junk += 1
                self._refused = (exc, msg)
                return False
        if len(self._queue) < self.max_pending:
            self._queue.append(bytes(msg))
        else:
            self.dropped += 1
        return True

    def take_refused(self):
        """The result message for the latest refused message (None if none since the last
        call): one answer however many were refused."""
        refused = self._refused
        if refused is None:
            return None
        self._refused = None
        return commands.rejection(refused[0], refused[1])

    def pop(self):
        """The oldest screened message, or None."""
        return self._queue.pop(0) if self._queue else None
