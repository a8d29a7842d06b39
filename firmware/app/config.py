# Charger configuration: embedded defaults, then the board file, then config.json on flash.
import json

from ledger import ids

DEFAULTS = {
    "charger_id": None,            # required: unique id, e.g. "CP-0001"
    "evse_id": "",
    "auth_mode": "allow-list",     # allow-list | remote | free
    "allow_list": [],              # card pseudonyms (ledger/cards.py), never UIDs
    "meter_poll_ms": 1000,
    "max_meter_failures": 5,       # consecutive failed reads before the meter is a fault
    # Stale and inconsistent meters (session/plausibility.py, FlowCheck). An EV that charges
    # draws at least 6 A (IEC 61851-1), 1.38 kW on one phase: above 1 kW reported power, with
    # the contactor closed and the EV in C, the register must move within meter_stale_s
    # (>= 33 Wh at 1 kW: more than three steps of a meter counting in 10 Wh).
    "meter_stale_power_w": 1000,
    "meter_stale_s": 120,
    # Over each meter_check_window_s of flow, the register's gain and the energy its reported
    # power implies may differ by 20 Wh plus meter_check_tolerance_pct of the larger.
    "meter_check_window_s": 300,
    "meter_check_tolerance_pct": 25,
    "journal_interval_s": 60,      # running-session readings to flash at most this often
    "recover_settle_ms": 2000,     # after boot, let the pilot settle before resuming
    "fault_hold_ms": 3000,         # state F shown this long after a fault before looking again
    "pwm_off_grace_ms": 6000,      # an EV still drawing this long after the PWM went: open
    # The safe current when a site controller's limit lease runs out (it went silent): the
    # site's share for this charger if all of them fall back at once (0: pause).
    "fallback_current_ma": 6000,
    "meter_serial": None,          # required: the meter's serial number (OCMF MS)
    "meter_timeout_ms": 200,
    "meter_retries": 2,
    "validators": [],              # validator ids whose ack frees a receipt; [] = any one with a key
    "ack_quorum": 0,               # how many of `validators` must ack: 0 = all, else k of n
    "secrets_path": "/secrets.json",   # ack keys and the pseudonym key (load_secrets), never published
    "operator_key": None,          # hex SPKI DER / point of the operator's command key
    "log_origin": None,            # C2SP checkpoint origin; default ledger.ids.default_origin
    "loop_ms": 20,                 # main loop period: pilot debounce is 3 polls (app/main.py)
    "safety_poll_us": 10000,       # the safety watch polls pilot and coil at most this often
    "wait_slice_us": 5000,         # socket and Modbus waits call the watch between slices
    "gc_slice_us": 5000,           # a collection calls the watch this often (gcsplit's slices)
    "watchdog_ms": 10000,
    # The tariff until the operator sends one: 0.39 EUR/kWh, 0.29 at night, 19 % VAT.
    "tariff": '{"v":1,"currency":"EUR","utc_offset_min":60,"session_fee_minor":0,'
              '"bands":[{"start_min":0,"kwh_price_milli":29000},'
              '{"start_min":360,"kwh_price_milli":39000},{"start_min":1320,"kwh_price_milli":29000}],'
              '"idle_min_price_milli":10000,"idle_grace_min":30,"tax_bp":1900}',
    "telemetry_interval_s": 10,
    "rfid_poll_ms": 250,           # how often the RFID reader looks for a card
    "ota_confirm_s": 300,          # healthy run after which an update on trial stays (app/ota.py)
    "ota_root": None,              # updates and the boot pointer; None: <data_dir>/ota
    "ota_retry_ms": 5000,          # no answer to a chunk request for this long: ask again
    "health_interval_s": 60,       # retained health message (state, fault, heap low-water mark)
    "nominal_voltage_v": 230,
    "wifi_ssid": None,             # the ESP32's WiFi (app/main.py); None: no WiFi
    "wifi_password": "",
    "ntp_host": "pool.ntp.org",    # the clock is "S" (synchronised) in receipts once NTP answers
    "mqtt_host": "127.0.0.1",
    "mqtt_port": 1883,
    "mqtt_user": None,             # broker login; the ACL template expects the charger id
    "mqtt_password": "",
    "mqtt_tls": False,             # TLS to the broker (port 8883 by convention)
    "mqtt_ca": None,               # hex DER of the CA certificate the broker's must chain to
    "mqtt_tls_name": None,         # name the broker's certificate must carry; None: mqtt_host
    "mqtt_budget_ms": 500,         # the most one network poll may block the charging loop
    "mqtt_resend_ms": 30000,       # no ack moved the outbox for this long: resend from the oldest
    "data_dir": "/data",
}


class ConfigError(Exception):
    pass


def _check_mqtt(cfg):
    user = cfg["mqtt_user"]
    if user is not None and (not isinstance(user, str) or not user):
        raise ConfigError("config: mqtt_user must be a non-empty string or null")
    if not isinstance(cfg["mqtt_password"], str):
        raise ConfigError("config: mqtt_password must be a string")
    if cfg["mqtt_tls"]:
        ca = cfg["mqtt_ca"]
        if not isinstance(ca, str) or len(ca) < 64 or len(ca) % 2:
            raise ConfigError("config: mqtt_tls needs mqtt_ca, the CA certificate as DER hex")
        try:
            int(ca[:16], 16)
        except ValueError:
            raise ConfigError("config: mqtt_ca is not hex")


def _is_hex(text):
    for c in text:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True


def _allow_list(entries):
    """The allow-list as upper-case pseudonyms. An entry that is not one (a card UID left from
    before pseudonyms, a typo) is refused, and not quoted: it may be a card number."""
    if not isinstance(entries, list):
        raise ConfigError("config: allow_list must be a list of card pseudonyms")
    out = []
    for n, entry in enumerate(entries):
        if not (isinstance(entry, str) and len(entry) == 32 and _is_hex(entry)):
            raise ConfigError("config: allow_list entry %d is not a card pseudonym (32 hex "
                              "digits, `chargeproof pseudonym`)" % n)
        out.append(entry.upper())
    return out


def mqtt_tls(cfg):
    """A hal.net.Tls for the configured broker, or None when TLS is off."""
    if not cfg["mqtt_tls"]:
        return None
    import binascii
    from hal.net import Tls
    return Tls(binascii.unhexlify(cfg["mqtt_ca"]), cfg["mqtt_tls_name"] or cfg["mqtt_host"])


def load(board, path=None, overrides=None):
    """Merge defaults, the board's fields and the JSON file at path (if any), then overrides."""
    cfg = dict(DEFAULTS)
    cfg["rated_current_a"] = board.rated_current_a
    cfg["meter_model"] = board.meter_model
    cfg["meter_address"] = board.meter_address
    cfg["phases"] = board.phases
    cfg["ventilation"] = board.ventilation
    if path:
        try:
            with open(path) as f:          # a plain JSON file, written by host_tools/provision/deploy.py
                raw = f.read()
        except OSError:
            raw = None                     # no file: embedded defaults and the board
        except UnicodeError:
            raise ConfigError("%s: not UTF-8 text" % path)
        if raw:
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                raise ConfigError("%s: not JSON: %s" % (path, exc))
            if not isinstance(doc, dict):
                raise ConfigError("%s: a config file is a JSON object" % path)
            cfg.update(doc)
    if overrides:
        cfg.update(overrides)
    for field in ("charger_id", "meter_serial"):
        if not cfg[field] or not isinstance(cfg[field], str):
            raise ConfigError("config: field '%s' is required (a string)" % field)
    try:
        ids.check_id(cfg["charger_id"])
    except ids.IdError as exc:
        raise ConfigError("config: field 'charger_id': %s" % exc)
    _check_mqtt(cfg)
    cfg["allow_list"] = _allow_list(cfg["allow_list"])
    fb = cfg["fallback_current_ma"]
    if not isinstance(fb, int) or not (fb == 0 or 6000 <= fb <= cfg["rated_current_a"] * 1000):
        raise ConfigError("config: fallback_current_ma must be 0 or 6000..%d"
                          % (cfg["rated_current_a"] * 1000))
    _check_watchdog(cfg)
    if not cfg["log_origin"]:
        cfg["log_origin"] = ids.default_origin(cfg["charger_id"])
    return cfg


# The watchdog resets the board when the loop stops feeding it. Too short and a legitimate pass
# (a meter read with its retries, an MQTT poll, the loop's sleep) resets a healthy charger,
# again and again; too long and a hung loop goes unnoticed. machine.WDT itself refuses
# timeouts <= 0 and cannot be stopped or changed once started, so a bad value is refused here,
# before the WDT exists.
WATCHDOG_MAX_MS = 60000


def watchdog_floor_ms(cfg):
    """The shortest watchdog_ms allowed: four times the longest legitimate pass."""
    n = cfg["meter_retries"] + 1
    return 4 * (cfg["loop_ms"] + cfg["mqtt_budget_ms"] + cfg["meter_timeout_ms"] * n)


def _check_watchdog(cfg):
    for field in ("watchdog_ms", "loop_ms", "mqtt_budget_ms", "meter_timeout_ms", "meter_retries"):
        v = cfg[field]
        if not isinstance(v, int) or v is True or v is False or v < 0:
            raise ConfigError("config: field '%s' must be a non-negative integer, not %r" % (field, v))
    w = cfg["watchdog_ms"]
    lo = watchdog_floor_ms(cfg)
    if w < lo or w > WATCHDOG_MAX_MS:
        raise ConfigError("config: field 'watchdog_ms': %d outside %d..%d ms (at least four "
                          "loop passes of loop_ms + mqtt_budget_ms + meter_timeout_ms x "
                          "(meter_retries + 1))" % (w, lo, WATCHDOG_MAX_MS))


def load_secrets(path):
    """The charger's secrets file (written by host_tools/provision, never published):
    {"ack_keys": {validator: {key id: "<64 hex>"}}, "pseudonym_key": "<64 hex>" or null,
     "cmd_key": "<64 hex>" or null}.
    A missing file means no secrets: no ack can free a receipt, card UIDs cannot be
    pseudonymised (cards are then refused rather than published), and commands are checked
    by their signature alone (no command MAC screens out junk first)."""
    out = {"ack_keys": {}, "pseudonym_key": None, "cmd_key": None}
    try:
        with open(path) as f:
            raw = f.read()
    except OSError:
        return out
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("%s: not JSON: %s" % (path, exc))
    if not isinstance(obj, dict):
        raise ConfigError("%s: must be a JSON object" % path)
    for key in obj:
        if key not in out:
            raise ConfigError("%s: unknown field %r" % (path, key))
    out.update(obj)
    return out
