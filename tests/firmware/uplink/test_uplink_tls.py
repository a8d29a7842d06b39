# The charger's link with a login and TLS to Mosquitto as deployed (password file, ACL, TLS-only
# listener with a test CA: tests/fixtures/secure_broker.py). TLS runs on CPython and on the
# 64-bit MicroPython unix port from PyPI (mbedTLS `ssl`; [micropython-64]). The 32-bit build
# ([micropython], MICROPY_PY_SSL=0) cannot do TLS at all: there these tests check that the link
# reports it and never connects in clear.
import binascii

from support.mqttpeer import wait_for
from uplink.outbox import Outbox
from uplink.mqtt import Link
from hal.net import Tls

MP_INTERPRETERS = ("32", "64")      # tests/conftest.py: also run on the 64-bit port, which has ssl


def _has_ssl():
    try:
        import ssl   # noqa: F401
        return True
    except ImportError:
        return False


def _link(b, box, user="CP-1", password=None, ca="ca_der", name="127.0.0.1", **kw):
    tls = Tls(binascii.unhexlify(b[ca]), name) if ca else None
    return Link(user or "CP-1", b["host"], b["port"], box, keepalive_s=10, timeout_ms=3000,
                backoff_min_ms=20, backoff_max_ms=50, user=user,
                password=b["passwords"][user] if password is None and user else password,
                tls=tls, **kw)


def _tries(link, n=3):
    for _ in range(200):
        link.poll()
        if link.connected or link.attempts >= n:
            return
        import time
        time.sleep(0.02)


def test_charger_connects_with_tls_and_password_and_publishes(tmp_path, secure_mosquitto):
    b = secure_mosquitto
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    box.put("receipt", b"OCMF|{}|{}")
    link = _link(b, box)
    if not _has_ssl():
        _tries(link)
        assert not link.connected and "ssl" in link.last_error
        return
    wait_for(lambda: link.sent >= 1, link.poll, timeout_ms=15000)
    assert link.connected and link.connects == 1 and link.drops == 0, link.last_error
    link.close()


def test_broker_with_a_certificate_from_another_ca_is_refused(tmp_path, secure_mosquitto):
    link = _link(secure_mosquitto, Outbox(tmp_path + "/ob", reserve_bytes=0), ca="other_ca_der")
    _tries(link)
    assert not link.connected and link.connects == 0 and link.attempts >= 3
    if _has_ssl():
        assert "ERIFY" in link.last_error.upper() or "CERT" in link.last_error.upper(), link.last_error


def test_broker_certificate_for_another_name_is_refused(tmp_path, secure_mosquitto):
    if not _has_ssl():
        return
    link = _link(secure_mosquitto, Outbox(tmp_path + "/ob", reserve_bytes=0), name="broker.example")
    _tries(link)
    assert not link.connected and link.connects == 0 and link.attempts >= 3, link.last_error


def test_wrong_password_and_no_login_are_refused(tmp_path, secure_mosquitto):
    if not _has_ssl():
        return
    b = secure_mosquitto
    box = Outbox(tmp_path + "/ob", reserve_bytes=0)
    bad = _link(b, box, password="not-the-password")
    _tries(bad)
    assert not bad.connected and bad.connects == 0 and "5" in bad.last_error, bad.last_error
    anonymous = Link("CP-1", b["host"], b["port"], box, timeout_ms=3000, backoff_min_ms=20,
                     backoff_max_ms=50, tls=Tls(binascii.unhexlify(b["ca_der"]), "127.0.0.1"))
    _tries(anonymous)
    assert not anonymous.connected and anonymous.connects == 0, anonymous.last_error
    good = _link(b, box)
    _tries(good)
    assert good.connected, good.last_error           # the same broker, the right login
    good.close()


def test_plain_tcp_to_the_tls_listener_gets_nowhere(tmp_path, secure_mosquitto):
    link = _link(secure_mosquitto, Outbox(tmp_path + "/ob", reserve_bytes=0), ca=None)
    _tries(link)
    assert not link.connected and link.connects == 0
