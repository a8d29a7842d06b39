# Test-side MQTT helpers that run on both interpreters: a plain umqtt.simple client (the
# "validator" or "operator" of a firmware test), the fault-proxy control, and a wait loop.
import socket
import time

from hal import clock, net

net.install_umqtt_aliases()
from umqtt import simple  # noqa: E402


def control(broker, command):
    """Send 'broker stop' / 'proxy blackhole' ... to the fixture's control port."""
    s = socket.socket()
    s.settimeout(30)
    s.connect(socket.getaddrinfo(broker["host"], broker["control"])[0][-1])
    s.send(command.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply.strip() == b"ok", (command, reply)


def sleep_ms(ms):
    time.sleep(ms / 1000)


class Peer:
    """Connects straight to the broker (not through the fault proxy)."""

    def __init__(self, broker, client_id, subscriptions=()):
        self.msgs = []
        simple.socket = net.Net(3000)
        self.c = simple.MQTTClient(client_id, broker["host"], broker["broker_port"], keepalive=60)
        self.c.set_callback(self._on)
        self.c.connect()
        for topic in subscriptions:
            self.c.subscribe(topic, 1)

    def _on(self, topic, msg):
        self.msgs.append((bytes(topic), bytes(msg)))

    def pump(self):
        for _ in range(50):
            before = self.c.sock.rx_bytes
            self.c.check_msg()
            if self.c.sock.rx_bytes == before:
                return

    def publish(self, topic, msg, retain=False):
        self.c.publish(topic, msg, retain=retain, qos=1)

    def take(self, prefix=b""):
        """Messages received so far whose topic starts with prefix (removed from the list)."""
        got = [m for m in self.msgs if m[0].startswith(prefix)]
        self.msgs = [m for m in self.msgs if not m[0].startswith(prefix)]
        return got

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            self.c.sock.close()


def wait_for(cond, step, timeout_ms=10000):
    """Call step() until cond() holds; fail after timeout_ms (a liveness bound, not a speed test)."""
    t0 = clock.ticks_ms()
    while not cond():
        if clock.ticks_diff(clock.ticks_ms(), t0) > timeout_ms:
            raise AssertionError("condition not reached within %d ms" % timeout_ms)
        step()
        sleep_ms(5)
