"""`chargeproof ota` against a real Mosquitto, as an operator runs it: publish signs and leaves
the manifest retained and answers a chunk request with a chunk whose proof verifies against the
signed root; withdraw clears the manifest; status exits 0 once the chargers named run the wanted
version confirmed, 1 when one reports an error."""
import json
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from host_tools.paths import ROOT
from host_tools.provision import operator_cmd as op
from host_tools.verify.merkle import leaf_hash, verify_inclusion
from host_tools.operate.ota_server import main as ota_main


def _client(port, topics):
    got = []
    cond = threading.Condition()

    def on(c, u, m):
        with cond:
            got.append((m.topic, bytes(m.payload), bool(m.retain)))
            cond.notify_all()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = on
    c.connect("127.0.0.1", port)
    c.loop_start()
    for t in topics:
        c.subscribe(t, 1)
    return c, got, cond


def _wait(got, cond, pred, timeout=20):
    deadline = time.monotonic() + timeout
    with cond:
        while not [m for m in got if pred(m)]:
            left = deadline - time.monotonic()
            assert left > 0, got
            cond.wait(left)
        return [m for m in got if pred(m)]


def test_publish_serves_chunks_withdraw_clears_and_status_waits(tmp_path, mosquitto_broker):
    port = mosquitto_broker["broker_port"]
    key = op.generate_key()
    op.save_key(key, str(tmp_path / "operator.pem"))
    build = tmp_path / "build"
    (build / "app").mkdir(parents=True)
    (build / "app" / "__init__.mpy").write_bytes(b"")
    body = bytes(range(256)) * 10
    (build / "app" / "x.mpy").write_bytes(body)
    (build / "store").mkdir()
    (build / "store" / "atomic.mpy").write_bytes(b"never shipped")      # not an updatable package
    broker = ["--broker", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "ota", "publish", "--key",
                             str(tmp_path / "operator.pem"), "--version", "2.0.0", "--number", "2",
                             "--dir", str(build), "--chunk", "1024"] + broker,
                            cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
    c, got, cond = _client(port, ["ota/manifest", "cp/CP-9/ota/chunk"])
    try:
        raw = _wait(got, cond, lambda m: m[0] == "ota/manifest" and m[1])[0][1]
        m = json.loads(raw[:raw.rindex(b"|")])
        assert [f["path"] for f in m["files"]] == ["app/__init__.mpy", "app/x.mpy"]
        assert m["charger"] == "*" and m["number"] == 2 and m["chunk"] == 1024
        c.publish("cp/CP-9/ota/req", b'{"n":2,"f":1,"o":1024}', qos=1)
        msg = _wait(got, cond, lambda m: m[0] == "cp/CP-9/ota/chunk")[0][1]
        k = msg[14]
        proof = [msg[15 + 32 * i:47 + 32 * i] for i in range(k)]
        data = msg[15 + 32 * k:]
        assert data == body[1024:2048]
        verify_inclusion(leaf_hash(data), 1, 3, proof, bytes.fromhex(m["files"][1]["root"]))
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    assert ota_main(["withdraw"] + broker) == 0
    c2, got2, cond2 = _client(port, ["ota/manifest"])
    time.sleep(0.5)
    assert not [m for m in got2 if m[1]]                     # nothing retained any more
    st = {"running": "2.0.0", "number": 2, "trial": False, "state": "current", "target": None,
          "error": None}
    c.publish("cp/CP-9/ota/status", json.dumps(st).encode(), qos=1, retain=True).wait_for_publish(10)
    assert ota_main(["status", "--charger", "CP-9", "--want", "2.0.0", "--timeout", "10"] + broker) == 0
    bad = dict(st, running="1.0.0", state="rejected", error="bad-signature")
    c.publish("cp/CP-9/ota/status", json.dumps(bad).encode(), qos=1, retain=True).wait_for_publish(10)
    assert ota_main(["status", "--charger", "CP-9", "--want", "2.0.0", "--timeout", "10"] + broker) == 1
    for cl in (c, c2):
        cl.loop_stop()
        cl.disconnect()
