# A charger's uplink as its own process (MicroPython or CPython), so host tests can kill it
# with SIGKILL (power cut) and start it again (reboot) against a real broker.
# stdin, one JSON line: {"host", "port", "dir", "put": [payload str...], "keepalive": s,
#                        "operator_key": spki hex (optional: accept signed commands),
#                        "cmd_key": hex (optional: the command MAC key from the secrets file),
#                        "ack_keys": {validator: {kid: hex}} (the provisioned ack keys)}
# stdout, one line per event: "connected", "down", "acked <n>", "pending <n>", "cmd <name> <n>".
import json
import sys
import time

# First, on a fresh heap: run from .py source (the 64-bit port), the P-256 table module is a
# 16 KB bytes literal that needs one whole block, which a heap fragmented by the other imports
# may not have (which imports tip it over changes with every edit of the firmware).
from ledger import p256_table  # noqa: F401,E402
from uplink.outbox import Outbox
from uplink.mqtt import Link
from uplink.acks import AckChecker     # after mqtt: the P-256 tables first (heap)


def say(line):
    sys.stdout.write(line + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def main():
    cfg = json.loads(sys.stdin.readline())
    box = Outbox(cfg["dir"], reserve_bytes=0)
    for payload in cfg.get("put", ()):
        box.put("receipt", payload.encode())
    say("pending %d" % box.pending())
    charger = cfg.get("charger", "CP-H")
    verifier = None
    if cfg.get("operator_key"):
        from uplink.commands import Verifier
        verifier = Verifier(cfg["dir"] + "-cmd_n", cfg["operator_key"], charger,
                            lambda: int(time.time()), cmd_key=cfg.get("cmd_key"))
    link = Link(charger, cfg["host"], cfg["port"], box, verifier=verifier,
                keepalive_s=cfg.get("keepalive", 5), timeout_ms=1000, backoff_min_ms=50,
                ack_checker=AckChecker(charger, cfg.get("ack_keys", {})))
    was, acked = False, box.acked
    while True:
        for cmd in link.poll():
            say("cmd %s %d" % (cmd.name, cmd.n))
            link.reply(cmd, "ok")
        if link.connected != was:
            was = link.connected
            say("connected" if was else "down")
        if box.acked != acked:
            acked = box.acked
            say("acked %d" % acked)
        time.sleep(0.005)


main()
