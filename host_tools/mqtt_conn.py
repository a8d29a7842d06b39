"""One place that turns "which broker, as whom" into a configured paho-mqtt client.

Every host client (validator service, CLI, operator tool, simulators, fleet, demo, bench) takes
a BrokerSpec and calls client(): login (username_pw_set) and TLS (tls_set_context: the broker's
certificate must chain to the configured CA and carry the host name connected to) are set
here, so no tool can forget either.

    spec = BrokerSpec("broker.example", 8883, username="val-a", password=..., cafile="ca.crt")
    c = client(spec, client_id="val-a")
    c.connect(spec.host, spec.port)

Command lines: add_arguments(parser) adds --broker/--port/--user/--password-file/--cafile/--tls;
spec_from_args(args) reads them (the password also from $CHARGEPROOF_MQTT_PASSWORD, never from
the command line, where other users could read it in the process list).
"""
from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass, replace
from typing import Any

PASSWORD_ENV = "CHARGEPROOF_MQTT_PASSWORD"


@dataclass(frozen=True)
class BrokerSpec:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    cafile: str | None = None     # PEM of the CA the broker's certificate must chain to
    tls: bool = False             # TLS on; with cafile None the system's CAs are trusted

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.cafile is not None

    def with_login(self, username: str | None, password: str | None) -> BrokerSpec:
        """The same broker, as another party."""
        return replace(self, username=username, password=password)

    def at(self, host: str | None = None, port: int | None = None) -> BrokerSpec:
        return replace(self, host=host or self.host, port=port or self.port)

    def __repr__(self) -> str:        # never print a password
        return "BrokerSpec(%s:%d user=%r tls=%s)" % (self.host, self.port, self.username,
                                                      self.uses_tls)


def tls_context(spec: BrokerSpec) -> ssl.SSLContext:
    """Certificate required, host name checked; TLS 1.2 at least."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=spec.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def configure(c: Any, spec: BrokerSpec) -> Any:
    """Apply spec's login and TLS to an existing paho client (before connect)."""
    if spec.username is not None:
        c.username_pw_set(spec.username, spec.password)
    if spec.uses_tls:
        c.tls_set_context(tls_context(spec))
    return c


def client(spec: BrokerSpec, client_id: str = "", clean_session: bool | None = None,
           manual_ack: bool = False) -> Any:
    """A paho-mqtt 2.x client (callback API version 2) with spec's login and TLS set
    (manual_ack: QoS 1 messages are acknowledged by client.ack(), not on receipt)."""
    import paho.mqtt.client as mqtt
    kwargs: dict[str, Any] = {"client_id": client_id, "manual_ack": manual_ack}
    if clean_session is not None:
        kwargs["clean_session"] = clean_session
    return configure(mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs), spec)


def connected(spec: BrokerSpec, client_id: str = "", timeout_s: float = 10.0,
              clean_session: bool | None = None) -> Any:
    """A client connected and running its network thread; raises ConnectionRefusedError when
    the broker refuses the login, TimeoutError when no answer comes."""
    import threading
    c = client(spec, client_id, clean_session)
    answer: list[Any] = []
    done = threading.Event()

    def on_connect(client_: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        answer.append(reason_code)
        done.set()
    c.on_connect = on_connect
    c.connect(spec.host, spec.port, keepalive=30)
    c.loop_start()
    if not done.wait(timeout_s):
        c.loop_stop()
        raise TimeoutError("no CONNACK from %s:%d" % (spec.host, spec.port))
    if answer[0].is_failure:
        c.loop_stop()
        c.disconnect()
        raise ConnectionRefusedError("%s:%d refused %r: %s" % (spec.host, spec.port, spec.username,
                                                                answer[0]))
    c.on_connect = None
    return c


def ca_der_hex(cafile: str) -> str:
    """The first certificate of a PEM (or DER) file as DER hex: the charger's `mqtt_ca`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(cafile, "rb") as f:
        data = f.read()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else \
        x509.load_der_x509_certificate(data)
    return cert.public_bytes(serialization.Encoding.DER).hex()


def charger_config(spec: BrokerSpec, tls_name: str | None = None) -> dict[str, Any]:
    """The firmware's configuration keys (firmware/app/config.py) for this broker and login."""
    cfg: dict[str, Any] = {"mqtt_host": spec.host, "mqtt_port": spec.port,
                           "mqtt_user": spec.username, "mqtt_password": spec.password or "",
                           "mqtt_tls": spec.uses_tls}
    if spec.uses_tls:
        if spec.cafile is None:
            raise ValueError("a charger has no system CAs: give the broker's CA file")
        cfg["mqtt_ca"] = ca_der_hex(spec.cafile)
        cfg["mqtt_tls_name"] = tls_name
    return cfg


def add_arguments(parser: argparse.ArgumentParser, host_flag: str = "--broker",
                  default_port: int = 1883) -> None:
    g = parser.add_argument_group("broker")
    g.add_argument(host_flag, dest="mqtt_host", default="127.0.0.1", help="MQTT broker host")
    g.add_argument("--port", dest="mqtt_port", type=int, default=None,
                   help="MQTT broker port (default %d, or 8883 with TLS)" % default_port)
    g.add_argument("--user", dest="mqtt_user", default=None, help="broker login")
    g.add_argument("--password-file", dest="mqtt_password_file", default=None,
                   help="file holding the broker password (or set $%s)" % PASSWORD_ENV)
    g.add_argument("--cafile", dest="mqtt_cafile", default=None,
                   help="PEM CA certificate the broker's must chain to (turns TLS on)")
    g.add_argument("--tls", dest="mqtt_tls", action="store_true",
                   help="TLS with the system's CAs")


def spec_from_args(args: argparse.Namespace, default_port: int = 1883) -> BrokerSpec:
    password = os.environ.get(PASSWORD_ENV)
    if args.mqtt_password_file:
        with open(args.mqtt_password_file, encoding="utf-8") as f:
            password = f.read().strip("\r\n")
    tls = bool(args.mqtt_tls or args.mqtt_cafile)
    port = args.mqtt_port or (8883 if tls else default_port)
    return BrokerSpec(args.mqtt_host, port, args.mqtt_user, password, args.mqtt_cafile, tls)
