# hal.net: every wait on the network is bounded, on both interpreters. The silent peer is the
# fixture's fault proxy in blackhole mode (TCP up, nothing comes back).

from support.fwtest import raises
from hal import clock, net
from support.mqttpeer import control


def _silent_socket(b, timeout_ms):
    control(b, "proxy blackhole")
    n = net.Net(timeout_ms)
    s = n.socket()
    s.connect(n.getaddrinfo(b["host"], b["port"])[0][-1])
    return s


def test_reads_time_out_instead_of_hanging(amqtt_broker):
    s = _silent_socket(amqtt_broker, 150)
    t0 = clock.ticks_ms()
    exc = raises(OSError, s.read, 4)
    assert net._errno(exc) == net.ETIMEDOUT
    s.setblocking(False)
    assert s.read(1) is None                  # non-blocking look: nothing there
    s.setblocking(True)                       # umqtt does this: the timeout must survive it
    raises(OSError, s.read, 1)
    assert clock.ticks_diff(clock.ticks_ms(), t0) < 5000
    s.close()


def test_deadline_cuts_a_whole_operation_short(amqtt_broker):
    s = _silent_socket(amqtt_broker, 10000)
    s.deadline = clock.ticks_add(clock.ticks_ms(), 100)
    t0 = clock.ticks_ms()
    raises(OSError, s.read, 1)                # bounded by the deadline, not the 10 s timeout
    assert clock.ticks_diff(clock.ticks_ms(), t0) < 5000
    raises(OSError, s.write, b"x" * 1000)     # past the deadline: nothing more is tried
    s.close()


def test_small_writes_are_gathered_into_one_send(amqtt_broker):
    b = amqtt_broker
    n = net.Net(2000)
    s = n.socket()
    s.connect(n.getaddrinfo(b["host"], b["broker_port"])[0][-1])
    # An MQTT PINGREQ before CONNECT makes the broker close the connection; what matters
    # here is that the two halves leave together, at flush().
    s.write(b"\xc0")
    s.write(b"\x00")
    assert s._wlen == 2
    s.flush()
    assert s._wlen == 0
    s.close()


def test_names_are_resolved_once():
    n = net.Net(1000)
    first = n.getaddrinfo("localhost", 1883)
    assert n.getaddrinfo("localhost", 1883) is first
    assert n.getaddrinfo("127.0.0.1", 1883) is not first
