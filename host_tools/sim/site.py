"""A simulated site for the load balancer: chargers on one feeder, EVs that come and go and
follow the offered current after a reaction delay, a solar curve that rises and falls, and the
real SiteController (host_tools/operate/site.py) deciding every second. The chargers apply the
limit leases as the firmware does (session/limit.py): a lease not renewed falls back to the safe
current. Commands are the controller's decisions (their signing and the firmware's check of
them are tested separately).

    python -m host_tools.sim.site            # prints the day's figures
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from host_tools.operate.site import Member, Site, SiteController

# An EV may take IEC 61851-1's whole 5 s to follow a lower PWM current, and follows a higher
# one quickly: the worst case for a feeder when one car is turned down and another up.
REACT_DOWN_S = 5
REACT_UP_S = 1
TELEMETRY_S = 10


@dataclass
class SimPoint:
    """One charger with its lease, and the EV plugged into it (if any)."""
    cid: str
    rated_a: int
    fallback_a: float
    limit_a: float = 0.0
    lease_until: float = 0.0
    sessions: list[tuple[int, int, int]] = field(default_factory=list)  # (arrive, leave, max A)
    pending: list[tuple[float, float]] = field(default_factory=list)   # (t, offered A)
    drawn_a: float = 0.0

    def session_at(self, t: float) -> tuple[int, int, int] | None:
        for s in self.sessions:
            if s[0] <= t < s[1]:
                return s
        return None

    def command(self, t: float, ma: int, ttl_s: int) -> None:
        self.limit_a, self.lease_until = ma / 1000, t + ttl_s

    def step(self, t: float) -> None:
        if t >= self.lease_until and self.lease_until:
            self.limit_a, self.lease_until = self.fallback_a, 0.0     # controller silent
        s = self.session_at(t)
        offered = min(self.limit_a, self.rated_a) if s else 0.0
        offered = offered if offered >= 6 else 0.0
        target = min(offered, s[2]) if s else 0.0
        if not self.pending or self.pending[-1][1] != target:
            last = self.pending[-1][1] if self.pending else self.drawn_a
            self.pending.append((t + (REACT_DOWN_S if target < last else REACT_UP_S), target))
            self.pending.sort()
        # An EV leaving stops drawing at once; otherwise it follows after its reaction time.
        if s is None:
            self.drawn_a = 0.0
            self.pending = []
        while self.pending and self.pending[0][0] <= t:
            self.drawn_a = self.pending.pop(0)[1]


def solar_w(t: float, peak_w: float) -> float:
    h = (t % 86400) / 3600
    return max(0.0, peak_w * math.sin(math.pi * (h - 6) / 12)) if 6 <= h <= 18 else 0.0


def simulate(seconds: int = 86400, chargers: int = 8, feeder_a: int = 32, seed: int = 7,
             mode: str = "solar", peak_w: float = 40000, silent_from: float | None = None,
             start_s: int = 0):
    """Run the site; returns its figures (max overshoot over the feeder, energy, commands)."""
    rng = random.Random(seed)
    points = {}
    for i in range(chargers):
        cid = "SITE-%02d" % (i + 1)
        sessions, t = [], rng.randrange(0, 4 * 3600)
        while t < seconds:
            stay = rng.randrange(3600, 8 * 3600)
            sessions.append((t, min(seconds, t + stay), rng.choice((16, 32))))
            t += stay + rng.randrange(600, 4 * 3600)
        points[cid] = SimPoint(cid, 32, fallback_a=feeder_a // chargers if feeder_a // chargers >= 6 else 0.0,
                               sessions=sessions)
    site = Site("sim", feeder_a, {c: Member(c, 32) for c in points}, mode=mode, ttl_s=60)
    now = [0.0]
    ctl = SiteController(site, lambda c, ma, ttl: points[c].command(now[0], ma, ttl))
    overshoot, energy_wh, worst_t = 0.0, 0.0, None
    for t in range(start_s, seconds):
        now[0] = float(t)
        if mode == "solar":
            ctl.on_signal({"solar_surplus_w": solar_w(t, peak_w)})
        for p in points.values():
            if p.session_at(t) and t % TELEMETRY_S == 0:
                ctl.on_telemetry(p.cid, t)
        if silent_from is None or t < silent_from:
            ctl.tick(t)
        for p in points.values():
            p.step(t)
        site_a = sum(p.drawn_a for p in points.values())
        energy_wh += site_a * 230 * 3 / 3600
        if site_a - feeder_a > overshoot:
            overshoot, worst_t = site_a - feeder_a, t
    return {"overshoot_max_a": round(overshoot, 3), "worst_at_s": worst_t,
            "energy_kwh": round(energy_wh / 1000, 1), "commands": ctl.commands,
            "sessions": sum(len(p.sessions) for p in points.values())}


if __name__ == "__main__":
    print(simulate())
