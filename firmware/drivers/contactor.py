# The main contactor, checked through its auxiliary (mirror) contact.
#
#   c = Contactor(relay_out, feedback_in, clock, settle_ms=200)
#   c.close()       energise the coil; raises ContactorFault (coil left off) if a fault is
#                   latched or the contact already reads closed ("welded"), unless it is
#                   still dropping out from an open() less than settle_ms ago
#   c.open()        de-energise the coil first, always; never raises
#   c.check()       call every control-loop pass, whatever the state: raises ContactorFault
#                   once when the feedback has disagreed with the command for settle_ms
#   c.closed        the command (coil energised); c.feedback_closed() the auxiliary contact
#   c.fault         latched reason or None; c.reset() clears it once the contact reads open
#
# relay_out: on()/off() (1 = coil energised); feedback_in: value() (1 = main contacts closed;
# the hal pin wrapper handles active-low wiring). Reasons:
#   "did-not-close": commanded closed, the contact did not close (or dropped out) in settle_ms
#   "did-not-open":  an open command was not followed in settle_ms (welded by the load
#                    current, or a coil driver stuck on)
#   "welded":        the contact reads closed while the coil has long been off (found idle or
#                    when asked to close)
# Every fault de-energises the coil (fail safe) and latches: close() refuses until reset().


class ContactorError(ValueError):
    """A bad argument (nothing was changed)."""


class ContactorFault(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Contactor:
    def __init__(self, relay_out, feedback_in, clock, settle_ms=200):
        if not isinstance(settle_ms, int) or settle_ms < 1 or settle_ms > 5000:
            raise ContactorError("settle_ms %r outside 1..5000" % (settle_ms,))
        self._relay = relay_out
        self._feedback = feedback_in
        self._clock = clock
        self.settle_ms = settle_ms
        self.closed = False
        self.fault = None
        self._opening = False          # the current mismatch started with an open command
        self._since = None             # ticks when feedback and command began to disagree
        self._relay.off()              # a known, safe coil state from the start

    def feedback_closed(self):
        return self._feedback.value() == 1

    def open(self):
        self._relay.off()              # first, before anything that could raise
        if self.closed:
            self.closed = False
            self._opening = True
            self._since = self._clock.ticks_ms()

    def close(self):
        if self.fault is not None:
            raise ContactorFault(self.fault)
        if self.closed:
            return
        if self.feedback_closed() and not self._dropping_out():
            self._latch("welded")      # closed before we closed it: do not energise
            raise ContactorFault("welded")
        self._relay.on()
        self.closed = True
        self._opening = False
        self._since = self._clock.ticks_ms()

    def check(self):
        """Raise ContactorFault once when the contact has not followed the command for
        settle_ms; otherwise return the feedback (True = closed)."""
        fb = self.feedback_closed()
        if fb == self.closed:
            self._since = None
            self._opening = False
            return fb
        if self.fault is not None:     # already reported; the coil is off
            return fb
        now = self._clock.ticks_ms()
        if self._since is None:
            self._since = now          # a new disagreement (dropout, or closed while idle)
        if self._clock.ticks_diff(now, self._since) < self.settle_ms:
            return fb
        if self.closed:
            reason = "did-not-close"
        elif self._opening:
            reason = "did-not-open"
        else:
            reason = "welded"
        self._latch(reason)
        raise ContactorFault(reason)

    def _dropping_out(self):
        """Opened less than settle_ms ago: the contact may still be on its way open, and
        closing again now (EV back to C at once) is not a sign of welding."""
        return self._opening and self._since is not None and self._clock.ticks_diff(
            self._clock.ticks_ms(), self._since) < self.settle_ms

    def _latch(self, reason):
        self._relay.off()
        self.closed = False
        self.fault = reason

    def reset(self):
        """Clear a latched fault (operator action) once the contact reads open."""
        self._relay.off()
        self.closed = False
        if self.feedback_closed():
            self.fault = "welded"
            raise ContactorFault("welded")
        self.fault = None
        self._since = None
        self._opening = False
