# Board files: every shipped board loads; every kind of bad field is refused, naming the field.
import json
import os

from support.fwtest import raises
from app.board import load_board, BoardError


def _good(boards_dir, name="esp32-devkitc-max485"):
    with open(boards_dir + "/" + name + ".json") as f:
        return json.loads(f.read())


def _bad(boards_dir, field, mutate, name="esp32-devkitc-max485"):
    d = _good(boards_dir, name)
    mutate(d)
    before = json.dumps(d)
    exc = raises(BoardError, load_board, d, "boards/x.json")
    msg = str(exc)
    assert msg.startswith("boards/x.json: field '%s': " % field), msg
    assert json.dumps(d) == before           # the input was not changed
    return msg


def test_every_shipped_board_loads(boards_dir):
    names = sorted([n for n in os.listdir(boards_dir) if n.endswith(".json")])
    assert len(names) >= 2
    chips = []
    for n in names:
        b = load_board(boards_dir + "/" + n)
        assert b.name + ".json" == n          # file name and board name agree
        assert 6 <= b.rated_current_a <= 80 and b.phases in (1, 3)
        assert b.pilot_mv(b.pilot_adc_mv_at_plus12) == 12000
        assert b.pilot_mv(b.pilot_adc_mv_at_minus12) == -12000
        assert len(set(b.pins().values())) == len(b.pins())
        chips.append(b.chip)
    assert "esp32" in chips


def test_devkitc_board_fields(boards_dir):
    b = load_board(boards_dir + "/esp32-devkitc-max485.json")
    assert (b.rs485_uart, b.rs485_tx, b.rs485_rx, b.rs485_de, b.rs485_baud) == (2, 17, 16, 4, 9600)
    assert (b.meter_model, b.meter_address) == ("SDM630", 1)
    assert (b.contactor_relay, b.contactor_feedback, b.contactor_feedback_active_low) == (26, 27, True)
    assert (b.pilot_pwm, b.pilot_adc) == (25, 36)
    assert b.rated_current_a == 32 and b.phases == 3 and b.psram is False
    assert b.ventilation is False                  # optional, absent: no state D charging
    # The calibration is linear: 0 V on the pilot sits halfway between the two points.
    assert b.pilot_mv((2300 + 250) // 2) == 0
    # One mV at the ADC is about 12 mV on the pilot: the round trip is within that step.
    assert abs(b.pilot_mv(b.adc_mv(9000)) - 9000) < 12


def _set(section, field, value):
    def mutate(d):
        if section:
            d[section][field] = value
        else:
            d[field] = value
    return mutate


def _drop(section, field):
    def mutate(d):
        del d[section][field]
    return mutate


def test_pins_that_cannot_do_the_job_are_refused(boards_dir):
    assert "input-only" in _bad(boards_dir, "contactor.relay", _set("contactor", "relay", 34))
    assert "flash" in _bad(boards_dir, "contactor.relay", _set("contactor", "relay", 6))
    assert "flash" in _bad(boards_dir, "pilot.adc", _set("pilot", "adc", 11))
    assert "does not exist" in _bad(boards_dir, "rs485.de", _set("rs485", "de", 20))
    assert "does not exist" in _bad(boards_dir, "rs485.de", _set("rs485", "de", 40))
    assert "console" in _bad(boards_dir, "rs485.tx", _set("rs485", "tx", 1))
    assert "already used by 'contactor.relay'" in _bad(
        boards_dir, "pilot.pwm", _set("pilot", "pwm", 26))
    assert "already used" in _bad(boards_dir, "pilot.adc", _set("pilot", "adc", 16))
    assert "chatter" in _bad(boards_dir, "contactor.relay", _set("contactor", "relay", 12))
    assert "ADC1" in _bad(boards_dir, "pilot.adc", _set("pilot", "adc", 14))
    assert "pull" in _bad(boards_dir, "contactor.feedback_pull",
                          _set("contactor", "feedback", 39))


def test_psram_takes_pins(boards_dir):
    def psram(d):
        d["psram"] = True
    msg = _bad(boards_dir, "rs485.tx", psram)
    assert "PSRAM" in msg
    # ESP32-S3: octal PSRAM takes GPIO33-37.
    assert "PSRAM" in _bad(boards_dir, "contactor.feedback", _set("contactor", "feedback", 35),
                           "esp32s3-devkitc-em340")
    assert "ADC1" in _bad(boards_dir, "pilot.adc", _set("pilot", "adc", 12),
                          "esp32s3-devkitc-em340")


def test_bad_values_name_their_field(boards_dir):
    assert "standard rate" in _bad(boards_dir, "rs485.baud", _set("rs485", "baud", 9601))
    _bad(boards_dir, "rs485.uart", _set("rs485", "uart", 0))
    _bad(boards_dir, "rs485.parity", _set("rs485", "parity", "X"))
    _bad(boards_dir, "rs485.stop_bits", _set("rs485", "stop_bits", 3))
    _bad(boards_dir, "meter.address", _set("meter", "address", 0))
    _bad(boards_dir, "meter.address", _set("meter", "address", 248))
    _bad(boards_dir, "rated_current_a", _set(None, "rated_current_a", 5))
    _bad(boards_dir, "rated_current_a", _set(None, "rated_current_a", 81))
    _bad(boards_dir, "phases", _set(None, "phases", 2))
    _bad(boards_dir, "contactor.settle_ms", _set("contactor", "settle_ms", 5))
    _bad(boards_dir, "chip", _set(None, "chip", "esp8266"))
    _bad(boards_dir, "schema", _set(None, "schema", 2))


def test_meter_model_must_be_known_and_cover_the_phases(boards_dir):
    assert "unknown meter model" in _bad(boards_dir, "meter.model",
                                         _set("meter", "model", "SDM999"))
    assert "one phase" in _bad(boards_dir, "meter.model", _set("meter", "model", "SDM120"))
    d = _good(boards_dir)
    d["meter"]["model"] = "B24"                # an alias: stored under its canonical name
    assert load_board(d).meter_model == "B23"


def test_wrong_types_missing_and_unknown_fields(boards_dir):
    assert "integer" in _bad(boards_dir, "contactor.relay", _set("contactor", "relay", "26"))
    _bad(boards_dir, "contactor.relay", _set("contactor", "relay", 26.0))
    _bad(boards_dir, "contactor.relay", _set("contactor", "relay", True))
    _bad(boards_dir, "contactor.relay", _set("contactor", "relay", None))
    _bad(boards_dir, "contactor.relay_active_low", _set("contactor", "relay_active_low", 0))
    _bad(boards_dir, "name", _set(None, "name", ""))
    _bad(boards_dir, "ventilation", _set(None, "ventilation", "yes"))
    assert "missing" in _bad(boards_dir, "pilot.adc", _drop("pilot", "adc"))
    assert "unknown field" in _bad(boards_dir, "contactor.realy", _set("contactor", "realy", 3))
    assert "unknown field" in _bad(boards_dir, "wifi", _set(None, "wifi", {}))

    def no_section(d):
        del d["meter"]
    assert "missing" in _bad(boards_dir, "meter", no_section)
    _bad(boards_dir, "pilot", _set(None, "pilot", [25, 36]))


def test_pilot_calibration_must_see_the_whole_band(boards_dir):
    # +13 V (top of state A's band) would saturate the ADC above its usable 2450 mV.
    assert "usable" in _bad(boards_dir, "pilot.adc_mv_at_plus12",
                            _set("pilot", "adc_mv_at_plus12", 2400))
    assert "usable" in _bad(boards_dir, "pilot.adc_mv_at_minus12",
                            _set("pilot", "adc_mv_at_minus12", 150))
    assert "apart" in _bad(boards_dir, "pilot.adc_mv_at_plus12",
                           _set("pilot", "adc_mv_at_plus12", 1200))


def test_bad_files_are_clear_errors(tmp_path):
    p = tmp_path + "/broken.json"
    with open(p, "w") as f:
        f.write('{"schema": 1, "name": ')
    msg = str(raises(BoardError, load_board, p))
    assert msg.startswith(p + ": not valid JSON"), msg
    msg = str(raises(BoardError, load_board, tmp_path + "/absent.json"))
    assert "cannot read" in msg
    with open(p, "w") as f:
        f.write("[1, 2]")
    assert "JSON object" in str(raises(BoardError, load_board, p))


def test_optional_residual_current_monitor(boards_dir):
    b = load_board(boards_dir + "/esp32-devkitc-max485.json")
    assert (b.rcd_fault, b.rcd_test, b.rcd_trip_ms, b.rcd_fault_active_low) == (34, 33, 100, True)
    assert b.pins()["rcd.fault"] == 34
    e = load_board(boards_dir + "/olimex-esp32-evb.json")
    assert e.rcd_fault is None and e.rcd_test is None and "rcd.fault" not in e.pins()
    assert "input-only" in _bad(boards_dir, "rcd.test", _set("rcd", "test", 35))
    assert "pull" in _bad(boards_dir, "rcd.fault_pull", _set("rcd", "fault_pull", "up"))
    assert "already used" in _bad(boards_dir, "rcd.test", _set("rcd", "test", 26))
    _bad(boards_dir, "rcd.trip_ms", _set("rcd", "trip_ms", 5000))
    _bad(boards_dir, "rcd.fault_pull", _set("rcd", "fault_pull", "sideways"))
    assert "unknown field" in _bad(boards_dir, "rcd.reset", _set("rcd", "reset", 12))
    d = _good(boards_dir)
    d["rcd"]["test"] = None                       # a module that tests itself
    assert load_board(d).rcd_test is None


def test_optional_rfid_reader(boards_dir):
    b = load_board(_good(boards_dir), "boards/x.json")
    assert (b.rfid_driver, b.rfid_spi, b.rfid_cs, b.rfid_baud) == ("mfrc522", 2, 21, 1000000)
    assert b.pins()["rfid.miso"] == 19
    no_reader = _good(boards_dir)
    del no_reader["rfid"]
    assert load_board(no_reader, "boards/x.json").rfid_driver is None
    assert "unknown" in _bad(boards_dir, "rfid.driver", _set("rfid", "driver", "pn532"))
    _bad(boards_dir, "rfid.spi", _set("rfid", "spi", 0))
    _bad(boards_dir, "rfid.baud", _set("rfid", "baud", 20000000))
    assert "input-only" in _bad(boards_dir, "rfid.cs", _set("rfid", "cs", 35))
    assert "already used" in _bad(boards_dir, "rfid.sck", _set("rfid", "sck", 26))
    _bad(boards_dir, "rfid.mosi", _drop("rfid", "mosi"))


def test_inputs_on_strapping_pins_are_refused(boards_dir):
    # Whatever drives an input holds it at reset, when the chip reads its boot mode: GPIO 12
    # pulled up by an aux contact selects 1.8 V flash on the ESP32, GPIO 0 held low download mode.
    for pin in (0, 2, 5, 12, 15):
        assert "strapping" in _bad(boards_dir, "contactor.feedback",
                                   _set("contactor", "feedback", pin))
    assert "strapping" in _bad(boards_dir, "rcd.fault", _set("rcd", "fault", 12))
    assert "strapping" in _bad(boards_dir, "rs485.rx", _set("rs485", "rx", 15))
    assert "strapping" in _bad(boards_dir, "contactor.feedback", _set("contactor", "feedback", 46),
                               "esp32s3-devkitc-em340")
    d = _good(boards_dir)
    d["rs485"]["de"] = 5                          # an output the ESP32 drives: allowed
    assert load_board(d).rs485_de == 5


def test_watchdog_timeout_is_checked_before_the_wdt_starts(boards_dir):
    from app import config
    b = load_board(boards_dir + "/esp32-devkitc-max485.json")
    base = {"charger_id": "CP-1", "meter_serial": "S1"}
    assert config.load(b, None, base)["watchdog_ms"] == 10000      # the default is valid
    floor = config.watchdog_floor_ms(config.load(b, None, base))
    for bad in (0, -1, floor - 1, config.WATCHDOG_MAX_MS + 1, "10000", 10000.0, True, None):
        o = dict(base)
        o["watchdog_ms"] = bad
        msg = str(raises(config.ConfigError, config.load, b, None, o))
        assert "'watchdog_ms'" in msg, msg
    o = dict(base)
    o["mqtt_budget_ms"] = 5000                    # a longer pass needs a longer watchdog
    assert "'watchdog_ms'" in str(raises(config.ConfigError, config.load, b, None, o))
    o["watchdog_ms"] = 25000
    assert config.load(b, None, o)["watchdog_ms"] == 25000
