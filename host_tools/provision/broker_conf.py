"""The broker's configuration from the templates in deploy/mosquitto/: ACL, password file, conf.

    python -m host_tools.provision.broker_conf --out DIR --validator val-a --operator operator \
        --charger CP-001 [--charger ...] [--make-ca --tls-name broker.lan] [--keep-passwords]

writes DIR/acl, DIR/passwd (mosquitto_passwd), DIR/credentials.json (mode 0600: one random
password per login, for provisioning) and DIR/mosquitto.conf (the template, pointed at DIR).
Charger logins need no ACL block of their own (the template's `pattern` lines use %u), but a
charger needs a password-file entry.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from host_tools.paths import ROOT

TEMPLATES = ROOT / "deploy" / "mosquitto"
CONF_TEMPLATE = TEMPLATES / "mosquitto.conf"
ACL_TEMPLATE = TEMPLATES / "acl.template"
TEMPLATE_DIR = "/etc/mosquitto/chargeproof/"
_LOGIN = re.compile(r"^[!-~]{1,64}$")       # printable ASCII, no space: one topic level


class RosterError(ValueError):
    pass


@dataclass
class Roster:
    """Who may log in, by role. passwords: login -> password (made by make_passwords)."""
    chargers: list[str] = field(default_factory=list)
    validators: list[str] = field(default_factory=list)
    operators: list[str] = field(default_factory=lambda: ["operator"])
    passwords: dict[str, str] = field(default_factory=dict)
    homeassistant: list[str] = field(default_factory=list)    # Home Assistant's own logins

    def logins(self) -> list[str]:
        return self.chargers + self.validators + self.operators + self.homeassistant

    def check(self) -> None:
        seen: dict[str, str] = {}
        for role, names in (("charger", self.chargers), ("validator", self.validators),
                            ("operator", self.operators), ("homeassistant", self.homeassistant)):
            for name in names:
                if not _LOGIN.match(name) or any(ch in name for ch in "/+#"):
                    raise RosterError("%s login %r: 1-64 printable ASCII characters without "
                                      "space, / + #" % (role, name))
                if name in seen:
                    # The charger patterns apply to every login: a validator named like a
                    # charger could publish that charger's receipts.
                    raise RosterError("login %r is both %s and %s" % (name, seen[name], role))
                seen[name] = role

    def make_passwords(self, keep: dict[str, str] | None = None) -> dict[str, str]:
        keep = keep or {}
        self.passwords = {name: keep.get(name) or secrets.token_urlsafe(24) for name in self.logins()}
        return self.passwords


def acl_text(roster: Roster) -> str:
    """The template's charger patterns, then its validator block once per validator and its
    operator block once per operator."""
    roster.check()
    text = ACL_TEMPLATE.read_text()
    head, rest = text.split("#@validator\n", 1)
    validator_block, rest = rest.split("#@operator\n", 1)
    operator_block, hass_block = rest.split("#@homeassistant\n", 1)
    out = [head]
    out += [validator_block.replace("VALIDATOR", v) for v in roster.validators]
    out += [operator_block.replace("OPERATOR", o) for o in roster.operators]
    out += [hass_block.replace("HASS", h) for h in roster.homeassistant]
    return "".join(out)


def amqtt_acl(roster: Roster) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The same ACL for amqtt's TopicAccessControlListPlugin: (publish, subscribe) topic lists
    per login. amqtt has no %u patterns and no deny: the charger patterns are expanded for each
    charger only, and a login gets nothing it is not listed for."""
    publish: dict[str, list[str]] = {name: [] for name in roster.logins()}
    subscribe: dict[str, list[str]] = {name: [] for name in roster.logins()}
    user = ""
    for line in acl_text(roster).splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            user = words[1]
            continue
        access, topic = words[1], words[2]
        if words[0] == "topic" and not user:
            raise ValueError("acl template: %r before any user line (anonymous)" % line)
        targets = [(c, topic.replace("%u", c)) for c in roster.chargers] if words[0] == "pattern" \
            else [(user, topic)]
        for name, t in targets:
            if access in ("write", "readwrite"):
                publish[name].append(t)
            if access in ("read", "readwrite"):
                subscribe[name].append(t)
    return publish, subscribe


def write_amqtt_password_file(path: str | pathlib.Path, passwords: dict[str, str]) -> None:
    """amqtt's FileAuthPlugin format: login:argon2 hash, one a line. Cheaper than pwdlib's
    default (8 MiB, 2 passes: ~0.1 s instead of ~0.8 s here): amqtt verifies in its event loop,
    and a charger gives its whole connect 0.5 s. The passwords are random 144-bit tokens, so
    the hash's cost is not what protects them."""
    from pwdlib.hashers.argon2 import Argon2Hasher
    hasher = Argon2Hasher(time_cost=2, memory_cost=8192)
    path = pathlib.Path(path)
    path.write_text("".join("%s:%s\n" % (n, hasher.hash(p)) for n, p in passwords.items()))
    path.chmod(0o600)


def mosquitto_passwd() -> str:
    for path in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd"):
        if os.path.exists(path):
            return path
    found = shutil.which("mosquitto_passwd")
    if not found:
        raise RuntimeError("mosquitto_passwd not installed (Debian package mosquitto)")
    return found


def write_password_file(path: str | pathlib.Path, passwords: dict[str, str]) -> None:
    """A Mosquitto password file (salted hashes) with one entry per login."""
    path = pathlib.Path(path)
    path.write_text("")
    path.chmod(0o600)
    exe = mosquitto_passwd()
    for name, password in passwords.items():
        subprocess.run([exe, "-b", str(path), name, password], check=True,
                       capture_output=True, timeout=30)


def conf_text(directory: str | pathlib.Path, port: int = 8883, bind: str | None = None,
              tls: bool = True, persistence: bool = True, log: str | None = None,
              run_as: str | None = None) -> str:
    """The template with its files in directory, its listener on bind:port, and the TLS block
    kept or dropped. run_as: the `user` Mosquitto keeps when started as root (the tests run as
    root with their files in private temporary directories the `mosquitto` user cannot read)."""
    d = str(directory).rstrip("/") + "/"
    lines = []
    in_tls = False
    for line in CONF_TEMPLATE.read_text().splitlines():
        if line == "#@tls":
            in_tls = True
            continue
        if line == "#@end":
            in_tls = False
            continue
        if in_tls and not tls:
            continue
        if line.startswith("listener "):
            line = "listener %d%s" % (port, (" " + bind) if bind else "")
        if line.startswith("persistence ") and not persistence:
            line = "persistence false"
        if line.startswith("persistence_location") and not persistence:
            continue
        lines.append(line.replace(TEMPLATE_DIR, d))
    if run_as:
        lines.append("user %s" % run_as)
    if log:
        lines += ["log_dest file %s" % log, "log_type error", "log_type warning",
                  "log_type notice", "log_type information"]
    return "\n".join(lines) + "\n"


def write_config(directory: str | pathlib.Path, roster: Roster, port: int = 8883,
                 bind: str | None = None, tls: bool = True, persistence: bool = True,
                 log: str | None = None, run_as: str | None = None) -> dict[str, str]:
    """acl, passwd and mosquitto.conf in directory (passwords from roster.passwords)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "acl").write_text(acl_text(roster))
    write_password_file(d / "passwd", roster.passwords)
    conf = d / "mosquitto.conf"
    conf.write_text(conf_text(d, port, bind, tls, persistence, log, run_as))
    return {"conf": str(conf), "acl": str(d / "acl"), "passwd": str(d / "passwd")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for acl, passwd, mosquitto.conf")
    ap.add_argument("--charger", action="append", default=[])
    ap.add_argument("--validator", action="append", default=[])
    ap.add_argument("--operator", action="append", default=None)
    ap.add_argument("--homeassistant", action="append", default=[],
                    help="Home Assistant's own login (reads its entities' topics, presses buttons)")
    ap.add_argument("--port", type=int, default=8883)
    ap.add_argument("--no-tls", action="store_true", help="plain TCP listener (a lab only)")
    ap.add_argument("--make-ca", action="store_true",
                    help="also make a CA and a server certificate (P-256) in --out")
    ap.add_argument("--tls-name", action="append", default=[],
                    help="host name or IP address the server certificate names (repeatable)")
    ap.add_argument("--keep-passwords", action="store_true",
                    help="keep the passwords of logins already in credentials.json")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    roster = Roster(args.charger, args.validator, args.operator or ["operator"],
                    homeassistant=args.homeassistant)
    try:
        roster.check()
    except RosterError as exc:
        ap.error(str(exc))
    creds_path = out / "credentials.json"
    keep = json.loads(creds_path.read_text()) if args.keep_passwords and creds_path.exists() else {}
    roster.make_passwords(keep)
    paths = write_config(out, roster, port=args.port, tls=not args.no_tls)
    creds_path.write_text(json.dumps(roster.passwords, indent=1, sort_keys=True) + "\n")
    creds_path.chmod(0o600)
    if args.make_ca:
        from host_tools.provision import pki
        ca = pki.make_ca()
        pki.write_pem(ca, pki.make_server_cert(ca, *(args.tls_name or ["localhost"])), out)
    print("wrote %s, %s, %s and %s (%d logins)" % (paths["conf"], paths["acl"], paths["passwd"],
                                                  creds_path, len(roster.passwords)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
