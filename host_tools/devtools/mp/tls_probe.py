# Runs inside MicroPython (host_tools/bench/tls.py): one charger link (uplink.mqtt.Link, the
# firmware's own) logs in to a broker, with or without TLS, and reports the heap it holds.
# stdin: {"host", "port", "user", "password", "ca": DER hex or null, "name", "dir"}
# stdout: "CONNECTED <live bytes held by the connected link>" or "FAILED <error>".
import gc
import json
import sys
import time

cfg = json.loads(sys.stdin.readline())
from uplink.outbox import Outbox   # noqa: E402
from uplink.mqtt import Link       # noqa: E402
from hal.net import Tls            # noqa: E402
import binascii                    # noqa: E402

box = Outbox(cfg["dir"], reserve_bytes=0)
tls = Tls(binascii.unhexlify(cfg["ca"]), cfg["name"]) if cfg["ca"] else None
if tls is not None:
    import ssl                      # noqa: F401  (the module's code is not the connection's cost)
gc.collect()
before = gc.mem_free()
link = Link(cfg["user"], cfg["host"], cfg["port"], box, timeout_ms=5000, backoff_min_ms=10,
            backoff_max_ms=20, user=cfg["user"], password=cfg["password"], tls=tls)
for _ in range(3):
    link.poll()
    if link.connected:
        break
    time.sleep(0.05)
if link.connected:
    gc.collect()
    print("CONNECTED %d" % (before - gc.mem_free()))
    link.close()
else:
    print("FAILED %s" % link.last_error)
