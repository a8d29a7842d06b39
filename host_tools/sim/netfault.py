"""A TCP proxy that breaks the network on command, and a control port to drive it.

Chargers in the field rarely see a clean "connection refused": they see brokers restarting,
links that drop, and half-dead TCP connections that stay open while nothing gets through.
FaultProxy sits between a charger and its broker and reproduces those on demand:

  up         forward both ways (normal)
  down       close every connection at once and close new ones on accept (cable pulled,
             broker side sees an abrupt close and fires the last will)
  blackhole  keep every connection open but forward nothing, in either direction
             (half-dead link: only timeouts can detect it)

ControlServer is a line protocol on a loopback port ("proxy down\\n" -> "ok\\n"), so code that
only gets plain data (a firmware test running inside MicroPython) can break the network and
restart the broker mid-test.
"""
import selectors
import socket
import threading

from host_tools.sim.broker import LOOPBACK, free_port

MODES = ("up", "down", "blackhole")


class FaultProxy:
    def __init__(self, target_host, target_port, host=LOOPBACK, port=None):
        self.target = (target_host, target_port)
        self.host = host
        self.port = port or free_port(host)
        self.mode = "up"
        self.connections = 0          # accepted so far (tests assert reconnects happened)
        self._sel = None
        self._listener = None
        self._pairs = {}              # socket -> peer socket (None while blackholed)
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = None
        self._stop = False

    def start(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, self.port))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="faultproxy:%d" % self.port,
                                        daemon=True)
        self._thread.start()
        return self

    def set_mode(self, mode):
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % (MODES,))
        with self._lock:
            self.mode = mode
        self._wake_w.send(b"m")

    def stop(self):
        self._stop = True
        self._wake_w.send(b"s")
        if self._thread:
            self._thread.join(5)
            self._thread = None

    # -- the select loop (one thread for every connection) ---------------------------------
    def _close_pair(self, sock):
        peer = self._pairs.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self._pairs.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self.connections += 1
        if self.mode == "down":
            client.close()
            return
        upstream = None
        if self.mode == "up":
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()            # broker down: the charger sees the refusal
                return
            upstream.setblocking(False)
        client.setblocking(False)
        self._pairs[client] = upstream
        self._sel.register(client, selectors.EVENT_READ, "data")
        if upstream is not None:
            self._pairs[upstream] = client
            self._sel.register(upstream, selectors.EVENT_READ, "data")

    def _apply_mode(self):
        if self.mode == "down":
            for sock in list(self._pairs):
                self._close_pair(sock)

    def _forward(self, sock):
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close_pair(sock)
            return
        peer = self._pairs.get(sock)
        if self.mode != "up" or peer is None:
            return                        # blackhole: swallow it
        try:
            peer.setblocking(True)
            peer.settimeout(2)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close_pair(sock)

    def _run(self):
        while not self._stop:
            for key, _ in self._sel.select(0.5):
                what = key.data
                if what == "accept":
                    self._accept()
                elif what == "wake":
                    self._wake_r.recv(64)
                    self._apply_mode()
                elif key.fileobj in self._pairs:
                    self._forward(key.fileobj)
        for sock in list(self._pairs):
            self._close_pair(sock)
        self._sel.close()
        self._listener.close()


class ControlServer:
    """Line commands on a loopback port: '<target> <action>' -> 'ok' or 'error: ...'.

    actions maps 'proxy down' style strings to callables."""

    def __init__(self, actions, host=LOOPBACK, port=None):
        self.actions = actions
        self.host = host
        self.port = port or free_port(host)
        self._srv = None
        self._thread = None

    def start(self):
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((self.host, self.port))
        self._srv.listen(4)
        self._thread = threading.Thread(target=self._run, name="netctl:%d" % self.port,
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while True:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(30)
                try:
                    line = conn.makefile("rb").readline().decode().strip()
                    action = self.actions.get(line)
                    if action is None:
                        reply = "error: unknown command %r" % line
                    else:
                        action()
                        reply = "ok"
                except Exception as exc:   # report to the caller, keep serving
                    reply = "error: %s" % exc
                try:
                    conn.sendall(reply.encode() + b"\n")
                except OSError:
                    pass

    def stop(self):
        if self._srv:
            self._srv.close()
            self._srv = None


def control(port, command, host=LOOPBACK):
    """Send one command to a ControlServer; raise if it did not answer ok."""
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(command.encode() + b"\n")
        reply = s.makefile("rb").readline().decode().strip()
    if reply != "ok":
        raise RuntimeError("control %r: %s" % (command, reply))
