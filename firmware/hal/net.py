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
import errno
import socket as _socket
import sys

from hal import clock as _clock

_HAS_READ = hasattr(_socket.socket, "read")     # MicroPython sockets are streams
# The port's own numbers: the ESP32 is newlib (ETIMEDOUT 116, EINPROGRESS 119), Linux is not
# (110, 115). Every comparison goes through these names, never a literal.
ETIMEDOUT = errno.ETIMEDOUT
EAGAIN = errno.EAGAIN
ECONNRESET = errno.ECONNRESET
_WOULD_BLOCK = (errno.EAGAIN, errno.EINPROGRESS, errno.EALREADY,
                getattr(errno, "EWOULDBLOCK", errno.EAGAIN))


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


def _sleep_us(us):
    _clock.sleep_us(us)


class TimedSocket:
    """idle, if given, is called between wait slices of slice_us whenever a connect, read or
    write has to wait (the charger's safety watch), and before every read of a piece of a
    packet: the socket never blocks the caller for longer than one slice, and the timeout and
    deadline still bound the whole wait. Then the socket itself stays non-blocking from the
    connect on (every read and send follows a poll() that found it ready), so no call re-arms
    its timeout: two or three system calls fewer per read. Not with TLS yet: a TLS socket may
    hold decrypted bytes that poll() does not show, so its waits stay whole (bounded by the
    timeout)."""

    def __init__(self, sock, timeout_ms, tls=None, clock=None, idle=None, slice_us=5000):
        self.sock = sock
        self.raw = sock             # where timeouts are set (MicroPython's TLS socket has none)
        self.tls = tls
        self.clock = clock if clock is not None else _clock.REAL     # real ticks: hal/clock.py
        self.timeout_ms = timeout_ms
        self.idle = idle if tls is None else None
        self.slice_us = slice_us
        self._poller = None
        self.deadline = None       # ticks_ms value after which every call fails, or None
        self.rx_bytes = 0          # proof of life: the uplink watches it for keepalive
        # The first byte of the next packet is kept when keep_header is set (the MQTT fixed
        # header, whose flags umqtt.simple does not pass on: uplink/mqtt.py reads RETAIN here).
        self.keep_header = False
        self.header = 0
        self.max_read = None        # bytes; a read asking for more is skipped (see read())
        self.oversized = 0
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
        if self.idle is not None:
            self._connect_sliced(addr)
            return
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
        if self.idle is not None:
            return                          # sliced: the socket stays non-blocking (above)
        if flag:
            self.raw.settimeout(self.timeout_ms / 1000)
        else:
            self.raw.setblocking(False)

    def settimeout(self, seconds):
        self.timeout_ms = int(seconds * 1000) if seconds is not None else self.timeout_ms
        self.raw.settimeout(self.timeout_ms / 1000)

    def read(self, n):
        if self.max_read is not None and n > self.max_read:
            # A message larger than any we accept: read past it in small pieces instead of
            # allocating it (an 8 KB block may not exist on an ESP32's heap) and hand on b"",
            # which the uplink refuses as malformed. The connection stays in step.
            left = n
            while left:
                left -= len(self._read_exact(left if left < 256 else 256))
            self.oversized += 1
            return b""
        data = self._read(n)
        if self.keep_header and data:
            self.keep_header = False
            self.header = data[0]
        return data

    def _read(self, n):
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

    def _connect_sliced(self, addr):
        self.sock.setblocking(False)        # start the handshake, then wait for it in slices
        try:
            self.sock.connect(addr)
        except OSError as exc:
            if _errno(exc) not in _WOULD_BLOCK:
                raise
        self._wait(False)

    def _wait(self, for_read):
        """Wait in slices until the socket is readable (or writable), calling idle() in
        between; ETIMEDOUT after the timeout or at the deadline; ECONNRESET on an error or
        hang-up with nothing to read (a refused connect)."""
        import select
        ev = select.POLLIN if for_read else select.POLLOUT
        p = self._poller
        if p is None:
            p = self._poller = select.poll()
            p.register(self.sock, ev)
        else:
            p.modify(self.sock, ev)
        limit = self._wait_ms()
        c = self.clock
        t0 = c.ticks_ms()
        idle = self.idle
        while True:
            res = p.poll(0)
            if res:
                flags = res[0][1]
                if flags & (select.POLLERR | select.POLLHUP) and not flags & select.POLLIN:
                    raise OSError(ECONNRESET)
                return
            if c.ticks_diff(c.ticks_ms(), t0) >= limit:
                raise OSError(ETIMEDOUT)
            idle()
            _sleep_us(self.slice_us)

    def _read_exact(self, n):
        self.flush()
        buf = b""
        idle = self.idle
        while len(buf) < n:
            try:
                if idle is not None:
                    idle()                  # between the pieces of a packet
                    self._wait(True)        # the deadline is checked here
                else:
                    self._arm()
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
            if not self._blocking and self.idle is None:
                self.raw.setblocking(False)

    def _send_all(self, mv):
        sent = 0
        total = len(mv)
        while sent < total:
            try:
                if self.idle is not None:
                    self._wait(False)
                else:
                    self._arm()
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
    def __init__(self, timeout_ms=5000, resolve_ms=600000, tls=None, clock=None, idle=None,
                 slice_us=5000, max_read=None):
        self.clock = clock if clock is not None else _clock.REAL
        self.timeout_ms = timeout_ms
        self.resolve_ms = resolve_ms
        self.tls = tls              # a Tls, or None for plain TCP
        self.idle = idle            # the safety watch, between wait slices (plain TCP only)
        self.slice_us = slice_us
        self.deadline = None
        self.max_read = max_read    # given to every socket (TimedSocket.read)
        self.last = None            # the last socket made (the uplink sets its deadline)
        self._addr = None           # (host, port, ticks looked up, result)

    def socket(self):
        s = TimedSocket(_socket.socket(), self.timeout_ms, self.tls, self.clock, self.idle,
                        self.slice_us)
        s.deadline = self.deadline
        s.max_read = self.max_read
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


# ---- bounded name and time queries (UDP) ---------------------------------------------------
# getaddrinfo on a name has no timeout on the ESP32 (lwIP waits for its DNS timers, seconds,
# with the interpreter stopped), and ntptime resolves its host on every call. These queries
# never resolve a name through the socket layer: they talk to an IP literal, wait in short
# slices and call idle() between them (the watchdog and the safety poll keep running).
DNS_PORT = 53
NTP_PORT = 123
_NTP_TO_UNIX = 2208988800       # seconds from 1900-01-01 to 1970-01-01


def is_ip(host):
    """True for a dotted IPv4 literal (getaddrinfo answers those without any DNS query)."""
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return False
    return True


def udp_exchange(ip, port, request, timeout_ms, idle=None, slice_ms=10, size=512):
    """Send one datagram to ip:port and return the first reply (bytes), or None after
    timeout_ms. Waits slice_ms at a time and calls idle() in between."""
    if not is_ip(ip):
        raise ValueError("not an IP address: %r" % (ip,))
    import select
    addr = _socket.getaddrinfo(ip, port)[0][-1]        # a literal: no DNS query
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.sendto(request, addr)
        poller = select.poll()
        poller.register(s, select.POLLIN)
        t0 = _clock.ticks_ms()
        while True:
            if poller.poll(slice_ms):
                try:
                    return s.recv(size)
                except OSError as exc:
                    if _errno(exc) not in _WOULD_BLOCK:
                        return None
            if _clock.ticks_diff(_clock.ticks_ms(), t0) >= timeout_ms:
                return None
            if idle is not None:
                idle()
    finally:
        s.close()


def dns_query(name, qid):
    """A DNS query (RFC 1035 4.1) for the A record of name, with id qid (16 bits)."""
    q = bytearray(b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")   # RD, one question
    q[0] = qid >> 8
    q[1] = qid & 255
    for label in name.rstrip(".").split("."):
        if not 0 < len(label) < 64:
            raise ValueError("bad host name %r" % (name,))
        q.append(len(label))
        q.extend(label.encode())
    q.extend(b"\x00\x00\x01\x00\x01")                   # root, QTYPE A, QCLASS IN
    return bytes(q)


def _skip_name(msg, i):
    while True:
        n = msg[i]
        if n >= 0xC0:                                   # compression pointer: 2 bytes
            return i + 2
        if n == 0:
            return i + 1
        i += 1 + n


def dns_answer(msg, qid):
    """The first IPv4 address in a DNS reply to query qid, as a dotted string, or None
    (wrong id, not a reply, an error code, no A record, or a truncated message)."""
    try:
        if len(msg) < 12 or (msg[0] << 8 | msg[1]) != qid or not msg[2] & 0x80 or msg[3] & 15:
            return None
        qd = msg[4] << 8 | msg[5]
        an = msg[6] << 8 | msg[7]
        i = 12
        for _ in range(qd):
            i = _skip_name(msg, i) + 4
        for _ in range(an):
            i = _skip_name(msg, i)
            rtype = msg[i] << 8 | msg[i + 1]
            rlen = msg[i + 8] << 8 | msg[i + 9]
            i += 10
            if rtype == 1 and rlen == 4 and i + 4 <= len(msg):
                return "%d.%d.%d.%d" % (msg[i], msg[i + 1], msg[i + 2], msg[i + 3])
            i += rlen
    except IndexError:
        pass
    return None


def resolve(name, dns_ip, timeout_ms, idle=None, qid=0x4350, port=DNS_PORT):
    """name's IPv4 address asked of the DNS server at dns_ip, bounded; None if no answer."""
    if is_ip(name):
        return name
    reply = udp_exchange(dns_ip, port, dns_query(name, qid), timeout_ms, idle)
    return None if reply is None else dns_answer(reply, qid)


def sntp_request(nonce):
    """An SNTP v4 client request (RFC 4330) whose transmit timestamp is the 8-byte nonce: a
    reply must echo it as its originate timestamp, so a stray or forged datagram is refused."""
    return b"\x23" + bytes(39) + nonce


def sntp_seconds(reply, nonce):
    """Unix seconds from an SNTP server reply to sntp_request(nonce), or None."""
    if reply is None or len(reply) < 48 or reply[0] & 7 != 4 or not 1 <= reply[1] <= 15:
        return None
    if reply[24:32] != nonce:
        return None
    secs = int.from_bytes(reply[40:44], "big")
    return secs - _NTP_TO_UNIX if secs else None
