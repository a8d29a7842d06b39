# Board files (boards/*.json): what is wired where on one charger board, checked field by field
# at boot so a wrong file stops the charger with a message naming the field, instead of a relay
# on a flash pin or an ADC that cannot see -12 V failing later. Schema: boards/README.md.
#
#   board = load_board("boards/esp32-devkitc-max485.json")   # or load_board(dict, "where")
#   board.rs485_tx, board.contactor_relay, board.pilot_adc, board.meter_model,
#   board.rated_current_a, board.phases, ...  (section.field -> attribute section_field)
#   board.pilot_mv(adc_mv) -> pilot line mV from the ADC pin's mV (two-point calibration)
#   board.pins() -> {"contactor.relay": 26, ...}
# Raises BoardError("<path>: field 'contactor.relay': ...") on any bad field.
#
# The checks and chip tables live in app/board_check.py, imported for the load and dropped
# again: they run once at boot, and their ~8 KB of bytecode is heap the charger needs later.
import json

from app import forget
from app.board_schema import BoardError, INPUT_PINS, OUTPUT_PINS   # BoardError: for callers


class Board:
    """Validated board description; attributes are section_field (see the module header)."""

    def pilot_mv(self, adc_mv):
        """Pilot line voltage (mV) for a reading at the ADC pin (mV), by the two calibration
        points (+12 V and -12 V on the pilot); integer arithmetic."""
        p = self.pilot_adc_mv_at_plus12
        m = self.pilot_adc_mv_at_minus12
        return -12000 + (adc_mv - m) * 24000 // (p - m)

    def adc_mv(self, pilot_mv):
        """The inverse of pilot_mv: ADC pin mV expected for a pilot voltage (mV)."""
        p = self.pilot_adc_mv_at_plus12
        m = self.pilot_adc_mv_at_minus12
        return m + (pilot_mv + 12000) * (p - m) // 24000

    def pins(self):
        """{"section.field": gpio} for every pin the board uses."""
        out = {}
        for name in OUTPUT_PINS + INPUT_PINS:
            v = getattr(self, name.replace(".", "_"))
            if v is not None:
                out[name] = v
        return out


def load_board(src, where=None):
    """Board from a JSON file path or an already-parsed dict; raises BoardError."""
    if isinstance(src, str):
        where = where or src
        try:
            with open(src) as f:
                text = f.read()
        except (OSError, UnicodeError) as exc:
            raise BoardError("%s: cannot read board file (%s)" % (where, exc))
        try:
            src = json.loads(text)
        except ValueError as exc:
            raise BoardError("%s: not valid JSON (%s)" % (where, exc))
    where = where or "board"
    if not isinstance(src, dict):
        raise BoardError("%s: a board file is a JSON object" % where)
    if not _string_keys(src):             # MicroPython's json accepts {1: 2}
        raise BoardError("%s: every key must be a string" % where)
    from app import board_check
    try:
        return board_check.Validator(where, src, Board()).board()
    finally:
        forget("app.board_check")


def _string_keys(x):
    if isinstance(x, dict):
        return all(isinstance(k, str) and _string_keys(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_string_keys(v) for v in x)
    return True
