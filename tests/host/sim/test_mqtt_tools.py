"""Host MQTT tools: the standalone broker, the fault proxy's modes, and the operator's command
tool end to end against a charger process (MicroPython)."""
import json
import socket
import subprocess
import sys
import time

import paho.mqtt.client as mqtt

from host_tools.provision import operator_cmd as op
from host_tools.sim.broker import free_port, wait_listening
from host_tools.sim.netfault import FaultProxy
from fixtures.charger_process import ChargerProcess


def test_standalone_broker_serves_paho(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.sim.broker", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, 20)
        got = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_message = lambda cl, u, m: got.append(m.payload)
        c.connect("127.0.0.1", port)
        c.loop_start()
        c.subscribe("t/x", 1)
        time.sleep(0.3)
        c.publish("t/x", b"hello", qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        c.loop_stop()
        c.disconnect()
        assert got == [b"hello"]
    finally:
        proc.terminate()
        proc.wait(10)


def _echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.settimeout(10)
            try:
                while True:
                    data = conn.recv(1024)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError:
                pass
            conn.close()
    import threading
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_fault_proxy_forwards_swallows_and_cuts():
    srv = _echo_server()
    proxy = FaultProxy("127.0.0.1", srv.getsockname()[1]).start()
    try:
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"
        proxy.set_mode("blackhole")
        s.sendall(b"lost")
        s.settimeout(0.5)
        try:
            s.recv(16)
            raise AssertionError("blackhole forwarded data")
        except socket.timeout:
            pass                            # the connection stays open and silent
        proxy.set_mode("down")
        s.settimeout(2)
        assert s.recv(16) == b""            # cut
        s.close()
        proxy.set_mode("up")
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        s.sendall(b"back")
        assert s.recv(16) == b"back"
        s.close()
        assert proxy.connections == 2
    finally:
        proxy.stop()
        srv.close()


def test_operator_tool_commands_a_charger_process(tmp_path, amqtt_broker):
    b = amqtt_broker
    key_path = str(tmp_path / "operator.pem")
    spki = subprocess.run([sys.executable, "-m", "host_tools.provision.operator_cmd", "keygen", key_path],
                          capture_output=True, text=True, check=True).stdout.strip()
    proc = ChargerProcess("micropython", {"host": b["host"], "port": b["port"], "charger": "CP-H",
                                          "dir": str(tmp_path / "ob"), "operator_key": spki})
    try:
        proc.wait_line("connected")
        key = op.load_key(key_path)
        msg = op.sign(key, "CP-H", "current_limit", {"ma": 16000})
        res = op.send(msg, "CP-H", b["host"], b["broker_port"])
        assert res["result"] == "ok" and res["cmd"] == "current_limit"
        proc.wait_line("cmd current_limit %d" % res["n"])
        assert op.send(msg, "CP-H", b["host"], b["broker_port"])["result"] == "replayed"
        other = op.sign(op.generate_key(), "CP-H", "stop")
        assert op.send(other, "CP-H", b["host"], b["broker_port"])["result"] == "bad-signature"
        out = subprocess.run([sys.executable, "-m", "host_tools.provision.operator_cmd", "send", key_path,
                              "CP-H", "reserve", '{"id_tag": "04A2", "until": %d}'
                              % (time.time() + 600), "--port", str(b["broker_port"])],
                             capture_output=True, text=True, timeout=60)
        assert json.loads(out.stdout)["result"] == "ok", out.stderr
    finally:
        proc.power_cut()


def test_operator_tool_commands_a_charger_with_a_command_key(tmp_path, amqtt_broker):
    """The charger screens commands by their MAC (secrets' cmd_key, printed by `operator_cmd
    cmd-key`): the operator tool's commands pass, another operator's never reach the
    signature check."""
    b = amqtt_broker
    key_path = str(tmp_path / "operator.pem")
    tool = [sys.executable, "-m", "host_tools.provision.operator_cmd"]
    spki = subprocess.run(tool + ["keygen", key_path], capture_output=True, text=True,
                          check=True).stdout.strip()
    cmd_key = subprocess.run(tool + ["cmd-key", key_path, "CP-H"], capture_output=True, text=True,
                             check=True).stdout.strip()
    proc = ChargerProcess("micropython", {"host": b["host"], "port": b["port"], "charger": "CP-H",
                                          "dir": str(tmp_path / "ob"), "operator_key": spki,
                                          "cmd_key": cmd_key})
    try:
        proc.wait_line("connected")
        out = subprocess.run(tool + ["send", key_path, "CP-H", "current_limit", '{"ma": 16000}',
                                     "--port", str(b["broker_port"])],
                             capture_output=True, text=True, timeout=60)
        assert json.loads(out.stdout)["result"] == "ok", out.stderr
        other = op.sign(op.generate_key(), "CP-H", "stop")
        assert op.send(other, "CP-H", b["host"], b["broker_port"])["result"] == "bad-mac"
        unmaced = op.sign(op.load_key(key_path), "CP-H", "stop").split(b"|", 1)[1]
        assert op.send(unmaced, "CP-H", b["host"], b["broker_port"])["result"] == "bad-mac"
    finally:
        proc.power_cut()
