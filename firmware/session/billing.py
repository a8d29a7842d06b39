# The tariff in force for new sessions, the tariffs of sessions still open, and each running
# session's energy split per time-of-use band (session/tariff.py does the arithmetic).
import os

from session.tariff import EnergySplit, Tariff, price
from store import atomic


class Billing:
    def __init__(self, dirpath, default_tariff_json):
        self.dir = dirpath
        atomic.makedirs(dirpath)
        current = atomic.read(dirpath + "/current")
        self.tariff = Tariff.parse(current if current else default_tariff_json)
        self._keep(self.tariff)

    def _keep(self, tariff):
        path = "%s/%s" % (self.dir, tariff.hash[:16])
        if not atomic.exists(path):
            atomic.write(path, tariff.canonical)

    def set_tariff(self, text, keep=None):
        """A new tariff for sessions that start from now on (raises TariffError if bad).
        Stored tariffs other than the new one and keep (the running session's hash) go."""
        tariff = Tariff.parse(text)
        self._keep(tariff)
        atomic.write(self.dir + "/current", tariff.canonical)
        self.tariff = tariff
        wanted = (tariff.hash[:16], keep[:16] if keep else None, "current")
        for name in os.listdir(self.dir):
            base = name[:-4] if name.endswith(".tmp") else name
            if base not in wanted:
                os.remove(self.dir + "/" + name)
        return tariff

    def tariff_by_hash(self, hash_hex):
        if hash_hex == self.tariff.hash:
            return self.tariff
        raw = atomic.read("%s/%s" % (self.dir, hash_hex[:16]))
        if raw is None:
            raise KeyError("tariff %s not on flash" % hash_hex)
        return Tariff.parse(raw)

    def start(self, t, wh):
        """The energy split of a new session, under the tariff in force now."""
        return EnergySplit(self.tariff, t, wh)

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
