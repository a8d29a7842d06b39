"""Bench rows: what TLS to the broker costs the charger's MicroPython heap (unix port, 64-bit).

  tls_connect_heap_bytes_micropython       smallest -X heapsize in which the firmware's link
                                           logs in over TLS, minus the smallest in which it logs
                                           in over plain TCP (bisected to 256 bytes; the same
                                           code, login and Mosquitto, so the difference is the
                                           TLS connection's peak, handshake included)
  tls_connect_live_heap_bytes_micropython  heap the connected TLS link holds after a collection,
                                           minus the plain link's

mbedTLS's own buffers (the record buffers, the handshake's big numbers) are allocated with
malloc outside the MicroPython heap on the unix port, as they are in ESP-IDF's heap on the
ESP32 (which is why MicroPython's heap there stops at ~112 KB): these rows are the Python-side
cost only. The 32-bit build from shared/vendor has no ssl, so the 64-bit port measures.
"""
import json
import os
import subprocess
import tempfile

from host_tools import paths
from host_tools.devtools import build_mpy
from host_tools.provision import pki
from host_tools.provision.broker_conf import Roster
from host_tools.sim.broker import MosquittoBroker, find_mosquitto

STEP = 256


def _probe(heap, cfg):
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", str(paths.MPY_BUILD)]))
    proc = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=%d" % heap,
                           str(paths.MP_SIDE / "tls_probe.py")], input=json.dumps(cfg) + "\n",
                          capture_output=True, text=True, env=env, timeout=60)
    for line in proc.stdout.splitlines():
        if line.startswith("CONNECTED "):
            return int(line.split()[1])
    return None


def _min_heap(cfg, lo=16 * 1024, hi=1024 * 1024):
    """Smallest heap (to STEP bytes) in which the link connects; (heap, live bytes there)."""
    live = _probe(hi, cfg)
    if live is None:
        raise RuntimeError("the link does not connect even with %d bytes: %s" % (hi, cfg["port"]))
    while hi - lo > STEP:
        mid = (lo + hi) // 2 // STEP * STEP
        if _probe(mid, cfg) is None:
            lo = mid
        else:
            hi = mid
    return hi, live


def run():
    if not find_mosquitto():
        print("tls: Mosquitto not installed, no rows")
        return {}
    build_mpy.build()
    with tempfile.TemporaryDirectory() as tmp:
        roster = Roster(["CP-BENCH"], [], ["operator"])
        roster.make_passwords()
        ca = pki.make_ca("bench CA")
        certs = pki.write_pem(ca, pki.make_server_cert(ca, "127.0.0.1"), tmp + "/pki")
        secure = MosquittoBroker(workdir=tmp + "/tls", roster=roster, tls=certs).start()
        plain = MosquittoBroker(workdir=tmp + "/plain", roster=roster).start()
        try:
            base = {"host": "127.0.0.1", "user": "CP-BENCH", "name": "127.0.0.1",
                    "password": roster.passwords["CP-BENCH"], "dir": tmp + "/ob"}
            tls_heap, tls_live = _min_heap(dict(base, port=secure.port, ca=ca.cert_der().hex()))
            plain_heap, plain_live = _min_heap(dict(base, port=plain.port, ca=None))
        finally:
            secure.stop()
            plain.stop()
    return {"tls_connect_heap_bytes_micropython": tls_heap - plain_heap,
            "tls_connect_live_heap_bytes_micropython": tls_live - plain_live}
