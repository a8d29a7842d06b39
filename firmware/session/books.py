# The running session's books: the session record (a dict), its energy per tariff band, its
# journal on flash, the plausibility of each reading, and its hand-over to the ledger as a
# receipt. The state machine (session/charger.py) decides when; the books decide what is
# written. Energy is the difference of the meter's total import register (integer Wh).
from session.billing import Billing
from session.plausibility import Plausibility
from session.receipt_fields import receipt_fields
from session.state import AUTHORISED, CLOSING


class Books:
    def __init__(self, config, clock, sessions, ledger, billing):
        self.cfg = config
        self.clock = clock
        self.sessions = sessions          # session.state.SessionStore
        self.ledger = ledger              # has_room(), next_seq(), recorded(seq), record(dict)
        self.billing = billing            # session.billing.Billing
        self.plausibility = Plausibility(config)
        self.session = None
        self.split = None                 # the running session's energy per tariff band
        self._last_journal_s = 0

    def open(self, id_tag, id_type, begin_wh, now):
        """Open a session at begin_wh, journalled (on flash before the contactor can close).
        Returns (fault code, detail) instead if the register went back since the last one."""
        last_end = self.sessions.last_end_wh
        bad = Plausibility.check_begin(begin_wh, last_end)
        if bad is not None:
            return bad
        self.split = self.billing.start(now, begin_wh)
        self.session = {
            "seq": self.ledger.next_seq(), "id": id_tag, "id_type": id_type,
            "begin_wh": begin_wh, "begin_time": now, "last_wh": begin_wh, "last_time": now,
            "tariff": self.split.tariff.hash, "charge_end": None, "end_wh": None,
            "end_time": None, "reason": None, "phase": AUTHORISED,
            # Energy the meter counted between the last session and this one (validators flag it).
            "between_wh": (begin_wh - last_end) if last_end is not None else 0,
        }
        self.journal()
        return None

    def resume(self, s):
        """Take up a journalled session after a reboot."""
        self.session = s
        self.split = self.billing.resume(s)

    def now(self):
        """Wall time for the running session, never before its last reading: an RTC that came
        back behind the journal after a power cut must not put an end before a begin."""
        now = self.clock.time()
        s = self.session
        if s is not None and now < s["last_time"]:
            return s["last_time"]
        return now

    def take_reading(self, energy_wh, now, bound_jump=True):
        """Book a reading; (fault code, detail) if it is not plausible (nothing is booked)."""
        s = self.session
        bad = self.plausibility.check(s["last_wh"], s["last_time"], energy_wh, now, bound_jump)
        if bad is not None:
            return bad
        if now < s["last_time"]:
            now = s["last_time"]            # a clock stepped back does not rewrite history
        self.split.sample(now, energy_wh)
        s["last_wh"] = energy_wh
        s["last_time"] = now
        if now - self._last_journal_s >= self.cfg["journal_interval_s"]:
            self.journal()
        return None

    def take_last(self, energy_wh):
        """After a fault that is not the meter's: its reading now ends the session, unless it
        went backwards (then the last good one stands)."""
        s = self.session
        if energy_wh >= s["last_wh"]:
            t = self.now()
            self.split.sample(t, energy_wh)
            s["last_wh"] = energy_wh
            s["last_time"] = t

    def set_phase(self, phase):
        self.session["phase"] = phase
        self.journal()

    def close(self, end_time):
        """Fix the end and the price of the running session, journalled as closing; return it."""
        s = self.session
        end = end_time if end_time > s["last_time"] else s["last_time"]
        self.split.sample(end, s["last_wh"])
        s["end_wh"] = s["last_wh"]
        s["end_time"] = end
        if s["charge_end"] is None:
            s["charge_end"] = end
        s["price"] = list(self.billing.price(self.split, s, end))
        s["phase"] = CLOSING
        self.journal()
        return s

    def to_ledger(self, s):
        """Hand the closed session s to the ledger (once: a reboot may offer it again). Raises
        what the ledger raised; the session then stays on flash (closing), to be recorded at
        the next chance. Afterwards, sessions.finish(s) lets the journal forget it."""
        self.session = None
        self.split = None
        if not self.ledger.recorded(s["seq"]):
            currency = self.billing.tariff_by_hash(s["tariff"]).currency
            self.ledger.record(receipt_fields(self.cfg, s, self.clock.status(), currency))

    def journal(self):
        s = self.session
        Billing.save(self.split, s)
        self.sessions.save(s)
        self._last_journal_s = s["last_time"]

    def price_so_far(self):
        """The running session's total price (minor units) up to its last reading; 0 without."""
        s = self.session
        if s is None or self.split is None:
            return 0
        return self.billing.price(self.split, s, s["last_time"])[2]
