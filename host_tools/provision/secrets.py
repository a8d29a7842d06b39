"""A charger's secrets file: its validators' ack keys, the operator's pseudonym key and the
charger's command MAC key.

The file lives on the charger's flash as /secrets.json (deploy.py --secrets writes it; the
firmware reads it with app.config.load_secrets) and on the operator's machine, never anywhere
else: nothing in it is ever published.

    {"ack_keys": {"<validator>": {"<kid>": "<64 hex>", ...}, ...}, "pseudonym_key": "<64 hex>",
     "cmd_key": "<64 hex>"}

cmd_key is derived from the operator key for this charger (operator_cmd.command_key): with it
the charger refuses commands without the operator's MAC before any signature check.

Ack keys come from each validator's enrollment as a *grant* (`chargeproof enroll ... --grant-out
G.json`, `chargeproof ack-key rotate|activate ... --grant-out G.json`): {"validator", "charger",
"ack_keys": {kid: hex}}. Adding a grant replaces that validator's keys, so a rotation is: rotate
(grant with current + next) -> deploy -> activate (grant with the new key alone) -> deploy.

    python -m host_tools.provision.secrets add --secrets cp-001.json --grant G.json
    python -m host_tools.provision.secrets pseudonym-key --out operator-pseudonym.key
    python -m host_tools.provision.secrets set-pseudonym --secrets cp-001.json --key-file operator-pseudonym.key
    python -m host_tools.provision.secrets set-cmd-key --secrets cp-001.json \
        --operator-key operator.pem --charger CP-001
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any

MAX_KEYS = 2          # per validator on the charger: current and next (firmware/uplink/acks.py)


class SecretsError(ValueError):
    pass


def empty() -> dict[str, Any]:
    return {"ack_keys": {}, "pseudonym_key": None, "cmd_key": None}


def _check_hex32(value: str, what: str) -> str:
    try:
        if len(bytes.fromhex(value)) != 32 or value != value.lower():
            raise ValueError
    except (ValueError, TypeError):
        raise SecretsError("%s must be 64 lowercase hex digits" % what)
    return value


def add_grant(secrets: dict[str, Any], grant: dict[str, Any], charger_id: str | None = None) -> dict[str, Any]:
    """secrets with the grant's validator keys in place of that validator's old ones."""
    try:
        validator, keys = grant["validator"], dict(grant["ack_keys"])
    except (KeyError, TypeError, ValueError):
        raise SecretsError("a grant needs 'validator' and 'ack_keys'")
    if charger_id is not None and grant.get("charger") != charger_id:
        raise SecretsError("grant is for charger %r, not %r" % (grant.get("charger"), charger_id))
    if not 0 < len(keys) <= MAX_KEYS:
        raise SecretsError("a grant holds 1..%d keys" % MAX_KEYS)
    for kid, key in keys.items():
        _check_hex32(key, "ack key %s/%s" % (validator, kid))
    out = dict(secrets)
    out["ack_keys"] = dict(secrets.get("ack_keys") or {})
    out.setdefault("pseudonym_key", None)
    out["ack_keys"][validator] = keys
    return out


def build(grants: list[dict[str, Any]], pseudonym_key: str | None = None,
          cmd_key: str | None = None) -> dict[str, Any]:
    """A charger's secrets from its validators' grants, the operator's pseudonym key (hex) and
    the charger's command MAC key (hex)."""
    out = empty()
    for grant in grants:
        out = add_grant(out, grant)
    if pseudonym_key is not None:
        out["pseudonym_key"] = _check_hex32(pseudonym_key, "pseudonym key")
    if cmd_key is not None:
        out["cmd_key"] = _check_hex32(cmd_key, "command key")
    return out


def from_validators(validators: list[Any], charger_id: str, pseudonym_key: str | None = None,
                    operator_key: Any = None) -> dict[str, Any]:
    """The secrets of charger_id for in-process validators (host_tools.validator.service.Validator):
    the demo, the fleet simulator and the tests provision chargers this way. operator_key (an
    EC private key): also the charger's command MAC key."""
    cmd_key = None
    if operator_key is not None:
        from host_tools.provision.operator_cmd import command_key
        cmd_key = command_key(operator_key, charger_id).hex()
    return build([v.ack_keys.provisioning(v.validator_id, charger_id) for v in validators],
                 pseudonym_key, cmd_key)


def new_pseudonym_key() -> str:
    """The operator's pseudonym secret (one per operator: the same card gets the same pseudonym
    at every charger, so allow-lists and bills work across the fleet)."""
    return os.urandom(32).hex()


def read(path: str | os.PathLike) -> dict[str, Any]:
    p = pathlib.Path(path)
    if not p.exists():
        return empty()
    obj = json.loads(p.read_text())
    if not isinstance(obj, dict):
        raise SecretsError("%s: not a JSON object" % p)
    return obj


def write(path: str | os.PathLike, secrets: dict[str, Any]) -> None:
    """Write with mode 0600 (created so, not chmod-ed afterwards)."""
    p = pathlib.Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(secrets, sort_keys=True) + "\n")
    os.replace(tmp, p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("add", help="put a validator's ack key grant into a charger's secrets file")
    sp.add_argument("--secrets", required=True)
    sp.add_argument("--grant", required=True)
    sp = sub.add_parser("pseudonym-key", help="make the operator's pseudonym secret")
    sp.add_argument("--out", required=True)
    sp = sub.add_parser("set-pseudonym", help="put the operator's pseudonym secret into a secrets file")
    sp.add_argument("--secrets", required=True)
    sp.add_argument("--key-file", required=True)
    sp = sub.add_parser("set-cmd-key", help="put a charger's command MAC key (derived from the "
                        "operator key) into its secrets file")
    sp.add_argument("--secrets", required=True)
    sp.add_argument("--operator-key", required=True, help="the operator key (PEM)")
    sp.add_argument("--charger", required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "add":
            grant = json.loads(pathlib.Path(args.grant).read_text())
            write(args.secrets, add_grant(read(args.secrets), grant))
            print("%s: ack keys of %s: %s" % (args.secrets, grant["validator"], " ".join(sorted(grant["ack_keys"]))))
        elif args.cmd == "pseudonym-key":
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(new_pseudonym_key() + "\n")
            print("wrote %s" % args.out)
        elif args.cmd == "set-cmd-key":
            from host_tools.provision import operator_cmd
            sec = read(args.secrets)
            op_key = operator_cmd.load_key(args.operator_key)
            sec["cmd_key"] = operator_cmd.command_key(op_key, args.charger).hex()
            write(args.secrets, sec)
            print("%s: command key of %s set" % (args.secrets, args.charger))
        else:
            key = _check_hex32(pathlib.Path(args.key_file).read_text().strip(), "pseudonym key")
            sec = read(args.secrets)
            sec["pseudonym_key"] = key
            write(args.secrets, sec)
            print("%s: pseudonym key set" % args.secrets)
    except (SecretsError, OSError, ValueError, KeyError) as exc:
        print("secrets: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
