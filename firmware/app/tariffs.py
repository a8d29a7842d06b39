# Published tariffs on the charger: tariff/<id>, retained, signed by the operator key
# (docs/mqtt.md, "Published tariffs"). Wired onto the link beside the updates (app/ota.py): one
# more subscription, and the messages on it go to an inbox (uplink/tariff_inbox.py); each loop
# pass checks at most one, against the operator key, and hands it to session.billing, which puts
# it in force or schedules it (sessions already running keep theirs). Every message is answered
# on cmd/result like a command, named by its topic (n null); a refused one changes nothing and
# leaves a fault record.
from session.billing import TariffRefused
from uplink import commands
from uplink.tariff_inbox import TariffInbox, signed_payload, tariff_id_of
from uplink.topics import TARIFF_MAX


class PublishedTariffs:
    def __init__(self, app, link):
        self.app = app
        self.link = link
        self.inbox = TariffInbox()
        link.extra_subs = tuple(link.extra_subs) + ((link.topics.tariff_filter, 1),)
        self._other = link.on_other         # the updates' handler, if any
        link.on_other = self._on_message

    def _on_message(self, topic, msg):
        if topic.startswith(b"tariff/"):
            self.inbox.put(topic, msg)
        elif self._other is not None:
            self._other(topic, msg)

    def step(self, safety):
        """Check and answer at most one published tariff."""
        published = self.inbox.take()
        if published is None:
            return
        topic, raw = published
        result, detail = self.offer(topic, raw, safety)
        safety()
        ref = commands.Command(topic.decode(), {}, None, 0, commands.ref_of(raw))
        self.link.reply(ref, result, detail)

    def offer(self, topic, raw, safety=None):
        """(result, detail) for the cmd/result message; anything refused changes nothing."""
        app = self.app
        now = app.clock.time()
        try:
            payload = signed_payload(self.link.verifier.key, raw, TARIFF_MAX, safety)
            running = app.charger.session["tariff"] if app.charger.session else None
            tariff, status = app.billing.offer(payload, now, keep=running,
                                               tariff_id=tariff_id_of(topic))
        except commands.CommandRejected as exc:
            status, detail = exc.reason, exc.detail
        except TariffRefused as exc:
            status, detail = exc.reason, exc.detail
        else:
            return "ok", "%s %s %s" % (status, tariff.id, tariff.hash)
        app.faults.record(now, "tariff-refused", "%s: %s" % (status, detail))
        return status, detail
