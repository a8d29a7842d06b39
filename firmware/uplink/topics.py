# The MQTT topic tree of one charger (docs/mqtt.md is the reference for other parties).
#
#   cp/<charger>/status               retained "online"; last will: retained "offline"
#   cp/<charger>/receipt/<seq>        outbox record, payload = the receipt bytes as produced
#   cp/<charger>/checkpoint/<seq>     outbox record, payload = the signed checkpoint note
#   cp/<charger>/telemetry            live values while charging (QoS 0, JSON)
#   cp/<charger>/health               retained JSON: state, fault, heap low-water mark, backlog
#   cp/<charger>/cmd                  signed operator commands (charger subscribes)
#   cp/<charger>/cmd/result           one JSON answer per command
#   cp/<charger>/ack/<validator>      {"seq": N, "sha256": "<hex>"} from each validator
#   cp/<charger>/ota/manifest         retained signed update manifest for this charger (operator)
#   ota/manifest                      retained signed update manifest for the whole fleet
#   cp/<charger>/ota/req              the charger asks the update server for one chunk (JSON)
#   cp/<charger>/ota/chunk            the update server's answer: one chunk with its proof
#   cp/<charger>/ota/status           retained JSON: running version, update state, chunk i/n
#   tariff/<tariff id>                retained, signed tariff documents of the whole fleet (the
#                                     operator publishes; chargers and validators subscribe)
#
# The outbox seq travels in the topic, so receipts stay byte-exact (they are signed; MicroPython's
# json would not keep their key order if they were wrapped). Topics are bytes: that is what
# umqtt.simple sends and receives.

from ledger.ids import IdError as TopicError, check_id   # noqa: F401  (the id rule, once)

# Outbox kinds, in the order of their one-byte tag in the journal record.
KINDS = ("receipt", "checkpoint")

# The fleet-wide update manifest (a manifest whose "charger" is "*"), outside every charger's tree.
FLEET_MANIFEST = b"ota/manifest"
# Published tariffs: one retained message per tariff id, outside every charger's tree.
TARIFF_PREFIX = "tariff/"
TARIFF_FILTER = TARIFF_PREFIX + "+"
TARIFF_MAX = 4096           # bytes of a signed tariff message (document, "|", signature):
                            # a day of quarter-hour slots fits; more would not fit an ESP32 heap



def kind_tag(kind):
    try:
        return KINDS.index(kind)
    except ValueError:
        raise TopicError("unknown outbox kind %r (one of %s)" % (kind, ", ".join(KINDS)))


class Topics:
    def __init__(self, charger_id, prefix="cp"):
        check_id(charger_id)
        check_id(prefix, "prefix")
        base = "%s/%s/" % (prefix, charger_id)
        self.charger_id = charger_id
        self.base = base.encode()
        self.status = (base + "status").encode()
        self.telemetry = (base + "telemetry").encode()
        self.health = (base + "health").encode()
        self.cmd = (base + "cmd").encode()
        self.cmd_result = (base + "cmd/result").encode()
        self.ack_prefix = (base + "ack/").encode()
        self.ack_filter = self.ack_prefix + b"+"
        self.ota_manifest = (base + "ota/manifest").encode()
        self.ota_fleet = FLEET_MANIFEST
        self.ota_req = (base + "ota/req").encode()
        self.ota_chunk = (base + "ota/chunk").encode()
        self.ota_status = (base + "ota/status").encode()
        self.tariff_filter = TARIFF_FILTER.encode()
        self._out = [(base + k + "/").encode() for k in KINDS]

    def outbox(self, tag, seq):
        """Topic of outbox record seq of kind tag (index into KINDS)."""
        return self._out[tag] + b"%d" % seq

    def ack_validator(self, topic):
        """The validator id of an ack topic, or None if topic is not one of ours."""
        if not topic.startswith(self.ack_prefix):
            return None
        name = topic[len(self.ack_prefix):]
        if not name or b"/" in name:
            return None
        return name.decode()
