# The RFID reader as the charger sees it: one call per poll that yields a card's UID once when
# it is presented, not again while it stays in the field, and never a partial UID. A reader
# that fails to initialise or keeps returning spoiled exchanges is reported, not retried in a
# tight loop: a broken reader must not cost the main loop its time.
from drivers.mfrc522 import CardError, ReaderError


class CardReader:
    def __init__(self, chip, gone_polls=3, retry_polls=40):
        self.chip = chip                # drivers.mfrc522.MFRC522 (or any reader with read_uid)
        self.gone_polls = gone_polls    # polls without a card before the same card counts again
        self.retry_polls = retry_polls  # polls to wait before re-initialising a failed reader
        self.ready = False
        self.error = None               # the last reader or card error, as text
        self.errors = 0
        self._last = None
        self._absent = 0
        self._wait = 0

    def poll(self):
        """The UID (hex) of a newly presented card, else None."""
        if not self.ready:
            if self._wait > 0:
                self._wait -= 1
                return None
            try:
                self.chip.init()
                self.ready = True
                self.error = None
            except (ReaderError, OSError) as exc:
                self._fail(exc)
                return None
        try:
            uid = self.chip.read_uid()
        except CardError as exc:
            self.errors += 1
            self.error = str(exc)
            return None
        except (ReaderError, OSError) as exc:
            self.ready = False
            self._fail(exc)
            return None
        if uid is None:
            self._absent += 1
            if self._absent >= self.gone_polls:
                self._last = None
            return None
        self._absent = 0
        if uid == self._last:
            return None
        self._last = uid
        return uid

    def _fail(self, exc):
        self.errors += 1
        self.error = str(exc)
        self._wait = self.retry_polls
