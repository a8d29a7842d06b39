# Who may charge: a local allow-list of card pseudonyms (ledger/cards.py), remote
# authorisation by the operator, or free mode; a reservation holds the connector for one id
# until a time.
FREE_ID = "FREE"


class Authoriser:
    def __init__(self, mode="allow-list", allow_list=(), remote_ttl_s=120):
        if mode not in ("allow-list", "remote", "free"):
            raise ValueError("unknown authorisation mode %r" % (mode,))
        self.mode = mode
        self.allow_list = set(allow_list)
        self.remote_ttl_s = remote_ttl_s
        self._remote = None          # (id_tag, expires_at) granted by a signed remote command
        self.reserved_for = None     # (id_tag, until)

    def reserve(self, id_tag, until):
        self.reserved_for = (id_tag, until)

    def cancel_reservation(self):
        self.reserved_for = None

    def grant_remote(self, id_tag, now):
        self._remote = (id_tag, now + self.remote_ttl_s)

    def pending_remote(self, now):
        """The id of a remote authorisation still valid at now, else None."""
        if self._remote and now <= self._remote[1]:
            return self._remote[0]
        self._remote = None
        return None

    def take_remote(self, now):
        id_tag = self.pending_remote(now)
        self._remote = None
        return id_tag

    def check(self, id_tag, now, remote=False):
        """None if id_tag may start a session now, else the reason it may not."""
        if self.reserved_for and now <= self.reserved_for[1] and not self._holder(id_tag):
            return "reserved"
        if self.mode == "free" or remote:
            return None
        if id_tag in self.allow_list:
            return None
        return "unknown-id"

    def _holder(self, id_tag):
        # A CSMS names a card by its pseudonym's first 20 digits (OCPP 1.6 idTag, at most 20
        # characters; docs/security.md "Cards and the CSMS"): such a reservation holds for it.
        held = self.reserved_for[0]
        return id_tag == held or (len(held) == 20 and len(id_tag) == 32 and id_tag[:20] == held)

    def id_type(self, id_tag, remote=False):
        # OCMF identification types: LOCAL for a card's pseudonym (an identifier the charger
        # makes itself, ledger/cards.py; never the card's ISO14443 UID), CENTRAL for back-end ids.
        if id_tag == FREE_ID:
            return "NONE"
        return "CENTRAL" if remote else "LOCAL"
