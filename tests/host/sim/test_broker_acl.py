"""Mosquitto as deployed (deploy/mosquitto/: password file, ACL, client id = login, TLS) lets
each party do only its own job. A publish outside the ACL is dropped silently (MQTT 3.1.1 has
no way to say no), so each test has an operator login ("monitor", which may read everything;
logins are client ids, so it must not be the login under test) watch the topics,
sends every forbidden message, then one allowed control message from the same client, and
asserts the control arrived and none of the forbidden ones did: messages from one client are
delivered in order, so once the control is in, a forbidden message would have been too.
"""
import threading
import time

import pytest

from host_tools import mqtt_conn

WAIT_S = 5.0           # a liveness bound for the control message, not a speed figure


class Watcher:
    """An operator login, subscribed to everything it may read."""

    def __init__(self, broker, topics=("cp/#", "tariff/#", "homeassistant/#", "chargeproof-ha/+/button",
                                       "ota/#")):
        self.got = []
        self.cond = threading.Condition()
        self.c = mqtt_conn.connected(broker.spec("monitor"))
        self.c.on_message = self._on
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe([(t, 1) for t in topics])
        assert done.wait(WAIT_S)

    def _on(self, client, userdata, msg):
        with self.cond:
            self.got.append((msg.topic, bytes(msg.payload)))
            self.cond.notify_all()

    def wait_for(self, topic, payload):
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while (topic, payload) not in self.got:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("control message %s never arrived: %r" % (topic, self.got))
                self.cond.wait(left)

    def topics(self):
        with self.cond:
            return [t for t, _ in self.got]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def _publish_all(client, msgs, control):
    for topic, payload in msgs + [control]:
        client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)


def _refused(broker, msgs, control, who):
    """Publish msgs then control as who; the watcher sees control and none of msgs."""
    watcher = Watcher(broker)
    c = mqtt_conn.connected(broker.spec(who))
    try:
        _publish_all(c, msgs, control)
        watcher.wait_for(*control)
        leaked = [t for t, _ in msgs if t in watcher.topics()]
        assert leaked == [], "%s could publish %s" % (who, leaked)
    finally:
        c.loop_stop()
        c.disconnect()
        watcher.close()


def test_a_charger_publishes_only_its_own_records(secure_mosquitto):
    forbidden = [("cp/CP-2/receipt/1", b"OCMF|forged"),          # another charger's receipt
                 ("cp/CP-2/checkpoint/2", b"forged note"),
                 ("cp/CP-2/status", b"offline"),
                 ("cp/CP-2/health", b"{}"),
                 ("cp/CP-1/ack/val-a", b'{"seq": 1}'),            # acks, even for itself
                 ("cp/CP-2/ack/val-a", b'{"seq": 1}'),
                 ("cp/CP-1/cmd", b"{}|00"),                       # commands, even to itself
                 ("cp/CP-2/cmd", b"{}|00"),
                 ("cp/CP-2/evidence/val-a", b"{}"),
                 ("cp/CP-2/cosig/val-a", b"x"),
                 ("tariff/current", b"{}")]
    _refused(secure_mosquitto, forbidden, ("cp/CP-1/receipt/7", b"OCMF|genuine"), "CP-1")


def test_a_validator_publishes_only_its_own_acks_evidence_and_cosignatures(secure_mosquitto):
    forbidden = [("cp/CP-1/ack/val-b", b'{"seq": 1}'),               # as another validator
                 ("cp/CP-1/evidence/val-b", b"{}"),
                 ("cp/CP-1/cosig/val-b", b"x"),
                 ("cp/CP-1/cmd", b"{}|00"),                          # commands
                 ("cp/CP-1/receipt/1", b"OCMF|forged"),              # a charger's records
                 ("cp/CP-1/status", b"offline"),
                 ("cp/val-a/receipt/1", b"OCMF|x"),                  # the charger patterns
                 ("tariff/current", b"{}")]
    _refused(secure_mosquitto, forbidden, ("cp/CP-1/ack/val-a", b'{"seq": 7}'), "val-a")
    _refused(secure_mosquitto, [], ("cp/CP-1/evidence/val-a", b"{}"), "val-a")
    _refused(secure_mosquitto, [], ("cp/CP-1/cosig/val-a", b"x"), "val-a")


def test_only_the_operator_sends_commands_and_tariffs(secure_mosquitto):
    _refused(secure_mosquitto, [], ("cp/CP-1/cmd", b"{}|00"), "operator")
    _refused(secure_mosquitto, [("cp/CP-1/ack/val-a", b"{}"), ("cp/operator/receipt/1", b"x")],
             ("tariff/current", b"{}"), "operator")


def test_only_the_operator_publishes_update_data(secure_mosquitto):
    """Manifests and chunks come only from an operator login (the update server runs as one);
    a charger publishes only its own chunk requests and update status."""
    b = secure_mosquitto
    update_data = [("cp/CP-1/ota/manifest", b"{}|00"), ("ota/manifest", b"{}|00"),
                   ("cp/CP-1/ota/chunk", b"CPC1"), ("cp/CP-2/ota/chunk", b"CPC1")]
    _refused(b, update_data + [("cp/CP-2/ota/req", b"{}"), ("cp/CP-2/ota/status", b"{}")],
             ("cp/CP-1/ota/req", b'{"n":1,"f":0,"o":0}'), "CP-1")
    _refused(b, [], ("cp/CP-1/ota/status", b"{}"), "CP-1")
    _refused(b, update_data + [("cp/CP-1/ota/req", b"{}"), ("cp/CP-1/ota/status", b"{}")],
             ("cp/CP-1/ack/val-a", b'{"seq": 7}'), "val-a")
    _refused(b, update_data, ("chargeproof-ha/CP-1/button", b"start"), "hass")
    for topic, payload in update_data[:3]:
        _refused(b, [], (topic, payload), "operator")
    op = mqtt_conn.connected(b.spec("operator"))
    try:                     # leave nothing retained for the module's other tests
        op.publish("ota/manifest", b"", qos=1, retain=True).wait_for_publish(WAIT_S)
        op.publish("cp/CP-1/ota/manifest", b"", qos=1, retain=True).wait_for_publish(WAIT_S)
    finally:
        op.loop_stop()
        op.disconnect()


def test_a_charger_reads_only_its_own_and_the_fleets_update_data(secure_mosquitto):
    b = secure_mosquitto
    spy = mqtt_conn.connected(b.spec("CP-1"))
    got = []
    spy.on_message = lambda c, u, m: got.append(m.topic)
    for t in ("cp/CP-2/ota/chunk", "cp/CP-2/ota/manifest", "cp/+/ota/req", "cp/CP-1/ota/chunk",
              "ota/manifest"):
        spy.subscribe(t, 1)
    op = mqtt_conn.connected(b.spec("operator"))
    cp2 = mqtt_conn.connected(b.spec("CP-2"))
    try:
        time.sleep(0.2)
        op.publish("cp/CP-2/ota/chunk", b"CPC1", qos=1).wait_for_publish(WAIT_S)
        op.publish("cp/CP-2/ota/manifest", b"{}|00", qos=1).wait_for_publish(WAIT_S)
        cp2.publish("cp/CP-2/ota/req", b"{}", qos=1).wait_for_publish(WAIT_S)
        op.publish("ota/manifest", b"{}|00", qos=1).wait_for_publish(WAIT_S)
        op.publish("cp/CP-1/ota/chunk", b"CPC1", qos=1).wait_for_publish(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while "cp/CP-1/ota/chunk" not in got and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert "cp/CP-1/ota/chunk" in got and "ota/manifest" in got
        assert not [t for t in got if t.startswith("cp/CP-2/")], got
    finally:
        for c in (spy, op, cp2):
            c.loop_stop()
            c.disconnect()


def test_home_assistant_presses_buttons_and_nothing_else(secure_mosquitto):
    """Home Assistant's own login may press the bridge's buttons; only the bridge (an operator
    login) turns a press into a signed command and publishes discovery documents."""
    forbidden = [("cp/CP-1/cmd", b"{}|00"), ("homeassistant/button/CP-1/start/config", b"{}"),
                 ("cp/CP-1/ack/val-a", b"{}"), ("cp/hass/receipt/1", b"x")]
    _refused(secure_mosquitto, forbidden, ("chargeproof-ha/CP-1/button", b"start"), "hass")
    _refused(secure_mosquitto, [("chargeproof-ha/CP-1/button", b"start")],
             ("homeassistant/button/CP-1/start/config", b"{}"), "operator")


def test_a_charger_reads_only_its_own_commands_and_acks(secure_mosquitto):
    b = secure_mosquitto
    spy = mqtt_conn.connected(b.spec("CP-1"))
    got = []
    spy.on_message = lambda c, u, m: got.append(m.topic)
    # Mosquitto accepts the SUBSCRIBE and then delivers nothing it may not read.
    for t in ("cp/CP-2/cmd", "cp/CP-2/ack/+", "cp/+/receipt/+", "cp/#", "cp/CP-1/cmd", "cp/CP-1/ack/+"):
        spy.subscribe(t, 1)
    op = mqtt_conn.connected(b.spec("operator"))
    va = mqtt_conn.connected(b.spec("val-a"))
    cp2 = mqtt_conn.connected(b.spec("CP-2"))
    try:
        op.publish("cp/CP-2/cmd", b"{}|00", qos=1).wait_for_publish(WAIT_S)
        va.publish("cp/CP-2/ack/val-a", b"{}", qos=1).wait_for_publish(WAIT_S)
        cp2.publish("cp/CP-2/receipt/1", b"OCMF|x", qos=1).wait_for_publish(WAIT_S)
        va.publish("cp/CP-1/ack/val-a", b"{}", qos=1).wait_for_publish(WAIT_S)
        op.publish("cp/CP-1/cmd", b"{}|00", qos=1).wait_for_publish(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while "cp/CP-1/cmd" not in got and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)      # the operator's two commands share one path: the first had its chance
        assert "cp/CP-1/cmd" in got and "cp/CP-1/ack/val-a" in got
        assert not [t for t in got if t.startswith("cp/CP-2/")], got
    finally:
        for c in (spy, op, va, cp2):
            c.loop_stop()
            c.disconnect()


def test_anonymous_bad_password_and_unknown_login_are_refused(secure_mosquitto):
    b = secure_mosquitto
    for spec in (b.spec(), b.spec("CP-1", "wrong"), b.spec("val-a", b["passwords"]["CP-1"]),
                 b.spec().with_login("CP-9", "anything")):
        with pytest.raises(ConnectionRefusedError):
            mqtt_conn.connected(spec)
    mqtt_conn.connected(b.spec("CP-1")).disconnect()       # the broker itself is fine


def test_tls_is_required_and_checked(secure_mosquitto, tmp_path):
    from host_tools.provision import pki
    b = secure_mosquitto
    plain = mqtt_conn.BrokerSpec(b["host"], b["port"], "CP-1", b["passwords"]["CP-1"])
    with pytest.raises((TimeoutError, OSError, ConnectionError)):
        mqtt_conn.connected(plain, timeout_s=3).disconnect()
    other = tmp_path / "other-ca.crt"
    other.write_bytes(pki.make_ca("someone else").cert_pem())
    with pytest.raises(OSError):                 # ssl.SSLCertVerificationError
        mqtt_conn.connected(mqtt_conn.BrokerSpec(b["host"], b["port"], "CP-1",
                                                 b["passwords"]["CP-1"], cafile=str(other)))
    with pytest.raises(OSError):                 # right CA, wrong name
        mqtt_conn.connected(b.spec("CP-1").at(host="localhost.localdomain"))


@pytest.mark.parametrize("victim,attacker", [("CP-1", "CP-2"), ("val-a", "CP-2"), ("val-a", "val-b")])
def test_client_id_takeover_does_not_disconnect_the_owner(secure_mosquitto, victim, attacker):
    """MQTT lets a new connection with a client id take over (disconnect) the old one. With
    use_username_as_clientid the id is the login, so another login cannot take it."""
    b = secure_mosquitto
    lost = threading.Event()
    owner = mqtt_conn.client(b.spec(victim), client_id=victim)
    owner.on_disconnect = lambda *a: lost.set()
    ready = threading.Event()
    owner.on_connect = lambda *a: ready.set()
    owner.connect(b["host"], b["port"])
    owner.loop_start()
    assert ready.wait(WAIT_S)
    intruders = []
    try:
        for cid in (victim, "cp-" + victim, "validator-" + victim):
            intruders.append(mqtt_conn.connected(b.spec(attacker), client_id=cid))
        # bad credentials with the owner's id: refused, and no takeover either
        with pytest.raises(ConnectionRefusedError):
            mqtt_conn.connected(b.spec(victim, "wrong"), client_id=victim)
        watcher = Watcher(b)
        try:
            topic = "cp/%s/status" % victim if victim.startswith("CP") else "cp/CP-1/ack/%s" % victim
            owner.publish(topic, b"still here", qos=1).wait_for_publish(WAIT_S)
            watcher.wait_for(topic, b"still here")
        finally:
            watcher.close()
        assert not lost.is_set(), "the owner was disconnected"
    finally:
        for c in intruders:
            c.loop_stop()
            c.disconnect()
        owner.loop_stop()
        owner.disconnect()


def test_the_embedded_amqtt_broker_applies_the_same_logins_and_acl(tmp_path):
    """`make demo` without Mosquitto: amqtt with a password file and the template's ACL
    expanded per login (no TLS, no client-id binding there: docs/security.md)."""
    import warnings
    from host_tools.provision.broker_conf import Roster
    from host_tools.sim.broker import AmqttBroker
    roster = Roster(["CP-1", "CP-2"], ["val-a"], ["operator", "monitor"])
    roster.make_passwords()
    broker = AmqttBroker(roster=roster, workdir=str(tmp_path)).start()
    try:
        base = mqtt_conn.BrokerSpec(broker.host, broker.port)

        class Handle(dict):
            def spec(self, login=None, password=None):
                if login is None:
                    return base
                return base.with_login(login, roster.passwords[login] if password is None else password)
        b = Handle(passwords=roster.passwords)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)     # amqtt's own "acl" option
            for spec in (b.spec(), b.spec("CP-1", "wrong")):
                with pytest.raises(ConnectionRefusedError):
                    mqtt_conn.connected(spec, timeout_s=5)
            _refused(b, [("cp/CP-2/receipt/1", b"OCMF|forged"), ("cp/CP-1/ack/val-a", b"{}"),
                         ("cp/CP-1/cmd", b"{}|00")], ("cp/CP-1/receipt/7", b"OCMF|genuine"), "CP-1")
            _refused(b, [("cp/CP-1/ack/val-b", b"{}"), ("cp/CP-1/cmd", b"{}|00")],
                     ("cp/CP-1/ack/val-a", b"{}"), "val-a")
    finally:
        broker.stop()
