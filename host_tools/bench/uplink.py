"""Bench rows for the MQTT uplink, measured on the MicroPython unix port against amqtt.

A paho validator on the host acks every receipt as it arrives (end-to-end ack throughput);
the half-dead link is made by host_tools.sim.netfault's proxy. Figures are for the unix port:
divide throughput by the ESP32 factor in DESIGN.md before expecting them on a board.
"""
import json
import os
import subprocess
import tempfile

import paho.mqtt.client as mqtt

from host_tools.provision import operator_cmd as op
from host_tools.sim.broker import AmqttBroker
from host_tools.sim.netfault import ControlServer, FaultProxy

from host_tools import paths
from host_tools.validator import acks
N_RECEIPTS = 200
CHARGER = "CP-BENCH"
T0 = 1800000000


ACK_KEY = bytes(range(32))        # the bench validator's ack key, provisioned on the charger below


def _validator(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-validator")

    def on_message(client, userdata, msg):
        seq = int(msg.topic.rsplit("/", 1)[1])
        body = acks.make_ack("bench", CHARGER, "receipt", seq, msg.payload, "k1", ACK_KEY)
        client.publish("cp/%s/ack/bench" % CHARGER, body, qos=1)

    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.subscribe("cp/+/receipt/+", 1)
    c.loop_start()
    return c


def run_interp(interp="micropython"):
    broker = AmqttBroker().start()
    proxy = FaultProxy(broker.host, broker.port).start()
    ctl = ControlServer({"proxy blackhole": lambda: proxy.set_mode("blackhole"),
                         "proxy up": lambda: proxy.set_mode("up")}).start()
    val = _validator(broker)
    key = op.generate_key()
    cmds = [op.sign(key, CHARGER, "current_limit", {"ma": 16000}, n=i, exp=T0 + 60).decode()
            for i in range(1, 6)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"host": broker.host, "port": proxy.port, "broker_port": broker.port,
                   "control": ctl.port,
                   "dir": tmp + "/ob", "n": N_RECEIPTS, "cmds": cmds, "charger": CHARGER,
                   "operator_spki": op.public_spki_hex(key), "t0": T0,
                   "ack_keys": {"bench": {"k1": ACK_KEY.hex()}}}
            env = dict(os.environ)
            mp_path = [str(paths.FIRMWARE), str(paths.MPLIB)]
            if interp == "micropython":
                env["MICROPYPATH"] = os.pathsep.join([".frozen"] + mp_path)
                cmd = [paths.MICROPYTHON, "-X", "heapsize=%d" % (192 * 1024)]
            else:
                env["PYTHONPATH"] = os.pathsep.join(mp_path)
                cmd = [str(paths.VENV_BIN / "python")]
            proc = subprocess.run(cmd + [str(paths.MP_SIDE / "uplink_bench.py")],
                                  input=json.dumps(cfg) + "\n", env=env, capture_output=True,
                                  text=True, timeout=180)
            if proc.returncode != 0:
                raise RuntimeError("uplink bench failed:\n%s\n%s" % (proc.stdout, proc.stderr))
            return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        val.loop_stop()
        val.disconnect()
        ctl.stop()
        proxy.stop()
        broker.stop()


def run():
    rows = {}
    for k, v in run_interp("micropython").items():
        rows["uplink_mp_" + k] = v
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
