# hal/esp32.py against the ESP32 port's behaviour (v1.24-1.28, DESIGN.md "Facts about the ESP32
# port"), modelled by tests/firmware/support/machine_stub.py: the RNG is weak until the radio
# runs, WLAN.connect() raises while connecting, getaddrinfo has no timeout (so the hal never
# resolves through it), errno numbers are newlib's, and one ADC read takes tens of us.
# Runs on both interpreters.
import socket
import sys

from support import machine_stub as m
from app.board import load_board


def _esp32():
    m.reset()
    sys.modules["machine"] = m
    sys.modules["network"] = m.network
    sys.modules.pop("hal.esp32", None)
    import hal.esp32
    hal.esp32.os = m.os_esp32           # os.urandom as the port gives it (esp_random)
    return hal.esp32


def _done():
    for name in ("machine", "network", "hal.esp32"):
        sys.modules.pop(name, None)


def test_keys_and_nonces_are_drawn_with_the_radio_on(tmp_path):
    from ledger.keys import KeyStore
    try:
        pubs = []
        for board in range(2):                       # two boards, each from a cold boot
            esp32 = _esp32()
            assert m.radio["active"] is False
            keys = KeyStore(str(tmp_path) + "/key%d" % board, esp32.urandom)
            keys.sign(b"x")                          # blinding draws from the RNG too
            assert m.radio["weak_draws"] == 0 and m.radio["active"] is True
            pubs.append(keys.public_key_hex())
        assert pubs[0] != pubs[1]                    # a weak RNG gives every board one key
    finally:
        _done()


def test_wifi_connect_is_called_once_then_polled():
    try:
        esp32 = _esp32()
        net = esp32.Network("site", "secret", retry_ms=0)
        assert m.radio["active"] is True             # the radio is on from construction
        assert net.connect() is True and m.radio["connects"] == 1
        for _ in range(5):                           # the loop asks again while associating
            assert net.connect() is False
        assert m.radio["connects"] == 1 and not net.connected()
        m.radio["status"] = m.network.STAT_GOT_IP
        assert net.connect() is False and net.connected()
        m.radio["status"] = m.network.STAT_NO_AP_FOUND     # the port gave up: ask again
        assert net.connect() is True and m.radio["connects"] == 2
        m.radio["status"] = m.network.STAT_WRONG_PASSWORD
        net.retry_ms = 60000                         # but not more often than retry_ms
        assert net.connect() is False and m.radio["connects"] == 2
        assert esp32.Network(None, "").connect() is False     # no WiFi configured
    finally:
        _done()


def _udp_server():
    import random
    for _ in range(20):
        port = 20000 + random.getrandbits(15)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        return s, port
    raise AssertionError("no free UDP port")


def _recv(s):
    try:
        return s.recvfrom(512)
    except OSError:
        return None, None


class _Servers:
    """A DNS and an NTP server on loopback, served from the idle hook (no threads): the
    hal's waits must call idle() for any answer to come."""

    def __init__(self):
        self.dns, self.dns_port = _udp_server()
        self.ntp, self.ntp_port = _udp_server()
        self.dns_answer = True
        self.ntp_answer = True
        self.ntp_nonce_ok = True
        self.dns_queries = 0
        self.ntp_queries = 0
        self.idles = 0
        self.unix = 1767225600                       # 2026-01-01T00:00:00Z

    def idle(self):
        self.idles += 1
        q, addr = _recv(self.dns)
        if q is not None:
            self.dns_queries += 1
            if self.dns_answer:                      # header, the question, one A record
                reply = bytearray(q)
                reply[2] = 0x81
                reply[3] = 0x80
                reply[7] = 1
                reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01"
                self.dns.sendto(bytes(reply), addr)
        q, addr = _recv(self.ntp)
        if q is not None:
            self.ntp_queries += 1
            if self.ntp_answer:
                reply = bytearray(48)
                reply[0] = 0x24                      # LI 0, v4, mode 4 (server)
                reply[1] = 2                         # stratum
                reply[24:32] = q[40:48] if self.ntp_nonce_ok else bytes(8)
                reply[40:44] = (self.unix + 2208988800).to_bytes(4, "big")
                self.ntp.sendto(bytes(reply), addr)

    def close(self):
        self.dns.close()
        self.ntp.close()


def test_ntp_never_waits_unbounded_on_dns():
    srv = _Servers()
    try:
        esp32 = _esp32()
        clock = esp32.Clock()
        net = esp32.Network("site", "pw", timeout_ms=200, dns_port=srv.dns_port,
                            ntp_port=srv.ntp_port)
        # Offline: nothing is sent at all (no lookup that could hang).
        assert net.sync_clock(clock, "pool.ntp.org", srv.idle) is False
        assert srv.dns_queries == 0 and srv.idles == 0
        m.radio["status"] = m.network.STAT_GOT_IP
        # A DNS server that never answers: the wait ends, and idle() (watchdog, safety poll)
        # ran all along.
        srv.dns_answer = False
        assert net.sync_clock(clock, "pool.ntp.org", srv.idle) is False
        assert srv.dns_queries == 1 and srv.idles >= 5 and srv.ntp_queries == 0
        assert clock.status() == "U" and m.rtc_set[0] is None
        # DNS answers: the NTP server's time is set, and the address is kept.
        srv.dns_answer = True
        assert net.sync_clock(clock, "pool.ntp.org", srv.idle) is True
        assert clock.status() == "S" and m.rtc_set[0][:3] == (2026, 1, 1)
        assert net.sync_clock(clock, "pool.ntp.org", srv.idle) is True
        assert srv.dns_queries == 2 and srv.ntp_queries == 2
        # A reply that does not echo our nonce (stray, spoofed) is not believed.
        m.rtc_set[0] = None
        srv.ntp_nonce_ok = False
        assert net.sync_clock(clock, "pool.ntp.org", srv.idle) is False and m.rtc_set[0] is None
        # An IP literal needs no DNS at all.
        srv.ntp_nonce_ok = True
        assert net.sync_clock(clock, "127.0.0.1", srv.idle) is True
        assert srv.dns_queries == 2
    finally:
        srv.close()
        _done()


def test_dns_replies_are_checked():
    from hal import net
    q = net.dns_query("pool.ntp.org", 0x1234)
    assert q[:2] == b"\x12\x34" and q[12:] == b"\x04pool\x03ntp\x03org\x00\x00\x01\x00\x01"
    ok = bytearray(q)
    ok[2] = 0x81
    ok[3] = 0x80
    ok[7] = 2                                        # a CNAME first, then the A record
    ok += b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c"
    ok += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x07"
    assert net.dns_answer(bytes(ok), 0x1234) == "10.0.0.7"
    assert net.dns_answer(bytes(ok), 0x1235) is None            # another query's id
    assert net.dns_answer(bytes(ok[:-3]), 0x1234) is None       # truncated
    nx = bytearray(ok)
    nx[3] = 0x83                                                 # NXDOMAIN
    assert net.dns_answer(bytes(nx), 0x1234) is None
    assert net.is_ip("10.0.0.7") and not net.is_ip("10.0.0.256") and not net.is_ip("a.b.c.d")


class _Sock:
    """A socket that fails its reads with one errno, as the port would raise it."""
    def __init__(self, err):
        self.err = err

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def setsockopt(self, *a):
        pass

    def recv(self, n):
        raise OSError(self.err)

    read = recv


def test_socket_errors_use_the_ports_errno_numbers():
    import hal
    from hal import net as linux_net
    try:
        sys.modules["errno"] = m.errno_newlib
        sys.modules.pop("hal.net", None)
        delattr(hal, "net")
        from hal import net
        assert net is not linux_net
        s = net.TimedSocket(_Sock(116), 1000)        # the ESP32's ETIMEDOUT
        try:
            s.read(4)
            raise AssertionError("no error")
        except OSError as exc:
            assert net._errno(exc) == net.ETIMEDOUT == 116
        s = net.TimedSocket(_Sock(119), 1000)        # EINPROGRESS on a non-blocking look
        s.setblocking(False)
        assert s.read(1) is None
        s = net.TimedSocket(_Sock(115), 1000)        # 115 is newlib's ENOSR: a real error
        s.setblocking(False)
        try:
            s.read(1)
            raise AssertionError("errno 115 taken for 'would block'")
        except OSError as exc:
            assert net._errno(exc) == 115
    finally:
        sys.modules.pop("errno", None)
        sys.modules["hal.net"] = linux_net        # the rest of the run keeps the host's numbers
        hal.net = linux_net


def _pilot_line(board, pwm_gpio, us_per_read):
    # The pilot as the ADC sees it: +12 V / -12 V phases of the stub's PWM, sampled every
    # us_per_read, in step with the 1 kHz period (the ADC has no trigger; nothing stops the
    # loop's timing from locking to the PWM).
    hi = board.adc_mv(12000) * 1000
    lo = board.adc_mv(-12000) * 1000

    def sample(i):
        p = m.pwms.get(pwm_gpio)
        if p is None:
            return hi if m.levels.get(pwm_gpio, 0) else lo
        t = (i * us_per_read) % 1000
        return hi if t * 65535 < p.u16 * 1000 else lo
    return sample


def test_self_test_duties_fit_the_adc_read_time(boards_dir):
    from hal.sim import SimClock
    from app.selftest import check_pilot
    try:
        esp32 = _esp32()
        board = load_board(boards_dir + "/olimex-esp32-evb.json")
        pwm = esp32.PilotPWM(board.pilot_pwm)
        adc = esp32.PilotADC(board.pilot_adc, board.pilot_adc_mv_at_plus12,
                             board.pilot_adc_mv_at_minus12)
        m.wave[0] = _pilot_line(board, board.pilot_pwm, 50)    # 50 us per read_uv()
        results = check_pilot(pwm, adc, SimClock())
        assert [r for r in results if not r[1]] == [], results
        assert len(results) == 5 and pwm.duty() == 1000
    finally:
        _done()
