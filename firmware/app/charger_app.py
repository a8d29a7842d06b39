# Wiring: one charger built from its board, its configuration and its hardware, and the main
# loop's single pass. The same code runs on the ESP32 (app/main.py passes hal.esp32 devices)
# and in simulation (hal.sim devices, a pty to the pymodbus meter).
#
#   hw: the board's devices by name, as declared in hal/contract.py ("clock", "relay",
#       "feedback", "pilot_pwm", "pilot_adc", "uart", "urandom", "watchdog", and the optional
#       "rcd_fault", "rcd_test", "rfid_spi")
import gc
import json

from drivers import modbus
from drivers.contactor import Contactor
from drivers.meter import Meter
from drivers.pilot import Pilot
from drivers.rcd import ResidualCurrent
from ledger.keys import KeyStore
from ledger.log import ChargerLog
from session.auth import Authoriser
from session.billing import Billing
from ledger.cards import NO_KEY, CardPseudonyms
from session.charger import Charger, Refused
from session.faults import FaultLog
from session.state import SessionStore
from session.tariff import TariffError
from store import atomic, bootsel
from uplink.outbox import Outbox

from app.records import Records
from app.safety import SafetyWatch


# Collect once a sixth of the heap has been left allocated since the last collection, rather
# than only when the heap is full: with the garbage cleared often, the objects that live long
# pack low instead of between old garbage, and the 1-2 KB blocks a receipt needs at a session's
# end are still there whole (measured on the 32-bit build: README, `app_heap_peak_bytes_32`).
# The safety watch counts it, by the bytes left allocated, and collects between two polls
# (app/safety.py). The heap's own threshold is off once the charger is built: it counts what is
# freed again at once too (every call frame of more than 11 words is allocated on the heap and
# freed at its return; a big-int operation's temporaries), so it fired every few KB of that
# churn in the middle of whatever ran, with nothing to free: on the 32-bit build it added a
# ~150 us collection to one gap in a few hundred, even in a loop of nothing but polls.
GC_SHARE = 6
# The collector is run by the safety watch, between two polls (app/safety.py): in the signer
# and verifier, counted in hook calls that leave at most GC_CALL_BYTES each allocated plus
# 4 KB (app/safety.py; measured on 32 bits: one call's field operation leaves ~1.3-2.7 KB of big
# integers, 2, 4, 8 and 12 calls in a row at most 7.4, 14.2, 22.0 and 31.4 KB), and at the end
# of a pass when the passes since the last collection left more than half the share.
GC_CALL_BYTES = 2624
# While the charger is built (and, from app/main.py's first line, while the firmware is
# imported), collect every BOOT_GC_BYTES: nearly everything made then lives for the whole run,
# and with the boot's garbage cleared that often it packs low and whole instead of around
# holes the garbage leaves. A heap cut into holes has room but no 1.2 KB block for a receipt at
# a session's end (app_heap_peak_bytes_32: 73 984 -> 72 448-73 216 bytes; docs/firmware.md).
BOOT_GC_BYTES = 2048


def _command_verifier(cfg, clock, secrets, safety, feed):
    """The operator commands' verifier, its key's comb built now (cmd_key: the command MAC key
    from the secrets file; a bad one raises ValueError). The comb leaves ~0.5 MB of big-int
    garbage on 32 bits: the watch collects as it goes, the boot's every-2-KB threshold paused
    meanwhile. It is the boot's longest step (~11 ms on the 32-bit unix build, ~2 s on an
    ESP32): the watchdog, running since before the build, is fed on both sides of it."""
    from uplink import commands
    feed()
    _boot_threshold(False)
    verifier = commands.Verifier(cfg["data_dir"] + "/cmd_counter", cfg["operator_key"],
                                 cfg["charger_id"], clock.time, clock_status=clock.status,
                                 cmd_key=secrets["cmd_key"], idle=safety.heavy)
    safety()                    # the end of the build: its garbage collected
    _boot_threshold(True)
    feed()
    return verifier


def _boot_threshold(on):
    """The boot's every-BOOT_GC_BYTES collection on or paused (MicroPython only)."""
    if hasattr(gc, "threshold"):
        gc.threshold(BOOT_GC_BYTES if on else -1)


class ChargerApp:
    def __init__(self, board, cfg, hw):
        gc_bytes, call_bytes = self._collector()
        self.cfg = cfg
        self.clock = clock = hw["clock"]
        self.watchdog = hw.get("watchdog")
        data = cfg["data_dir"]
        atomic.makedirs(data)
        master = modbus.ModbusRTU(hw["uart"], timeout_ms=cfg["meter_timeout_ms"],
                                  retries=cfg["meter_retries"])
        meter = Meter(master, board.meter_model, board.meter_address)
        contactor = Contactor(hw["relay"], hw["feedback"], clock, board.contactor_settle_ms)
        pilot = Pilot(hw["pilot_pwm"], hw["pilot_adc"], clock, max_ma=board.rated_current_a * 1000)
        self.keys = KeyStore(data + "/key", hw["urandom"])
        from app import config as config_mod    # not at the top: forgotten after boot (app.BOOT_ONLY)
        log = ChargerLog(data + "/log", self.keys, cfg["charger_id"], cfg["log_origin"], clock)
        self.secrets = config_mod.load_secrets(cfg["secrets_path"])
        self.outbox = Outbox(data + "/outbox", cfg["validators"], quorum=cfg["ack_quorum"])
        self.records = Records(log, self.outbox, data)
        self.auth = Authoriser(cfg["auth_mode"], cfg["allow_list"])
        try:
            self.cards = CardPseudonyms(self.secrets["pseudonym_key"])
        except ValueError as exc:
            raise config_mod.ConfigError("secrets: %s" % exc)
        self.billing = Billing(data + "/tariff", cfg["tariff"])
        self.faults = FaultLog(data + "/faults")
        rcd = None
        if hw.get("rcd_fault") is not None:
            rcd = ResidualCurrent(hw["rcd_fault"], hw.get("rcd_test"), clock)
        self.charger = Charger(cfg, clock, meter, contactor, pilot, self.auth,
                               SessionStore(data + "/session"), self.faults, self.records,
                               self.billing, rcd)
        # One watch over the pilot and the coil, called by every long operation: Modbus
        # waits, signatures and verifications, socket waits, the steps of a receipt
        # (docs/firmware.md, "Safety loop").
        self.safety = safety = SafetyWatch(self.charger.safety_poll, cfg["safety_poll_us"],
                                           gc_bytes, call_bytes, cfg["gc_slice_us"])
        master.idle = safety
        master.idle_slice_us = cfg["wait_slice_us"]
        self.keys.set_idle(safety.heavy)
        atomic.set_idle(safety)         # between the chunks of every flash write
        self.records.idle = safety
        self.outbox.idle = safety
        self.link = self._uplink(cfg, clock, config_mod) if cfg["mqtt_host"] else None
        self.ota = self._ota(cfg, clock, hw.get("reset"))
        self.tariffs = self._tariffs()          # published tariffs (app/tariffs.py)
        self.reader = self._reader(hw.get("rfid_spi"))
        if self.reader is not None:
            self.reader.chip.idle = safety      # while the chip waits for a card's answer
        self._rfid_ms = cfg["rfid_poll_ms"]
        self._rfid_due = clock.ticks_ms()
        # (pseudonym or None, refusal reason or None) of the last card read: never its UID
        self.last_card = None
        self._no_key_logged = False
        self._telemetry_ms = cfg["telemetry_interval_s"] * 1000
        self._telemetry_due = clock.ticks_ms()
        self._health_due = clock.ticks_ms()
        self._booted_ms = clock.ticks_ms()
        # The heap's all-time low, not its current free size: fragmentation shows there first.
        self.heap_min = None
        self._collector(gc_bytes)       # built: the boot's frequent collections end here

    @staticmethod
    def _collector(built=None):
        """The heap's threshold set (MicroPython); (gc_bytes, call_bytes) for the watch. Called
        again with gc_bytes (built) once the charger is built: the boot's threshold ends and
        the watch alone collects from then on (a full heap still collects by itself)."""
        if not hasattr(gc, "threshold"):        # CPython: its own collector, left alone
            return 0, 0
        if built:
            gc.collect()
            gc.threshold(-1)
            return built, GC_CALL_BYTES
        share = (gc.mem_free() + gc.mem_alloc()) // GC_SHARE
        gc.threshold(BOOT_GC_BYTES)     # until the charger is built (end of __init__)
        return share, GC_CALL_BYTES

    def _uplink(self, cfg, clock, config_mod):
        # Imported here: a charger run without a network (bench, offline tests) keeps the
        # MQTT client's code off the heap.
        from uplink.mqtt import Link
        verifier = None
        if cfg["operator_key"]:
            verifier = _command_verifier(cfg, clock, self.secrets, self.safety, self._feed)
        from uplink.acks import AckChecker
        try:
            acks = AckChecker(cfg["charger_id"], self.secrets["ack_keys"])
        except ValueError as exc:
            raise config_mod.ConfigError("secrets: %s" % exc)
        return Link(cfg["charger_id"], cfg["mqtt_host"], cfg["mqtt_port"], self.outbox,
                    verifier=verifier, telemetry_ms=cfg["telemetry_interval_s"] * 1000,
                    budget_ms=cfg["mqtt_budget_ms"], user=cfg["mqtt_user"],
                    password=cfg["mqtt_password"], tls=config_mod.mqtt_tls(cfg), idle=self.safety,
                    wait_slice_us=cfg["wait_slice_us"], resend_ms=cfg["mqtt_resend_ms"],
                    ack_checker=acks)

    def _tariffs(self):
        if self.link is None or self.link.verifier is None:
            return None
        from app.tariffs import PublishedTariffs
        return PublishedTariffs(self, self.link)

    def _ota(self, cfg, clock, reset):
        # Updates over MQTT (app/ota.py): only with a network and an operator key to check them
        # by; without, the client still confirms (or rolls back) a version on trial.
        from app.ota import OtaClient
        root = ota_root(cfg)
        if not cfg.get("firmware_version"):   # OCMF GV (receipts read cfg): the selector's choice
            cfg["firmware_version"] = bootsel.active(root)[1]
        make_updater = None
        if self.link is not None and cfg["operator_key"]:
            safety = self.safety

            def make_updater():             # only while an update is in hand (app/ota.py)
                from app.update import Updater
                u = Updater(root, self.link.verifier.key, cfg["charger_id"])
                u.idle = safety
                return u
        return OtaClient(root, self.link, clock, cfg["ota_confirm_s"] * 1000, reset,
                         make_updater, cfg["ota_retry_ms"], self._healthy)

    def _healthy(self):
        # A fault raised by the loop itself (app/main.py) is the running version's own.
        f = self.charger.fault
        return not (f and f.get("code") == "loop")

    @staticmethod
    def _reader(spi):
        if spi is None:
            return None
        from drivers.card_reader import CardReader
        from drivers.mfrc522 import MFRC522
        return CardReader(MFRC522(spi))

    def _poll_reader(self):
        """Every rfid_poll_ms: a card newly presented at the reader starts or stops a session."""
        now = self.clock.ticks_ms()
        if self.clock.ticks_diff(now, self._rfid_due) < 0:
            return
        self._rfid_due = self.clock.ticks_add(now, self._rfid_ms)
        uid = self.reader.poll()
        if uid is not None:
            self.present_card(uid)

    def step(self):
        """One pass of the main loop: charger first (safety), then the reader and the network.
        The safety watch runs between the phases (and inside each long one)."""
        safety = self.safety
        safety.mark()                   # the charger's step polls the pilot and the coil first
        safety.phase = "charger"
        self.charger.step()
        safety()
        if self.reader is not None:
            safety.phase = "rfid"
            self._poll_reader()
            safety()
        link = self.link
        if link is not None:
            safety.phase = "mqtt"
            for cmd in link.poll():
                safety()
                safety.phase = "command"
                result, detail = self.execute(cmd)
                safety()
                safety.phase = "reply"
                link.reply(cmd, result, detail)
            safety()
            if self.tariffs is not None:
                self.tariffs.step(safety)
                safety()
            if self.charger.session is not None:
                safety.phase = "telemetry"
                now = self.clock.ticks_ms()
                # The status (a dict and a price) is built only when telemetry is due.
                if self.clock.ticks_diff(now, self._telemetry_due) >= 0:
                    st = self.charger.status()      # the price so far: the tariff's arithmetic
                    safety()
                    reg = self.charger.session["last_wh"]   # the meter register (OCPP bridge)
                    if link.telemetry(st["power_w"], st["energy_wh"], st["price_minor"], force=True,
                                      register_wh=reg, t=self.clock.time(),
                                      id_json=self._session_id_json()):
                        self._telemetry_due = self.clock.ticks_add(now, self._telemetry_ms)
                    safety()
            safety.phase = "ota"
            self.ota.step(self.charger.session is None and not self.charger.contactor.closed)
            safety()
            now = self.clock.ticks_ms()
            if self.clock.ticks_diff(now, self._health_due) >= 0:
                safety.phase = "health"
                self._health_due = self.clock.ticks_add(now, 1000)
                self._sample_heap()
                safety()                # the heap's size: a walk of its allocation table
                health = self.health()
                safety()
                if link.connected and link.health(health):
                    self._health_due = self.clock.ticks_add(now, self.cfg["health_interval_s"] * 1000)
                safety()                # the message sent; the end of the pass (tidy) next
        else:
            self.ota.step(self.charger.session is None and not self.charger.contactor.closed)
        safety.phase = "loop"
        safety.tidy()
        self._feed()

    def _feed(self):
        if self.watchdog is not None:
            self.watchdog.feed()

    def _session_id_json(self):
        """The running session's identification as JSON members for its telemetry: "id" (a
        card's pseudonym, ledger/cards.py, or the remote id, as the receipt's OCMF ID) and
        "it" (its OCMF type, LOCAL or CENTRAL); None in free mode. Made when telemetry is due
        and dropped with it: nothing stays on the heap through the session."""
        s = self.charger.session
        if not s["id"]:
            return None
        return json.dumps({"id": s["id"], "it": s["id_type"]})[1:-1].encode()

    def _sample_heap(self):
        free = getattr(gc, "mem_free", None)       # MicroPython only
        if free is not None:
            f = free()
            if self.heap_min is None or f < self.heap_min:
                self.heap_min = f

    def health(self):
        """The retained health message (JSON bytes)."""
        ch = self.charger
        link = self.link
        return json.dumps({
            "state": ch.state, "fault": ch.fault["code"] if ch.fault else None,
            "heap_min": self.heap_min, "outbox_pending": self.outbox.pending(),
            "log_size": self.records.log.size,
            # Commands refused by the cheap screen (no valid MAC, replays) and commands
            # dropped because the queue was full: a flood shows here.
            "cmd_junk": link.inbox.junk if link is not None else 0,
            "cmd_dropped": link.inbox.dropped if link is not None else 0,
            "uptime_s": self.clock.ticks_diff(self.clock.ticks_ms(), self._booted_ms) // 1000,
        }).encode()

    def execute(self, cmd):
        """Apply a verified operator command; (result, detail) for the cmd/result message."""
        name, args = cmd.name, cmd.args
        charger = self.charger
        try:
            if name == "authorize" or name == "start":
                charger.authorise(args["id_tag"], remote=True)
            elif name == "stop":
                if not charger.stop("remote"):
                    return "rejected", "no session"
            elif name == "current_limit":
                charger.set_current_limit(args["ma"], args.get("ttl_s"))
            elif name == "tariff":
                running = charger.session["tariff"] if charger.session else None
                self.billing.set_tariff(args["tariff"], keep=running)
            elif name == "reserve":
                self.auth.reserve(args["id_tag"], args["until"])
            elif name == "cancel_reservation":
                self.auth.cancel_reservation()
            elif name == "reset_fault":
                if not charger.reset_fault():
                    return "rejected", "no fault to clear, contact still closed, or a receipt pending"
            else:
                return "unknown-command", name
        except Refused as exc:
            return "rejected", str(exc)
        except (ValueError, TariffError) as exc:
            return "rejected", str(exc)
        return "ok", ""

    def present_card(self, uid):
        """An RFID card at the reader (its UID, hex): start or stop; returns None or the refusal
        reason. Only the card's pseudonym goes further (ledger/cards.py); without a pseudonym
        key the card is refused, once recorded in the fault log, rather than recorded by UID."""
        card_id = self.cards.of(uid)
        if card_id is None:
            if not self._no_key_logged:
                self._no_key_logged = True
                self.faults.record(self.clock.time(), "refused", NO_KEY)
            reason = NO_KEY
        else:
            try:
                self.charger.authorise(card_id)
                reason = None
            except Refused as exc:
                reason = str(exc)
        self.last_card = (card_id, reason)
        return reason

    def public_key_hex(self):
        return self.keys.public_key_hex()


def ota_root(cfg):
    """Where updates and the boot pointer live: the board's /ota (app/main.py sets it), else
    beside the charger's data (simulations, tests)."""
    return cfg["ota_root"] or cfg["data_dir"] + "/ota"


def load_config_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except OSError:
        return {}
