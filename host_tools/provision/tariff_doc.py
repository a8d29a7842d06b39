"""The operator's side of published tariffs (README "Publish a tariff", docs/mqtt.md).

A tariff document (version 2: firmware/session/tariff.py describes every key) is signed with
the operator key exactly as a command is (<document bytes> "|" <hex DER ECDSA-P256-SHA256>)
and published once, retained, on tariff/<id>: every charger and validator subscribed now or
later gets it, checks the signature against the operator key it was provisioned with, and
keeps it.

    chargeproof tariff publish --file T.json --key operator.pem [--broker H --port P --user ...]
    chargeproof tariff show [--id ID] [broker options]
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
import zoneinfo
from typing import Any, Optional

from host_tools import mqtt_conn
from host_tools.paths import firmware_on_path
from host_tools.provision import operator_cmd
from host_tools.verify import formats
from host_tools.verify import tariff as host_tariff


class TariffDocError(ValueError):
    pass


def posix_rule_of(zone: str) -> str:
    """The POSIX TZ rule an IANA zone follows after its last listed change: the footer line
    of its TZif file (RFC 8536 section 3.3), from the system's zoneinfo or the tzdata package."""
    import importlib.resources
    import os
    data = None
    for root in zoneinfo.TZPATH:
        path = os.path.join(root, zone)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            break
    if data is None:
        package, _, name = ("tzdata.zoneinfo." + zone.replace("/", ".")).rpartition(".")
        data = importlib.resources.files(package).joinpath(name).read_bytes()
    if not data.startswith(b"TZif") or data[4:5] < b"2":
        raise TariffDocError("%s: no version 2+ TZif file" % zone)
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii")
    if not footer:
        raise TariffDocError("%s: the TZif file has no rule" % zone)
    return footer


def check(document: bytes | str) -> dict[str, Any]:
    """The document's facts, if both the host's rules and the device's parser accept it as a
    version 2 tariff (a document the chargers would refuse is never published)."""
    text = document.decode() if isinstance(document, bytes) else document
    try:
        host = host_tariff.Tariff.load(text)
    except host_tariff.TariffError as exc:
        raise TariffDocError("host refuses the tariff: %s" % exc)
    if host.version != 2:
        raise TariffDocError("a published tariff is version 2 (id, valid_from, tz)")
    firmware_on_path()
    from session import tariff as device_tariff
    try:
        device = device_tariff.Tariff.parse(text)
    except device_tariff.TariffError as exc:
        raise TariffDocError("the charger would refuse the tariff: %s" % exc)
    if device.hash != host.hash:
        raise TariffDocError("device and host hash the tariff differently")
    return {"id": host.id, "hash": host.hash, "valid_from": host.valid_from,
            "valid_until": host.valid_until, "tz": host.doc["tz"], "currency": host.currency,
            "slots": len(host.slots)}


def sign(key: Any, document: bytes) -> bytes:
    """The message as published: the document's exact bytes, "|", the operator's signature."""
    message = operator_cmd.sign_payload(key, document)
    if len(message) > formats.TARIFF_MAX:
        raise TariffDocError("signed tariff is %d bytes, more than %d" % (len(message), formats.TARIFF_MAX))
    return message


def publish(message: bytes, tariff_id: str, spec: mqtt_conn.BrokerSpec) -> None:
    """Publish retained, QoS 1, and wait until the broker has it."""
    c = mqtt_conn.connected(spec)
    try:
        info = c.publish(formats.tariff_topic(tariff_id), message, qos=1, retain=True)
        info.wait_for_publish(10)
        if not info.is_published():
            raise TimeoutError("the broker did not take tariff/%s" % tariff_id)
    finally:
        c.loop_stop()
        c.disconnect()


def fetch(spec: mqtt_conn.BrokerSpec, tariff_id: Optional[str] = None,
          wait_s: float = 1.5) -> dict[str, bytes]:
    """The retained tariff messages on the broker: {topic: message}."""
    got: dict[str, bytes] = {}
    done = threading.Event()
    c = mqtt_conn.connected(spec)

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        if msg.retain and msg.payload:
            got[msg.topic] = bytes(msg.payload)
    c.on_message = on_message
    try:
        c.subscribe(formats.tariff_topic(tariff_id) if tariff_id else formats.TARIFF_FILTER, 1)
        done.wait(wait_s)
    finally:
        c.loop_stop()
        c.disconnect()
    return got


def describe(topic: str, message: bytes, operator_spki_hex: Optional[str] = None) -> dict[str, Any]:
    """What a retained tariff message holds, and whether it is validly signed."""
    out: dict[str, Any] = {"topic": topic, "bytes": len(message),
                           "sha256": hashlib.sha256(message).hexdigest()}
    try:
        doc = formats.parse_signed_tariff(message, topic,
                                          bytes.fromhex(operator_spki_hex) if operator_spki_hex else None)
        out.update(check(doc))
        out["signature"] = "valid" if operator_spki_hex else "not checked (no --operator-key)"
    except (formats.FormatError, TariffDocError, ValueError) as exc:
        out["error"] = str(exc)
    return out


def main_publish(file: str, key_path: str, spec: mqtt_conn.BrokerSpec, dry_run: bool = False) -> dict[str, Any]:
    with open(file, "rb") as f:
        document = f.read().strip()
    facts = check(document)
    message = sign(operator_cmd.load_key(key_path), document)
    if not dry_run:
        publish(message, facts["id"], spec)
    facts["topic"] = formats.tariff_topic(facts["id"])
    facts["published"] = not dry_run
    facts["starts"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(facts["valid_from"]))
    return facts


def main_show(spec: mqtt_conn.BrokerSpec, tariff_id: Optional[str] = None,
              operator_spki_hex: Optional[str] = None) -> list[dict[str, Any]]:
    return [describe(t, m, operator_spki_hex) for t, m in sorted(fetch(spec, tariff_id).items())]


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
