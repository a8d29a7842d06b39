"""Home Assistant MQTT discovery for ChargeProof chargers, from the host (the charger's heap is
not spent on it).

For every charger seen on the broker (its retained `cp/<id>/status`), the bridge publishes
retained discovery documents under `homeassistant/<component>/<node>/<object>/config` that point
Home Assistant at the topics the charger already publishes: power, session energy and running
cost from telemetry, state and fault from the retained health message, availability from the
status topic. Two buttons, start and stop, publish to the bridge's own command topic; the bridge
turns a press into a command signed with the operator's key, so the charger checks it exactly as
any other operator command (docs/mqtt.md). Only Home Assistant's broker user may publish on the
button topic (docs/security.md); the charger trusts nothing but the signature either way.

    python -m host_tools.operate.home_assistant --key operator.pem --host 127.0.0.1 --port 1883

Conventions followed (Home Assistant's MQTT discovery docs): a `device` block with
`identifiers`, a `unique_id` per entity, energy as `total_increasing` in Wh, power as
`measurement` in W, money as `total` with an ISO 4217 currency as the unit, buttons with
`command_topic` and `payload_press`, availability `online`/`offline`, and an empty retained
payload to remove an entity.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any, Callable

from host_tools.provision import operator_cmd
from host_tools import firmware_rules

log = logging.getLogger("chargeproof.ha")

BUTTON_PRESSES = ("start", "stop")


def valid_charger_id(name: str) -> bool:
    """The firmware's charger id rule (firmware/ledger/ids.py, through host_tools.firmware_rules)."""
    return firmware_rules.valid_charger_id(name)


class Discovery:
    """The discovery documents for one charger: {topic: payload dict}."""

    def __init__(self, prefix: str = "cp", discovery_prefix: str = "homeassistant",
                 button_prefix: str = "chargeproof-ha", currency: str = "EUR",
                 minor_per_major: int = 100):
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.button_prefix = button_prefix
        self.currency = currency
        self.minor_per_major = minor_per_major

    def button_topic(self, charger: str) -> str:
        return "%s/%s/button" % (self.button_prefix, charger)

    def documents(self, charger: str) -> dict[str, dict[str, Any]]:
        node = "chargeproof_" + charger.replace("-", "_").lower()
        base = "%s/%s" % (self.prefix, charger)
        device = {"identifiers": [node], "name": "ChargeProof %s" % charger,
                  "manufacturer": "ChargeProof", "model": "ESP32 charge point"}
        common = {"device": device, "availability_topic": base + "/status",
                  "payload_available": "online", "payload_not_available": "offline"}
        telemetry, health = base + "/telemetry", base + "/health"
        sensors = {
            "power": {"name": "Power", "state_topic": telemetry,
                      "value_template": "{{ value_json.w }}", "device_class": "power",
                      "unit_of_measurement": "W", "state_class": "measurement"},
            "session_energy": {"name": "Session energy", "state_topic": telemetry,
                               "value_template": "{{ value_json.wh }}",
                               "device_class": "energy", "unit_of_measurement": "Wh",
                               "state_class": "total_increasing"},
            "running_cost": {"name": "Running cost", "state_topic": telemetry,
                             "value_template": "{{ (value_json.price / %d) | round(2) }}"
                             % self.minor_per_major,
                             "device_class": "monetary", "unit_of_measurement": self.currency,
                             "state_class": "total"},
            "state": {"name": "State", "state_topic": health,
                      "value_template": "{{ value_json.state }}", "icon": "mdi:ev-station"},
            "fault": {"name": "Fault", "state_topic": health,
                      "value_template": "{{ value_json.fault or 'none' }}",
                      "icon": "mdi:alert-circle-outline"},
        }
        docs = {}
        for obj, cfg in sensors.items():
            docs["%s/sensor/%s/%s/config" % (self.discovery_prefix, node, obj)] = dict(
                cfg, unique_id="%s_%s" % (node, obj), **common)
        for press in BUTTON_PRESSES:
            docs["%s/button/%s/%s/config" % (self.discovery_prefix, node, press)] = dict(
                name=press.capitalize() + " charging", command_topic=self.button_topic(charger),
                payload_press=press, unique_id="%s_%s" % (node, press), **common)
        return docs


class HomeAssistantBridge:
    """Announces chargers to Home Assistant and signs its button presses as commands.

    `client` is a connected paho client (the caller owns its loop); `operator_key` an EC key
    from host_tools.provision.operator_cmd."""

    def __init__(self, client: Any, operator_key: Any, discovery: Discovery | None = None,
                 start_id_tag: str = "HOME-ASSISTANT", ttl_s: int = 120,
                 now: Callable[[], float] = time.time):
        self.client = client
        self.key = operator_key
        self.discovery = discovery or Discovery()
        self.start_id_tag = start_id_tag
        self.ttl_s = ttl_s
        self.now = now
        self.announced: set[str] = set()
        self.commands_sent = 0
        self.presses_refused = 0

    def subscribe(self) -> None:
        d = self.discovery
        self.client.subscribe("%s/+/status" % d.prefix, 1)
        self.client.subscribe("%s/+/button" % d.button_prefix, 1)

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        d = self.discovery
        if len(parts) == 3 and parts[0] == d.prefix and parts[2] == "status":
            self.announce(parts[1])
        elif len(parts) == 3 and parts[0] == d.button_prefix and parts[2] == "button":
            self.press(parts[1], msg.payload, retained=bool(getattr(msg, "retain", False)))

    def announce(self, charger: str) -> bool:
        if charger in self.announced or not valid_charger_id(charger):
            return False
        for topic, doc in self.discovery.documents(charger).items():
            self.client.publish(topic, json.dumps(doc, sort_keys=True), qos=1, retain=True)
        self.announced.add(charger)
        log.info("announced %s to Home Assistant", charger)
        return True

    def forget(self, charger: str) -> None:
        """Remove a charger's entities (empty retained payloads)."""
        for topic in self.discovery.documents(charger):
            self.client.publish(topic, b"", qos=1, retain=True)
        self.announced.discard(charger)

    def press(self, charger: str, payload: bytes, retained: bool = False) -> bytes | None:
        """A button press as a signed command on the charger's command topic (returned), or
        None when refused: a retained or unknown press, or a charger never announced."""
        press = payload.decode("ascii", "replace").strip() if len(payload) <= 16 else ""
        if retained or press not in BUTTON_PRESSES or charger not in self.announced:
            self.presses_refused += 1
            return None
        args = {"id_tag": self.start_id_tag} if press == "start" else {}
        message = operator_cmd.sign(self.key, charger, press, args, ttl_s=self.ttl_s,
                                    now=int(self.now()))
        self.client.publish("%s/%s/cmd" % (self.discovery.prefix, charger), message, qos=1)
        self.commands_sent += 1
        return message


def main(argv: list[str] | None = None) -> int:
    from host_tools import mqtt_conn
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--key", required=True, help="the operator's key (PEM)")
    mqtt_conn.add_arguments(ap, host_flag="--host")     # login (an operator's) and TLS
    ap.add_argument("--currency", default="EUR")
    ap.add_argument("--start-id-tag", default="HOME-ASSISTANT")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    spec = mqtt_conn.spec_from_args(a)
    client = mqtt_conn.client(spec, client_id="chargeproof-ha")
    bridge = HomeAssistantBridge(client, operator_cmd.load_key(a.key),
                                 Discovery(currency=a.currency), a.start_id_tag)
    client.on_connect = lambda c, u, f, rc, p=None: bridge.subscribe()
    client.on_message = bridge.on_message
    client.connect(spec.host, spec.port)
    client.loop_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
