# TCP sockets for umqtt.simple with a bound on every wait, on the ESP32, the unix port and CPython.
#
# umqtt.simple calls sock.read(n)/write(buf, n) and, after each check_msg(), setblocking(True),
# which on MicroPython clears any timeout: the next read would wait forever on a half-dead
# link. TimedSocket keeps the timeout across setblocking(True), reads exactly n bytes or
# raises, and also honours a deadline (ticks) so one whole MQTT operation is bounded, not
# just each read. CPython sockets have no read/write; this class provides them on both.
#
# Net is what umqtt.simple expects as its `socket` module (socket(), getaddrinfo()); the
# uplink points umqtt.simple's module global at a Net (see uplink/mqtt.py), without forking it.
#
# TLS: Net(tls=Tls(ca_der, server_hostname)) makes every socket a TLS client that checks the
# broker's certificate against that CA and name (MicroPython's `ssl`, mbedTLS; CPython's
# `ssl`). The handshake happens in TimedSocket.connect, bounded like any other call; umqtt's
# own ssl flag is not used (it would wrap our wrapper). After a timeout a MicroPython TLS
# socket stays in error: the uplink drops the link on any timeout anyway.
import socket as _socket
import sys

from hal import clock as _clock

_HAS_READ = hasattr(_socket.socket, "read")     # MicroPython sockets are streams
ETIMEDOUT = 110
EAGAIN = 11
ECONNRESET = 104
_WOULD_BLOCK = (11, 115, 119)  # EAGAIN/EWOULDBLOCK, EINPROGRESS (lwIP), EALREADY


def install_umqtt_aliases():
    """Let `import umqtt.simple` work on CPython, which has no usocket/ustruct/ubinascii.
    (MicroPython maps u-names to its modules itself.)"""
    if sys.implementation.name == "micropython":
        return
    import binascii
    import struct
    for alias, mod in (("usocket", _socket), ("ustruct", struct), ("ubinascii", binascii)):
        sys.modules.setdefault(alias, mod)


# Writes are gathered here and sent as one segment before the next read (umqtt writes one MQTT
# packet in 4-5 small pieces; sent one by one, Nagle's algorithm and delayed ACKs cost ~40 ms
# per packet, and each piece is a radio frame on the ESP32). Larger payloads go out directly.
_WBUF = 256
IPPROTO_TCP = 6                # same numbers on Linux and lwIP; not every port names them
TCP_NODELAY = 1


class Tls:
    """What a TLS client needs: the CA certificate (DER bytes, or PEM) that must have signed the
    broker's certificate, and the name the certificate must carry (host name or IP address)."""

    def __init__(self, ca, server_hostname):
        if not ca:
            raise ValueError("TLS needs the broker's CA certificate")
        if not server_hostname:
            raise ValueError("TLS needs the broker's name to check")
        self.ca = ca
        self.server_hostname = server_hostname
        self._ctx = None

    def context(self):
        # Made once: parsing the CA costs heap and time on every connect otherwise.
        if self._ctx is None:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_REQUIRED
            if hasattr(ctx, "check_hostname"):         # CPython
                ctx.check_hostname = True
            ca = self.ca
            if sys.implementation.name != "micropython" and ca[:5] != b"-----":
                ca = _der_to_pem(ca)                     # CPython's cadata wants PEM text or DER
            ctx.load_verify_locations(cadata=ca)
            self._ctx = ctx
        return self._ctx

    def wrap(self, sock):
        return self.context().wrap_socket(sock, server_hostname=self.server_hostname)


def _der_to_pem(der):
    import binascii
    b64 = binascii.b2a_base64(der).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


class TimedSocket:
    def __init__(self, sock, timeout_ms, tls=None, clock=None):
        self.sock = sock
        self.raw = sock             # where timeouts are set (MicroPython's TLS socket has none)
        self.tls = tls
        self.clock = clock if clock is not None else _clock.REAL     # real ticks: hal/clock.py
        self.timeout_ms = timeout_ms
        self.deadline = None       # ticks_ms value after which every call fails, or None
        self.rx_bytes = 0          # proof of life: the uplink watches it for keepalive
        self._blocking = True
        self._wbuf = bytearray(_WBUF)
        self._wlen = 0
        sock.settimeout(timeout_ms / 1000)
        try:
            sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)   # we send whole packets ourselves
        except (OSError, AttributeError):
            pass

    def _wait_ms(self):
        if self.deadline is None:
            return self.timeout_ms
        c = self.clock
        left = c.ticks_diff(self.deadline, c.ticks_ms())
        if left <= 0:
            raise OSError(ETIMEDOUT)
        return left if left < self.timeout_ms else self.timeout_ms

    def _arm(self):
        self.raw.settimeout(self._wait_ms() / 1000)

    def connect(self, addr):
        self._arm()
        self.sock.connect(addr)
        if self.tls is not None:
            # The handshake reads and writes under the same bounds as everything else; a
            # certificate that does not check out raises here and the connection is closed.
            try:
                tsock = self.tls.wrap(self.sock)
            except Exception as exc:
                self.sock.close()
                raise _timeout_or(exc) if isinstance(exc, OSError) else OSError(str(exc))
            self.sock = tsock
            if hasattr(tsock, "settimeout"):          # CPython: the raw socket is detached
                self.raw = tsock

    def setblocking(self, flag):
        # "blocking" means "waits, but never longer than the timeout".
        if not flag:
            self.flush()                    # what we wrote must be out before we look
        self._blocking = bool(flag)
        if flag:
            self.raw.settimeout(self.timeout_ms / 1000)
        else:
            self.raw.setblocking(False)

    def settimeout(self, seconds):
        self.timeout_ms = int(seconds * 1000) if seconds is not None else self.timeout_ms
        self.raw.settimeout(self.timeout_ms / 1000)

    def read(self, n):
        if not self._blocking:
            # One non-blocking look, as umqtt's check_msg expects: None when nothing waits.
            # MicroPython's read() says so with None (no exception allocated on every poll).
            try:
                data = self.sock.read(n) if _HAS_READ else self.sock.recv(n)
            except OSError as exc:
                if _errno(exc) in _WOULD_BLOCK or _ssl_want(exc):
                    return None
                raise
            if data is None:
                return None
            self.rx_bytes += len(data)
            if len(data) == n or not data:
                return data
            self.setblocking(True)          # a packet started: the rest must follow in time
            return data + self._read_exact(n - len(data))
        return self._read_exact(n)

    def _read_exact(self, n):
        self.flush()
        buf = b""
        while len(buf) < n:
            self._arm()
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError as exc:
                raise _timeout_or(exc)
            if not chunk:
                raise OSError(ECONNRESET)   # peer closed mid-packet
            self.rx_bytes += len(chunk)
            buf += chunk
        return buf

    def write(self, buf, n=None):
        if isinstance(buf, str):       # umqtt sends client ids as given (ASCII str is fine)
            buf = buf.encode()
        mv = memoryview(buf)
        if n is not None:
            mv = mv[:n]
        k = len(mv)
        if self._wlen + k > _WBUF:
            self.flush()
        if k <= _WBUF:
            self._wbuf[self._wlen:self._wlen + k] = mv
            self._wlen += k
            return k
        return self._send_all(mv)

    def flush(self):
        """Send what write() gathered (bounded by the timeout and deadline like any send)."""
        if self._wlen:
            n = self._wlen
            self._wlen = 0
            self._send_all(memoryview(self._wbuf)[:n])
            if not self._blocking:
                self.raw.setblocking(False)

    def _send_all(self, mv):
        sent = 0
        total = len(mv)
        while sent < total:
            self._arm()
            try:
                k = self.sock.send(mv[sent:])
            except OSError as exc:
                raise _timeout_or(exc)
            if k is None or k <= 0:
                raise OSError(ECONNRESET)
            sent += k
        return sent

    def close(self):
        try:
            self.flush()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _errno(exc):
    e = getattr(exc, "errno", None)
    if e is None and exc.args and isinstance(exc.args[0], int):
        e = exc.args[0]
    return e


def _ssl_want(exc):
    # CPython's non-blocking TLS read says "nothing yet" with SSLWantReadError (errno 2), not
    # EAGAIN. MicroPython's returns None instead.
    return exc.__class__.__name__ in ("SSLWantReadError", "SSLWantWriteError")


def _timeout_or(exc):
    # CPython raises socket.timeout (errno None), the unix port EAGAIN, the ESP32 ETIMEDOUT.
    e = _errno(exc)
    if e is None or e in _WOULD_BLOCK or e == ETIMEDOUT:
        return OSError(ETIMEDOUT)
    return exc


class Net:
    """Stands in for umqtt.simple's `socket` module: every socket it makes is a TimedSocket."""

    # getaddrinfo has no timeout (on the ESP32 a lookup without a network can block for
    # seconds), so a name is looked up once and the answer reused for resolve_ms.
    def __init__(self, timeout_ms=5000, resolve_ms=600000, tls=None, clock=None):
        self.clock = clock if clock is not None else _clock.REAL
        self.timeout_ms = timeout_ms
        self.resolve_ms = resolve_ms
        self.tls = tls              # a Tls, or None for plain TCP
        self.deadline = None
        self.last = None            # the last socket made (the uplink sets its deadline)
        self._addr = None           # (host, port, ticks looked up, result)

    def socket(self):
        s = TimedSocket(_socket.socket(), self.timeout_ms, self.tls, self.clock)
        s.deadline = self.deadline
        self.last = s
        return s

    def getaddrinfo(self, host, port):
        a = self._addr
        c = self.clock
        if a is not None and a[0] == host and a[1] == port and \
                c.ticks_diff(c.ticks_ms(), a[2]) < self.resolve_ms:
            return a[3]
        res = _socket.getaddrinfo(host, port)
        self._addr = (host, port, c.ticks_ms(), res)
        return res
