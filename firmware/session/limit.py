# The charging current limit's lease. A site controller sets limits with a time to live and
# renews them while it runs; if it goes silent, the lease runs out and the charger falls back to
# its configured safe current by itself (within one loop pass), instead of keeping a share that
# was only right while the controller could still take it back. A limit set without a ttl (an
# operator's command) does not expire.


class LimitLease:
    def __init__(self, clock):
        self.clock = clock
        self._expires_ms = None
        self.expired = 0                  # how often a lease ran out (health, tests)

    def start(self, ttl_s):
        """A new limit was set: lease it for ttl_s seconds (None: no lease)."""
        if ttl_s is None:
            self._expires_ms = None
        else:
            self._expires_ms = self.clock.ticks_add(self.clock.ticks_ms(), ttl_s * 1000)

    def ran_out(self):
        """True once, on the first pass after the lease expired."""
        if self._expires_ms is None:
            return False
        if self.clock.ticks_diff(self.clock.ticks_ms(), self._expires_ms) < 0:
            return False
        self._expires_ms = None
        self.expired += 1
        return True
