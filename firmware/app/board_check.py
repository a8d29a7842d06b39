# The checks behind app.board.load_board: every field of a board file, against the chip's pin
# rules. Imported only while a board file is loaded (see app/board.py).
from app.board_schema import BoardError, OUTPUT_PINS, INPUT_PINS

SCHEMA = 1

# Per chip: existing GPIOs, pins that can only be inputs, pins taken by the SPI flash (and by
# PSRAM when fitted), the console UART, pins that must not drive a contactor because they are
# strapping pins or toggle during boot, strapping pins (read at reset: no input may drive
# them), ADC1 pins (ADC2 is unusable while WiFi runs), the ADC's
# usable input range at 11 dB attenuation in mV, UART ids free for RS-485 (UART0 = REPL).
# Sources: ESP32 datasheet v4.x sections 2.2 / 2.4 (strapping) and "ADC characteristics"
# (150..2450 mV at 11 dB); ESP32-S3 datasheet v1.x (GPIO 26-32 flash, 33-37 octal PSRAM,
# strapping 0/3/45/46, ADC1 on GPIO 1-10).
_CHIPS = {
    "esp32": {
        "gpio": tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40)),
        "input_only": tuple(range(34, 40)),
        "no_pull": tuple(range(34, 40)),
        "flash": tuple(range(6, 12)),
        "psram": (16, 17),
        "console": (1, 3),
        "boot_glitch": (0, 2, 5, 12, 14, 15),
        "strapping": (0, 2, 5, 12, 15),
        "adc1": tuple(range(32, 40)),
        "adc_mv": (150, 2450),
        "uarts": (1, 2),
    },
    "esp32s3": {
        "gpio": tuple(range(0, 22)) + tuple(range(26, 49)),
        "input_only": (),
        "no_pull": (),
        "flash": tuple(range(26, 33)),
        "psram": tuple(range(33, 38)),       # octal PSRAM modules (N8R8 and alike)
        "console": (19, 20, 43, 44),         # USB serial/JTAG and UART0
        "boot_glitch": (0, 3, 45, 46),
        "strapping": (0, 3, 45, 46),
        "adc1": tuple(range(1, 11)),
        "adc_mv": (100, 2900),
        "uarts": (1, 2),
    },
}

_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_PULLS = ("up", "down", "none")

# section -> ((field, kind, required), ...); kinds are checked in _check_field.
_SECTIONS = {
    "rs485": (("uart", "int", 1), ("tx", "pin", 1), ("rx", "pin", 1), ("de", "pin?", 1),
              ("baud", "int", 1), ("parity", "str", 1), ("stop_bits", "int", 1)),
    "meter": (("model", "str", 1), ("address", "int", 1)),
    "contactor": (("relay", "pin", 1), ("relay_active_low", "bool", 1), ("feedback", "pin", 1),
                  ("feedback_active_low", "bool", 1), ("feedback_pull", "str", 1),
                  ("settle_ms", "int", 1)),
    "pilot": (("pwm", "pin", 1), ("pwm_inverted", "bool", 1), ("adc", "pin", 1),
              ("adc_mv_at_plus12", "int", 1), ("adc_mv_at_minus12", "int", 1)),
    # Optional: a residual DC monitor (RDC-DD) wired to the ESP32 (drivers/rcd.py).
    "rcd": (("fault", "pin", 1), ("fault_active_low", "bool", 1), ("fault_pull", "str", 1),
            ("test", "pin?", 1), ("test_active_low", "bool", 1), ("trip_ms", "int", 1)),
    # Optional: an RFID reader on SPI (drivers/mfrc522.py).
    "rfid": (("driver", "str", 1), ("spi", "int", 1), ("sck", "pin", 1), ("mosi", "pin", 1),
             ("miso", "pin", 1), ("cs", "pin", 1), ("rst", "pin?", 0), ("baud", "int", 0)),
}
_OPTIONAL_SECTIONS = ("rcd", "rfid")
_RFID_DRIVERS = ("mfrc522",)
_TOP = (("schema", "int", 1), ("name", "str", 1), ("description", "str", 0),
        ("chip", "str", 1), ("psram", "bool", 0), ("rated_current_a", "int", 1),
        ("phases", "int", 1), ("ventilation", "bool", 0), ("firmware", "str", 0))
# How the firmware goes onto the board (host_tools/provision/fit.py): frozen into the image,
# a ROMFS image, or .mpy files in /lib (imported into the heap: PSRAM boards only).
_FIRMWARE_MODES = ("frozen", "romfs", "mpy")


class Validator:
    def __init__(self, where, data, board):
        self.where = where
        self.data = data
        self.b = board

    def fail(self, field, msg):
        raise BoardError("%s: field '%s': %s" % (self.where, field, msg))

    def board(self):
        d = self.data
        known = [f[0] for f in _TOP] + list(_SECTIONS)
        for key in d:
            if key not in known:
                self.fail(key, "unknown field (known: %s)" % ", ".join(sorted(known)))
        for spec in _TOP:
            self._field(d, "", spec)
        b = self.b
        if b.schema != SCHEMA:
            self.fail("schema", "version %r not supported (this firmware reads %d)" % (
                b.schema, SCHEMA))
        if b.chip not in _CHIPS:
            self.fail("chip", "%r unknown (known: %s)" % (b.chip, ", ".join(sorted(_CHIPS))))
        if b.description is None:
            b.description = ""
        b.psram = bool(b.psram)
        b.ventilation = bool(b.ventilation)
        if b.firmware is None:
            b.firmware = "frozen"
        if b.firmware not in _FIRMWARE_MODES:
            self.fail("firmware", "%r unknown (one of %s)" % (b.firmware, ", ".join(_FIRMWARE_MODES)))
        if b.firmware == "mpy" and not b.psram:
            self.fail("firmware", "\"mpy\" imports ~130 KB of bytecode into the heap: only a "
                      "board with PSRAM has room; use \"frozen\" or \"romfs\"")
        for sec in _SECTIONS:
            if sec not in d and sec in _OPTIONAL_SECTIONS:
                for spec in _SECTIONS[sec]:
                    setattr(b, sec + "_" + spec[0], None)
                continue
            if sec not in d:
                self.fail(sec, "missing")
            if not isinstance(d[sec], dict):
                self.fail(sec, "must be an object")
            names = [f[0] for f in _SECTIONS[sec]]
            for key in d[sec]:
                if key not in names:
                    self.fail(sec + "." + key, "unknown field (known: %s)" % ", ".join(names))
            for spec in _SECTIONS[sec]:
                self._field(d[sec], sec, spec)
        self._ranges()
        self._pins()
        self._meter()
        self._pilot_calibration()
        return b

    def _field(self, d, sec, spec):
        name, kind, required = spec
        path = sec + "." + name if sec else name
        attr = sec + "_" + name if sec else name
        if name not in d:
            if required:
                self.fail(path, "missing")
            setattr(self.b, attr, None)
            return
        v = d[name]
        if kind == "pin?" and v is None:
            setattr(self.b, attr, None)
            return
        if kind == "bool":
            ok = v is True or v is False
        elif kind == "str":
            ok = isinstance(v, str) and len(v) > 0
        else:                       # int or pin: JSON numbers without a fraction, not bools
            ok = isinstance(v, int) and not (v is True or v is False)
        if not ok:
            self.fail(path, "must be %s, not %r" % (
                {"bool": "true or false", "str": "a non-empty string"}.get(kind, "an integer"),
                v))
        setattr(self.b, attr, v)

    def _ranges(self):
        b = self.b
        chip = _CHIPS[b.chip]
        if b.rs485_uart not in chip["uarts"]:
            self.fail("rs485.uart", "UART %d not usable on the %s (use %s; UART0 is the REPL)"
                      % (b.rs485_uart, b.chip, " or ".join([str(u) for u in chip["uarts"]])))
        if b.rs485_baud not in _BAUDS:
            self.fail("rs485.baud", "%d is not a standard rate (%s)" % (
                b.rs485_baud, ", ".join([str(r) for r in _BAUDS])))
        if b.rs485_parity not in ("N", "E", "O"):
            self.fail("rs485.parity", "must be \"N\", \"E\" or \"O\", not %r" % b.rs485_parity)
        if b.rs485_stop_bits not in (1, 2):
            self.fail("rs485.stop_bits", "must be 1 or 2, not %d" % b.rs485_stop_bits)
        if not 1 <= b.meter_address <= 247:    # Modbus unicast addresses
            self.fail("meter.address", "%d outside the Modbus range 1..247" % b.meter_address)
        if not 6 <= b.rated_current_a <= 80:  # IEC 61851-1 Annex A pilot range
            self.fail("rated_current_a", "%d A outside 6..80 A" % b.rated_current_a)
        if b.phases not in (1, 3):
            self.fail("phases", "must be 1 or 3, not %d" % b.phases)
        if b.contactor_feedback_pull not in _PULLS:
            self.fail("contactor.feedback_pull", "must be one of %s, not %r" % (
                ", ".join(_PULLS), b.contactor_feedback_pull))
        if not 10 <= b.contactor_settle_ms <= 1000:
            self.fail("contactor.settle_ms", "%d outside 10..1000 ms" % b.contactor_settle_ms)
        if b.rcd_fault is not None:
            if b.rcd_fault_pull not in _PULLS:
                self.fail("rcd.fault_pull", "must be one of %s, not %r" % (
                    ", ".join(_PULLS), b.rcd_fault_pull))
            if not 10 <= b.rcd_trip_ms <= 1000:
                self.fail("rcd.trip_ms", "%d outside 10..1000 ms" % b.rcd_trip_ms)
        if b.rfid_driver is not None:
            self._rfid()

    def _rfid(self):
        b = self.b
        if b.rfid_driver not in _RFID_DRIVERS:
            self.fail("rfid.driver", "%r unknown (known: %s)" % (
                b.rfid_driver, ", ".join(_RFID_DRIVERS)))
        if b.rfid_spi not in (1, 2):      # SPI2/SPI3 (HSPI/VSPI); SPI0/1 serve the flash
            self.fail("rfid.spi", "SPI bus %d not usable (1 or 2)" % b.rfid_spi)
        if b.rfid_baud is None:
            b.rfid_baud = 1000000
        if not 100000 <= b.rfid_baud <= 10000000:   # MFRC522 datasheet: SPI up to 10 Mbit/s
            self.fail("rfid.baud", "%d outside 100000..10000000" % b.rfid_baud)

    def _pins(self):
        b = self.b
        chip = _CHIPS[b.chip]
        used = {}
        for name in OUTPUT_PINS + INPUT_PINS:
            pin = getattr(b, name.replace(".", "_"))
            if pin is None:
                continue
            if pin not in chip["gpio"]:
                self.fail(name, "GPIO %d does not exist on the %s" % (pin, b.chip))
            if pin in chip["flash"]:
                self.fail(name, "GPIO %d belongs to the SPI flash" % pin)
            if b.psram and pin in chip["psram"]:
                self.fail(name, "GPIO %d is used by the PSRAM on this module" % pin)
            if pin in chip["console"]:
                self.fail(name, "GPIO %d is the console (REPL, mpremote)" % pin)
            if name in INPUT_PINS and pin in chip["strapping"]:
                # Whatever drives an input (an aux contact with its pull-up, a transceiver's RO,
                # the pilot divider) holds it at reset, when the chip reads its boot mode and,
                # on GPIO 12, the flash voltage.
                self.fail(name, "GPIO %d is a strapping pin: what drives this input at reset "
                          "would set the boot mode" % pin)
            if name in OUTPUT_PINS and pin in chip["input_only"]:
                self.fail(name, "GPIO %d is input-only, it cannot drive an output" % pin)
            if pin in used:
                self.fail(name, "GPIO %d is already used by '%s'" % (pin, used[pin]))
            used[pin] = name
        if b.contactor_relay in chip["boot_glitch"]:
            self.fail("contactor.relay", "GPIO %d is a strapping pin or toggles during boot: "
                      "the contactor would chatter" % b.contactor_relay)
        if b.pilot_adc not in chip["adc1"]:
            self.fail("pilot.adc", "GPIO %d is not an ADC1 pin (ADC2 stops working with "
                      "WiFi on)" % b.pilot_adc)
        for field in ("contactor.feedback", "rcd.fault"):
            attr = field.replace(".", "_")
            pin = getattr(b, attr)
            if pin in chip["no_pull"] and getattr(b, attr + "_pull") != "none":
                self.fail(field + "_pull", "GPIO %d has no internal pull resistor: fit one and "
                          "set \"none\"" % pin)

    def _meter(self):
        b = self.b
        try:
            from drivers import meters
        except ImportError:           # meter tables not on this image: checked when used
            return
        try:
            b.meter_model = meters.canonical(b.meter_model)
        except ValueError as exc:
            self.fail("meter.model", str(exc))
        if meters.MODELS[b.meter_model]["phases"] < b.phases:
            self.fail("meter.model", "%s measures one phase; this board has %d" % (
                b.meter_model, b.phases))

    def _pilot_calibration(self):
        b = self.b
        lo, hi = _CHIPS[b.chip]["adc_mv"]
        p = b.pilot_adc_mv_at_plus12
        m = b.pilot_adc_mv_at_minus12
        if abs(p - m) < 1000:
            self.fail("pilot.adc_mv_at_plus12", "+12 V and -12 V must be >= 1000 mV apart at "
                      "the ADC (got %d and %d mV)" % (p, m))
        # The state bands reach +-13 V (IEC 61851-1 Annex A); both ends must stay inside the
        # ADC's usable range or the band edges cannot be told apart.
        for volts, field in ((13000, "pilot.adc_mv_at_plus12"), (-13000, "pilot.adc_mv_at_minus12")):
            at = b.adc_mv(volts)
            if not lo <= at <= hi:
                self.fail(field, "%+d mV on the pilot would be %d mV at the ADC, outside the "
                          "%s's usable %d..%d mV" % (volts, at, b.chip, lo, hi))
