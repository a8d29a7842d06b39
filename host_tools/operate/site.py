"""Site load balancing: share one grid connection's current among the chargers that charge.

    python -m host_tools.operate.site --site site.json --key operator.pem --host BROKER

`site.json`: {"name": "depot", "feeder_a": 32, "chargers": {"CP-1": {"rated_a": 32}, ...},
              "schedule": [[0, 32], [1020, 20], [1320, 32]],   # (minute of day, A) local
              "utc_offset_min": 60, "mode": "grid" | "solar", "ttl_s": 60}

Every charger with a session (its telemetry is fresh) gets a fair share of what the site may
draw now: the feeder's rating, the time-based schedule, the grid's limit signal and, in solar
mode, the solar surplus (published on `site/<name>/signal` as {"grid_limit_a": A} or
{"solar_surplus_w": W}, e.g. by a house meter). Below IEC 61851-1's 6 A minimum a charger is
paused rather than given less; the pauses rotate so every car gets its turn. Each limit is sent
as a command signed with the operator's key and carries a lease (ttl_s): a charger whose
controller goes silent falls back to its configured safe current by itself.

Order matters for the feeder: decreases are sent at once, increases only after the EV has had
time to follow the decreases (IEC 61851-1 gives an EV 5 s to follow a lower PWM), so the sum of
the currents never passes the limit while cars adjust.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

MIN_A = 6                     # IEC 61851-1 Annex A: the lowest current a PWM can offer
VOLTS = 230
FRESH_S = 35                  # telemetry (every 10 s) younger than this: a session is running
SETTLE_S = 5                  # IEC 61851-1: an EV follows a lower current within 5 s
RAISE_STEP_MA = 1000          # raise a limit only by at least this much (fewer commands)
TURN_S = 900                  # a car that got its turn keeps it this long (contactors wear)


@dataclass
class Member:
    charger_id: str
    rated_a: int
    phases: int = 3
    seen_at: float = -1e9           # last telemetry
    limit_ma: int | None = None     # last limit sent
    sent_at: float = -1e9
    waited_s: float = 0.0           # time paused while active: the longest waiting goes first
    run_s: float = 0.0              # time running since its turn began


@dataclass
class Site:
    name: str
    feeder_a: int
    members: dict[str, Member]
    schedule: list[tuple[int, int]] = field(default_factory=list)  # (minute of day, A)
    utc_offset_min: int = 0
    mode: str = "grid"              # grid | solar
    ttl_s: int = 60

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Site":
        members = {cid: Member(cid, int(m.get("rated_a", 32)), int(m.get("phases", 3)))
                   for cid, m in doc["chargers"].items()}
        return cls(doc["name"], int(doc["feeder_a"]), members,
                   [(int(a), int(b)) for a, b in doc.get("schedule", [])],
                   int(doc.get("utc_offset_min", 0)), doc.get("mode", "grid"),
                   int(doc.get("ttl_s", 60)))


class SiteController:
    """Decides and sends the limits; `send(charger, ma, ttl_s)` publishes a signed command."""

    def __init__(self, site: Site, send: Callable[[str, int, int], None]):
        self.site = site
        self.send = send
        self.grid_limit_a: float | None = None
        self.solar_w: float | None = None
        self._last_decrease = -1e9
        self.commands = 0

    # inputs
    def on_telemetry(self, charger: str, now: float) -> None:
        m = self.site.members.get(charger)
        if m is not None:
            m.seen_at = now

    def on_signal(self, doc: dict[str, Any]) -> None:
        if "grid_limit_a" in doc:
            self.grid_limit_a = max(0.0, float(doc["grid_limit_a"]))
        if "solar_surplus_w" in doc:
            self.solar_w = max(0.0, float(doc["solar_surplus_w"]))

    # the decision
    def available_a(self, now: float) -> float:
        s = self.site
        a = float(s.feeder_a)
        if s.schedule:
            minute = int((now // 60 + s.utc_offset_min) % 1440)
            limit = s.schedule[-1][1]
            for start, amps in s.schedule:
                if start <= minute:
                    limit = amps
            a = min(a, limit)
        if self.grid_limit_a is not None:
            a = min(a, self.grid_limit_a)
        if s.mode == "solar":
            a = min(a, (self.solar_w or 0.0) / (VOLTS * 3))
        return a

    def allocate(self, now: float) -> dict[str, int]:
        """{charger: mA} for every member: fair shares, >= 6 A or 0, never over rated."""
        active = [m for m in self.site.members.values() if now - m.seen_at <= FRESH_S]
        out = {cid: 0 for cid in self.site.members}
        budget = self.available_a(now)
        # Who runs: as many as 6 A each allows; a car keeps its turn for TURN_S, then the
        # longest waiting go first.
        active.sort(key=lambda m: (0 if 0 < m.run_s < TURN_S else 1, -m.waited_s, m.charger_id))
        running = active[:int(budget // MIN_A)] if active else []
        # Water-filling: equal shares, capped at each charger's rating, leftovers shared again.
        left, todo = budget, sorted(running, key=lambda m: m.rated_a)
        while todo:
            share = left / len(todo)
            m = todo[0]
            give = min(float(m.rated_a), share)
            out[m.charger_id] = int(give * 1000) // 100 * 100     # 0.1 A steps, rounded down
            left -= out[m.charger_id] / 1000
            todo.pop(0)
        return out

    def tick(self, now: float, dt: float = 1.0) -> None:
        want = self.allocate(now)
        for m in self.site.members.values():
            if now - m.seen_at <= FRESH_S and want[m.charger_id] == 0:
                m.waited_s += dt
                m.run_s = 0.0
            elif want[m.charger_id] > 0:
                m.waited_s = 0.0
                m.run_s += dt
        renew = self.site.ttl_s / 2
        falling = [c for c, ma in want.items()
                   if self.site.members[c].limit_ma is None or ma < self.site.members[c].limit_ma]
        for c in falling:
            self._send(c, want[c], now)
        if falling:
            self._last_decrease = now
        settled = now - self._last_decrease >= SETTLE_S
        for c, ma in want.items():
            m = self.site.members[c]
            if c in falling:
                continue
            if ma >= m.limit_ma + RAISE_STEP_MA and settled:
                self._send(c, ma, now)
            elif now - m.sent_at >= renew:
                self._send(c, m.limit_ma, now)          # renew the lease of what holds now

    def _send(self, charger: str, ma: int, now: float) -> None:
        m = self.site.members[charger]
        self.send(charger, ma, self.site.ttl_s)
        m.limit_ma, m.sent_at = ma, now
        self.commands += 1


def main(argv: list[str] | None = None) -> int:
    from host_tools import mqtt_conn
    from host_tools.provision import operator_cmd
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", required=True, help="site JSON (see the module doc)")
    ap.add_argument("--key", required=True, help="the operator's key (PEM)")
    mqtt_conn.add_arguments(ap, host_flag="--host")     # an operator login, TLS
    a = ap.parse_args(argv)
    with open(a.site) as f:
        site = Site.from_doc(json.load(f))
    key = operator_cmd.load_key(a.key)
    spec = mqtt_conn.spec_from_args(a)
    client = mqtt_conn.client(spec, client_id="site-" + site.name)

    def send(charger: str, ma: int, ttl_s: int) -> None:
        msg = operator_cmd.sign(key, charger, "current_limit", {"ma": ma, "ttl_s": ttl_s})
        client.publish("cp/%s/cmd" % charger, msg, qos=1)
    ctl = SiteController(site, send)

    def on_message(c: Any, u: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        if parts[0] == "cp" and len(parts) == 3 and parts[2] == "telemetry":
            ctl.on_telemetry(parts[1], time.time())
        elif msg.topic == "site/%s/signal" % site.name and len(msg.payload) < 1024:
            try:
                ctl.on_signal(json.loads(msg.payload))
            except (ValueError, TypeError):
                pass
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p=None: (
        c.subscribe("cp/+/telemetry", 0), c.subscribe("site/%s/signal" % site.name, 1))
    client.connect(spec.host, spec.port)
    client.loop_start()
    while True:
        ctl.tick(time.time())
        time.sleep(1.0)


if __name__ == "__main__":
    raise SystemExit(main())
