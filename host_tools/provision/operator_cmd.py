"""The operator's side of signed charger commands (see docs/mqtt.md, "Commands").

    python -m host_tools.provision.operator_cmd keygen operator.pem     # prints the SPKI hex to provision
    python -m host_tools.provision.operator_cmd sign operator.pem CP-1 stop '{}'
    python -m host_tools.provision.operator_cmd send operator.pem CP-1 current_limit '{"ma": 16000}' \\
        --host 127.0.0.1 --port 1883                          # publish and print the result

A command is  <MAC hex> "|" <payload JSON> "|" <hex DER ECDSA-P256-SHA256 signature of those
exact bytes>. The counter n defaults to unix milliseconds: always larger than any earlier
command from this operator, with no state to keep (the charger only needs n to increase).

The MAC (HMAC-SHA256, firmware/uplink/commands.py) lets a charger refuse junk in microseconds
instead of spending a P-256 verification (about a second on an ESP32) on each. Its key is per
charger and derived from the operator key, so every tool holding the operator key makes it
and nothing else has to be kept or distributed:
    cmd_key(charger) = HMAC-SHA256(operator private scalar, 32 bytes big-endian,
                                   "chargeproof/cmd-key/1\n" + charger id)
The charger gets only its own cmd_key (secrets file "cmd_key"; `secrets set-cmd-key`), so a
charger's flash read out reveals neither the operator key nor another charger's MAC key.
"""
import argparse
import hashlib
import hmac
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def generate_key():
    return ec.generate_private_key(ec.SECP256R1())


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def save_key(key, path):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(path, "wb") as f:
        f.write(pem)


def public_spki_hex(key):
    """The public key as DER SubjectPublicKeyInfo hex: what the charger is provisioned with."""
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).hex()


def payload(charger, cmd, args=None, n=None, exp=None, ttl_s=300, now=None):
    now = int(time.time()) if now is None else now
    obj = {"charger": charger, "n": int(time.time() * 1000) if n is None else n,
           "exp": now + ttl_s if exp is None else exp, "cmd": cmd, "args": args or {}}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def command_key(key, charger: str) -> bytes:
    """The 32-byte command MAC key of one charger, derived from the operator key."""
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return hmac.new(scalar, b"chargeproof/cmd-key/1\n" + charger.encode(), hashlib.sha256).digest()


def command_mac(cmd_key: bytes, charger: str, body: bytes) -> bytes:
    """The MAC of a signed command (payload "|" signature hex), as 64 hex digits."""
    data = b"cp-cmd/1\n" + charger.encode() + b"\n" + body
    return hmac.new(cmd_key, data, hashlib.sha256).hexdigest().encode()


def sign_payload(key, data, charger=None):
    """data + b"|" + hex(DER signature over data), behind the command MAC for charger when
    charger is given."""
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    body = data + b"|" + sig.hex().encode()
    if charger is None:
        return body
    return command_mac(command_key(key, charger), charger, body) + b"|" + body


def split(message: bytes) -> tuple:
    """(MAC hex or None, payload, signature hex) of a command message; the inverse of sign()."""
    mac = None
    if len(message) > 64 and message[64:65] == b"|" and message[:1] != b"{":
        mac, message = message[:64], message[65:]
    payload, _, sig = message.rpartition(b"|")
    return mac, payload, sig


def sign(key, charger, cmd, args=None, **kw):
    return sign_payload(key, payload(charger, cmd, args, **kw), charger)


def send(message, charger, host, port, prefix="cp", timeout_s=30.0, broker=None):
    """Publish a signed command and wait for the charger's result message (a dict).
    broker: a host_tools.mqtt_conn.BrokerSpec (the operator's login, TLS); host/port override
    its address."""
    import threading
    from host_tools import mqtt_conn
    ref = hashlib.sha256(message).hexdigest()[:16]    # results name commands by this
    got = {}
    done = threading.Event()
    topic = "%s/%s/cmd/result" % (prefix, charger)

    def on_message(client, userdata, msg):
        res = json.loads(msg.payload)
        if res.get("ref") == ref:
            got.update(res)
            done.set()

    spec = (broker or mqtt_conn.BrokerSpec()).at(host, port)
    client = mqtt_conn.client(spec)
    client.on_message = on_message
    client.connect(spec.host, spec.port)
    client.loop_start()
    try:
        client.subscribe(topic, 1)[0]
        time.sleep(0.2)
        client.publish("%s/%s/cmd" % (prefix, charger), message, qos=1).wait_for_publish(10)
        if not done.wait(timeout_s):
            raise TimeoutError("no result from %s within %.0f s" % (charger, timeout_s))
        return got
    finally:
        client.loop_stop()
        client.disconnect()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    k = sub.add_parser("keygen", help="make an operator key (PEM) and print its SPKI hex")
    k.add_argument("key")
    k = sub.add_parser("cmd-key", help="print a charger's command MAC key (hex, for its secrets)")
    k.add_argument("key")
    k.add_argument("charger")
    for name in ("sign", "send"):
        p = sub.add_parser(name, help="%s a command" % name)
        p.add_argument("key")
        p.add_argument("charger")
        p.add_argument("cmd")
        p.add_argument("args", nargs="?", default="{}")
        p.add_argument("--ttl", type=int, default=300, help="seconds until it expires")
        p.add_argument("--n", type=int, default=None, help="counter (default: unix ms)")
        if name == "send":
            from host_tools import mqtt_conn
            mqtt_conn.add_arguments(p, host_flag="--host")
    a = ap.parse_args(argv)
    if a.what == "keygen":
        key = generate_key()
        save_key(key, a.key)
        print(public_spki_hex(key))
        return
    if a.what == "cmd-key":
        print(command_key(load_key(a.key), a.charger).hex())
        return
    msg = sign(load_key(a.key), a.charger, a.cmd, json.loads(a.args), n=a.n, ttl_s=a.ttl)
    if a.what == "sign":
        sys.stdout.write(msg.decode() + "\n")
    else:
        from host_tools import mqtt_conn
        spec = mqtt_conn.spec_from_args(a)
        print(json.dumps(send(msg, a.charger, spec.host, spec.port, broker=spec)))


if __name__ == "__main__":
    main()
