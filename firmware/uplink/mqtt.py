# The charger's MQTT link: umqtt.simple wrapped so the charging loop never waits on the network
# for longer than a fixed budget, and nothing billed is lost while the network is away.
#
# Each poll() does a bounded amount of work under one deadline (budget_ms): at most one connect
# attempt (after an exponential, jittered backoff), up to max_rx incoming messages, a keepalive
# ping, up to `burst` outbox records, and the verification of at most one operator command.
#
# Commands (docs/security.md, "Commands under flood") are screened as they arrive (uplink/
# inbox.py: the command MAC, no signature work) and wait in the inbox for the one signature
# check a poll may make. Screened-out messages do not count against max_rx (up to max_junk_rx
# more per poll): the charger drains a flood as fast as it arrives instead of letting real
# commands wait behind it.
# Every socket call inside umqtt.simple is bounded by hal.net's TimedSocket (timeout and the
# poll's deadline); any error or timeout drops the connection without DISCONNECT, so the
# broker publishes our last will ("offline", retained), and the next poll after the backoff
# reconnects. A half-dead link is found by silence: we ping every keepalive/2 and give up when
# nothing arrives for a whole keepalive.
#
# Outbox records go out in seq order, QoS 1 (that reaches the broker, not the validator), at most
# `window` beyond the ack mark; after a reconnect, or when no ack came for resend_ms, sending
# restarts at the first unacknowledged record. Validators dedupe by seq.
import random

from hal import clock as _clock
from hal import net
from uplink import commands
from uplink.inbox import CommandInbox
from uplink.outbox import BadAck
from uplink.topics import Topics

# The largest message we take: an update chunk (app/update.py: 15-byte head, 16 proof hashes,
# 4096 bytes), a command with its MAC, a published tariff (tests/host/test_shared_rules.py holds
# them below it). A longer one is skipped on the wire by hal.net, never allocated, and arrives
# as b"", which every reader refuses.
MAX_READ = 4800

net.install_umqtt_aliases()
from umqtt import simple as _umqtt     # noqa: E402  (after the aliases, for CPython)


class _Client(_umqtt.MQTTClient):
    # umqtt.simple (1.3.4) does not hand the PUBLISH header's RETAIN bit to the callback. Every
    # packet it reads starts with wait_msg()'s first one-byte read, so the socket keeps that byte
    # for us: the callback, which wait_msg() calls, reads the flag from sock.header.
    def wait_msg(self):
        self.sock.keep_header = True
        return super().wait_msg()


def _nothing():                 # Link.idle without a safety watch
    pass


ONLINE = b"online"
OFFLINE = b"offline"


def _telemetry_payload(power_w, energy_wh, price, register_wh, t, id_json):
    """The telemetry message (JSON bytes): see Link.telemetry."""
    payload = b'{"w":%d,"wh":%d,"price":%d' % (power_w, energy_wh, price)
    if register_wh is not None:
        payload += b',"reg":%d' % register_wh
    if t is not None:
        payload += b',"t":%d' % t
    return payload + ((b"," + id_json + b"}") if id_json else b"}")


class Link:
    def __init__(self, charger_id, host, port, outbox, verifier=None, keepalive_s=30,
                 timeout_ms=2000, budget_ms=None, backoff_min_ms=500, backoff_max_ms=60000,
                 window=8, burst=4, max_rx=8, resend_ms=30000, telemetry_ms=10000,
                 prefix="cp", client_id=None, max_pending_cmds=4, user=None, password=None,
                 tls=None, clock=None, idle=None, wait_slice_us=5000, ack_checker=None,
                 max_junk_rx=64):
        # user/password: the charger's broker login (the broker's ACL lets user <id> publish
        # only under cp/<id>/); tls: a hal.net.Tls (CA and name the broker must prove).
        # Real ticks (hal/clock.py): socket timeouts and keepalives run on the wall's time.
        self.clock = clock if clock is not None else _clock.REAL
        self.topics = Topics(charger_id, prefix)
        self.host = host
        self.port = port
        self.outbox = outbox
        self.verifier = verifier
        self.ack_checker = ack_checker      # uplink.acks.AckChecker; None: no ack can count
        # More (topic, qos) subscriptions and on_other(topic, msg) for them (app/ota.py's)
        self.extra_subs = ()
        self.on_other = None
        self.keepalive_ms = keepalive_s * 1000
        self.keepalive_s = keepalive_s
        self.budget_ms = budget_ms or timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.window = window
        self.burst = burst
        self.max_rx = max_rx
        self.resend_ms = resend_ms
        self.telemetry_ms = telemetry_ms
        self.client_id = client_id or ("cp-" + charger_id)
        self.inbox = CommandInbox(verifier, max_pending_cmds)
        self.max_junk_rx = max_junk_rx
        self.user = user
        self.password = password
        # idle: the charger's safety watch, called while a socket waits (every wait_slice_us)
        # and between the phases of a poll (a no-op without one).
        self.idle = idle or _nothing
        self._net = net.Net(timeout_ms, tls=tls, clock=self.clock, idle=idle,
                            slice_us=wait_slice_us, max_read=MAX_READ)
        self.client = None
        self._sock = None
        self.cursor = outbox.acked          # highest seq sent on this connection
        now = self.clock.ticks_ms()
        self._retry_at = now
        self._backoff = backoff_min_ms
        self._rx_seen = 0
        self._rx_at = now
        self._ping_at = now
        self._progress_at = now
        self._telemetry_at = None
        # Counters for status, tests and the bench.
        self.attempts = 0
        self.connects = 0
        self.drops = 0
        self.sent = 0
        self.resends = 0
        self.acks = 0
        self.bad_acks = 0
        self.retained_acks = 0
        self.last_error = None

    @property
    def connected(self):
        return self.client is not None

    # ---- the one entry point of the charging loop ------------------------------------------
    def poll(self):
        """Do a bounded amount of network work; return the commands accepted in this call
        (a list, usually empty). The caller executes them and answers with reply()."""
        now = self.clock.ticks_ms()
        deadline = self.clock.ticks_add(now, self.budget_ms)
        if self.client is None:
            if self.clock.ticks_diff(self._retry_at, now) > 0 or not self._connect(now, deadline):
                return self._verify_one(deadline)
        idle = self.idle
        try:
            self.client.sock.deadline = deadline
            self._receive()
            self._keepalive(self.clock.ticks_ms())
            self._send(self.clock.ticks_ms())
            self.client.sock.flush()        # a ping may still sit in the write buffer
        except Exception as exc:    # umqtt raises OSError, MQTTException, AssertionError...
            self._drop(exc)
        idle()
        self.outbox.sync()                  # this poll's acks: one flash write
        idle()
        return self._verify_one(deadline)

    def _connect(self, now, deadline):
        self.attempts += 1
        c = _Client(self.client_id, self.host, self.port, keepalive=self.keepalive_s,
                    user=self.user, password=self.password or "")
        c.set_callback(self._on_message)
        c.set_last_will(self.topics.status, OFFLINE, retain=True, qos=1)
        self._net.deadline = deadline
        _umqtt.socket = self._net           # umqtt.simple's sockets are made by hal.net
        try:
            c.connect(clean_session=True)
            self._sock = c.sock             # retained messages may arrive inside subscribe()
            c.sock.deadline = deadline
            c.publish(self.topics.status, ONLINE, retain=True, qos=1)
            c.subscribe(self.topics.ack_filter, qos=1)
            c.subscribe(self.topics.cmd, qos=1)
            for topic, qos in self.extra_subs:
                c.subscribe(topic, qos=qos)
        except Exception as exc:
            if c.sock is not None:
                c.sock.close()
            self.last_error = repr(exc)
            self._schedule_retry(now)
            return False
        self.client = c
        self.connects += 1
        self._backoff = self.backoff_min_ms
        self.cursor = self.outbox.acked     # resend everything not yet acknowledged, in order
        self._rx_seen = c.sock.rx_bytes
        now = self.clock.ticks_ms()
        self._rx_at = self._ping_at = self._progress_at = now
        return True

    def retry_in_ms(self):
        """Milliseconds until the next connect attempt (0 when connected or due)."""
        if self.client is not None:
            return 0
        return max(0, self.clock.ticks_diff(self._retry_at, self.clock.ticks_ms()))

    def _schedule_retry(self, now):
        delay = self._backoff
        # Up to +25 % jitter, so a fleet does not reconnect in lockstep after a broker restart.
        delay += random.getrandbits(16) * (delay // 4) // 65536
        self._retry_at = self.clock.ticks_add(now, delay)
        self._backoff = min(self._backoff * 2, self.backoff_max_ms)

    def _drop(self, exc):
        # No DISCONNECT: the link is bad, and the broker should publish our last will.
        self.last_error = repr(exc)
        self.drops += 1
        if self.client is not None and self.client.sock is not None:
            self.client.sock.close()
        self.client = None
        self._schedule_retry(self.clock.ticks_ms())

    def _receive(self):
        c = self.client
        idle = self.idle
        inbox = self.inbox
        junk0 = inbox.junk
        got = 0
        while got < self.max_rx + min(inbox.junk - junk0, self.max_junk_rx):
            before = c.sock.rx_bytes
            idle()
            c.check_msg()
            if c.sock.rx_bytes == before:
                break
            got += 1

    def _keepalive(self, now):
        rx = self.client.sock.rx_bytes
        if rx != self._rx_seen:
            self._rx_seen = rx
            self._rx_at = now
        if self.clock.ticks_diff(now, self._rx_at) > self.keepalive_ms:
            raise OSError(net.ETIMEDOUT)     # half-dead link: nothing heard for a keepalive
        if self.clock.ticks_diff(now, self._ping_at) >= self.keepalive_ms // 2:
            self.client.ping()
            self._ping_at = now

    def _send(self, now):
        box = self.outbox
        if self.cursor < box.acked:
            self.cursor = box.acked
        if self.cursor > box.acked and self.clock.ticks_diff(now, self._progress_at) > self.resend_ms:
            self.cursor = box.acked             # no ack for a while: validators may have missed them
            self._progress_at = now
            self.resends += 1
        room = box.acked + self.window - self.cursor
        if room <= 0 or self.cursor >= box.last_seq:
            return
        idle = self.idle
        for seq, tag, payload in box.items(self.cursor, min(room, self.burst), True):
            idle()
            self.client.publish(self.topics.outbox(tag, seq), payload, qos=1)
            self.cursor = seq
            self.sent += 1

    # ---- incoming (called by umqtt.simple from inside check_msg/publish) -------------------
    def _on_message(self, topic, msg):
        if topic == self.topics.cmd:
            self.idle()                     # the packet read; the command MAC's check next
            self.inbox.offer(msg)
            return
        validator = self.topics.ack_validator(topic)
        if validator is None:
            if self.on_other is not None:
                self.on_other(topic, msg)
            return
        if self._sock.header & 1:
            # Retained: left on the broker by someone, not sent to us now. A validator never
            # retains an ack (docs/mqtt.md), so this is stale or planted; it counts for nothing.
            self.retained_acks += 1
            return
        idle = self.idle
        try:
            if self.ack_checker is None:
                raise BadAck("no ack keys provisioned")
            idle()                          # the packet read; its MAC check, then the outbox's
            seq, tag, digest = self.ack_checker.check(validator, msg)
            idle()
            before = self.outbox.acked
            if self.outbox.ack(seq, validator, digest, tag):
                self.acks += 1
            if self.outbox.acked != before:
                self._progress_at = self.clock.ticks_ms()
        except BadAck:
            self.bad_acks += 1

    def _verify_one(self, deadline):
        refused = self.inbox.take_refused()
        if refused is not None:             # one answer per poll, however many were refused
            self._publish_result(refused, deadline)
        raw = self.inbox.pop()
        if raw is None:
            return []
        if self.verifier is None:
            self._publish_result(commands.result(commands.BAD_SIGNATURE, detail="no operator key",
                                                 ref=commands.ref_of(raw)), deadline)
            return []
        try:
            return [self.verifier.verify(raw)]
        except commands.CommandRejected as exc:
            self._publish_result(commands.rejection(exc, raw), deadline)
            return []

    # ---- outgoing, for the app ---------------------------------------------------------------
    def reply(self, cmd, result=commands.OK, detail=""):
        """Answer an accepted command once the session layer has acted on it."""
        return self._publish_result(commands.result(result, cmd.n, cmd.name, detail, cmd.ref))

    def _publish_result(self, payload, deadline=None):
        return self._publish(self.topics.cmd_result, payload, deadline)

    def telemetry(self, power_w, energy_wh, price, force=False, register_wh=None, t=None, id_json=None):
        """Publish live values (integers: W, Wh so far, price so far in minor units, the
        meter's total import register in Wh and the charger's clock t, epoch s, when given;
        id_json: the session's id as JSON members, app/charger_app.py) if the telemetry
        interval has passed. QoS 0: telemetry is not billing data (the receipt is)."""
        now = self.clock.ticks_ms()
        if not force and self._telemetry_at is not None and \
                self.clock.ticks_diff(now, self._telemetry_at) < self.telemetry_ms:
            return False
        payload = _telemetry_payload(power_w, energy_wh, price, register_wh, t, id_json)
        self.idle()                         # the message made; framing and sending are pieces
        if self._publish(self.topics.telemetry, payload):
            self._telemetry_at = now
            return True
        return False

    def publish(self, topic, payload, retain=False):
        """QoS 0, now if connected (app/ota.py's requests and status); False if not sent."""
        return self._publish(topic, payload, retain=retain)

    def health(self, payload):
        """Publish the charger's health (JSON bytes) as the retained health topic: whoever
        subscribes later sees the latest. QoS 0: it is replaced, not billed."""
        return self._publish(self.topics.health, payload, retain=True)

    def _publish(self, topic, payload, deadline=None, retain=False):
        if self.client is None:
            return False
        try:
            c = self.clock
            self.client.sock.deadline = deadline or c.ticks_add(c.ticks_ms(), self.budget_ms)
            self.client.publish(topic, payload, retain=retain, qos=0)
            self.idle()                     # the packet framed; sending it is a piece
            self.client.sock.flush()
            return True
        except Exception as exc:
            self._drop(exc)
            return False

    def close(self):
        """Clean shutdown: retained "offline", then DISCONNECT (the will is not sent on a clean
        disconnect)."""
        self.outbox.sync()
        if self.client is None:
            return
        try:
            self.client.sock.deadline = self.clock.ticks_add(self.clock.ticks_ms(), self.budget_ms)
            self.client.publish(self.topics.status, OFFLINE, retain=True, qos=1)
            self.client.disconnect()
        except Exception as exc:
            self.last_error = repr(exc)
        if self.client.sock is not None:
            self.client.sock.close()
        self.client = None
