# A charger's uplink as its own process (MicroPython or CPython), so host tests can kill it
# with SIGKILL (power cut) and start it again (reboot) against a real broker.
# stdin, one JSON line: {"host", "port", "dir", "put": [payload str...], "keepalive": s}
# stdout, one line per event: "connected", "down", "acked <n>", "pending <n>".
import json
import sys
import time

from uplink.outbox import Outbox
from uplink.mqtt import Link


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
    link = Link(cfg.get("charger", "CP-H"), cfg["host"], cfg["port"], box,
                keepalive_s=cfg.get("keepalive", 5), timeout_ms=1000, backoff_min_ms=50)
    was, acked = False, box.acked
    while True:
        link.poll()
        if link.connected != was:
            was = link.connected
            say("connected" if was else "down")
        if box.acked != acked:
            acked = box.acked
            say("acked %d" % acked)
        time.sleep(0.005)


main()
