# The tariff in force for new sessions, the tariffs published for later (valid_from ahead),
# the tariffs of sessions still open, and each running session's energy split per segment
# (session/tariff.py does the arithmetic).
#
# On flash (dir): "current" (canonical text of the tariff in force), "<hash16>" (every tariff
# kept: in force, scheduled, or the running session's), "pending" (JSON [[valid_from, hash16],
# ...] of the scheduled ones, by valid_from). Every file is replaced atomically and a tariff's
# own file is written before anything names it, so a power cut leaves the old state or the new.
import json
import os

from session.tariff import EnergySplit, Tariff, TariffError, price
from store import atomic

MAX_PENDING = 4             # tariffs scheduled ahead at once

# Why a published tariff was refused (offer()); nothing changes then.
MALFORMED = "malformed"
EXPIRED = "expired"
STALE = "stale"             # not newer than the tariff in force, or than one already scheduled
TOO_MANY = "too-many-pending"


class TariffRefused(Exception):
    def __init__(self, reason, detail):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class Billing:
    def __init__(self, dirpath, default_tariff_json):
        self.dir = dirpath
        atomic.makedirs(dirpath)
        current = atomic.read(dirpath + "/current")
        self.tariff = Tariff.parse(current if current else default_tariff_json)
        self._keep(self.tariff)
        raw = atomic.read(dirpath + "/pending")
        self.pending = json.loads(raw) if raw else []    # [[valid_from, hash16], ...]

    def _keep(self, tariff):
        path = "%s/%s" % (self.dir, tariff.hash[:16])
        if not atomic.exists(path):
            atomic.write(path, tariff.canonical)

    def _write_pending(self, pending):
        atomic.write(self.dir + "/pending", json.dumps(pending).encode())
        self.pending = pending

    def _install(self, tariff, keep):
        """tariff in force from now on; stored tariffs nobody needs any more go."""
        self._keep(tariff)
        atomic.write(self.dir + "/current", tariff.canonical)
        self.tariff = tariff
        wanted = [tariff.hash[:16], keep[:16] if keep else None, "current", "pending"]
        for _, h in self.pending:
            wanted.append(h)
        for name in os.listdir(self.dir):
            base = name[:-4] if name.endswith(".tmp") else name
            if base not in wanted:
                os.remove(self.dir + "/" + name)
        return tariff

    def set_tariff(self, text, keep=None):
        """A new tariff for sessions that start from now on (raises TariffError if bad).
        Stored tariffs other than the new one, the scheduled ones and keep (the running
        session's hash) go."""
        return self._install(Tariff.parse(text), keep)

    def offer(self, text, now, keep=None, tariff_id=None):
        """A tariff the operator published (its signature already checked): in force now if
        its valid_from has come, else scheduled. Returns (tariff, status), status "in-force",
        "scheduled" or "known" (already held: nothing written). Raises TariffRefused and
        changes nothing when it is malformed, expired, or not newer than what it would replace.
        tariff_id: the id of the topic it came on, which the document must carry."""
        try:
            t = Tariff.parse(text)
        except TariffError as exc:
            raise TariffRefused(MALFORMED, str(exc))
        if t.v != 2:
            raise TariffRefused(MALFORMED, "a published tariff is version 2 (valid_from, tz, id)")
        if tariff_id is not None and t.id != tariff_id:
            raise TariffRefused(MALFORMED, "tariff %s published as %s" % (t.id, tariff_id))
        h16 = t.hash[:16]
        if t.hash == self.tariff.hash or any(h == h16 for _, h in self.pending):
            return t, "known"
        if t.valid_until is not None and now >= t.valid_until:
            raise TariffRefused(EXPIRED, "valid until %d, now %d" % (t.valid_until, now))
        if t.valid_from <= self.tariff.valid_from:
            raise TariffRefused(STALE, "valid from %d, the tariff in force from %d"
                                % (t.valid_from, self.tariff.valid_from))
        if t.valid_from <= now:
            # In force at once: it also supersedes those scheduled before it.
            later = [p for p in self.pending if p[0] > t.valid_from]
            if len(later) != len(self.pending):
                self._keep(t)
                self._write_pending(later)
            self._install(t, keep)
            return t, "in-force"
        for vf, _ in self.pending:
            if vf == t.valid_from:
                raise TariffRefused(STALE, "another tariff is scheduled from %d" % vf)
        if len(self.pending) >= MAX_PENDING:
            raise TariffRefused(TOO_MANY, "%d tariffs already scheduled" % MAX_PENDING)
        self._keep(t)
        pending = self.pending + [[t.valid_from, h16]]
        pending.sort()
        self._write_pending(pending)
        return t, "scheduled"

    def in_force(self, now, keep=None):
        """The tariff for a session starting at now: the latest whose valid_from has come
        (scheduled ones become current here). Raises TariffError if it has expired."""
        due = None
        for p in self.pending:
            if p[0] <= now:
                due = p
        if due is not None:
            raw = atomic.read("%s/%s" % (self.dir, due[1]))
            self._write_pending([p for p in self.pending if p[0] > due[0]])
            if raw is not None:             # (its file is written before the schedule names it)
                self._install(Tariff.parse(raw), keep)
        t = self.tariff
        if t.valid_until is not None and now >= t.valid_until:
            raise TariffError("tariff-expired")
        return t

    def tariff_by_hash(self, hash_hex):
        if hash_hex == self.tariff.hash:
            return self.tariff
        raw = atomic.read("%s/%s" % (self.dir, hash_hex[:16]))
        if raw is None:
            raise KeyError("tariff %s not on flash" % hash_hex)
        return Tariff.parse(raw)

    def start(self, t, wh):
        """The energy split of a new session, under the tariff in force at t."""
        return EnergySplit(self.in_force(t), t, wh)

    def resume(self, s):
        """Rebuild a journalled session's energy split after a reboot."""
        return EnergySplit.restore(self.tariff_by_hash(s["tariff"]), s["split"])

    @staticmethod
    def save(split, s):
        """Copy the split's state into the session dict that goes to flash."""
        s["split"] = split.state()
        s["segments"] = split.segments

    @staticmethod
    def price(split, s, end_time):
        """(net, tax, total) minor units if the session ended at end_time."""
        charge_end = s["charge_end"] if s["charge_end"] is not None else end_time
        if charge_end > end_time:
            charge_end = end_time
        return price(split.tariff, split.segments, s["begin_time"], charge_end, end_time)
