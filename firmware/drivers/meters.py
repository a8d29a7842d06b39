# Energy meter register maps, as data, and the read planner.
#
# A map is a table of rows: (quantity, function code, 0-based address, data type, word order,
# scale as a power of ten, unit). Wiring or firmware variants of a meter are new rows or new
# models, never code. Modbus sends each register high byte first; "word order" says which
# register of a 32/64-bit value comes first: HI = most significant word first, LO = least.
#
# Quantities read: energy (total import register), power (total active), voltage1..3 (line to
# neutral), current1..3. A single-phase meter has phase 1 only.
#
# Per model: phases, max_regs (registers one request may ask for, from the maker's manual),
# max_gap (unwanted registers the planner may read across to save a transaction; 0 when the
# meter refuses addresses it does not define).
# The exception lives in drivers/meter.py: this module is forgotten after boot (app.BOOT_ONLY)
# and imported again on demand, and a class of its own would then be a new one each time.
from drivers.meter import UnknownMeterModel

F32 = "f32"
U16 = "u16"
S16 = "s16"
U32 = "u32"
S32 = "s32"
U64 = "u64"
HI = "hi"
LO = "lo"

# Eastron SDM630-Modbus V2 / SDM630MCT: "SDM630 Modbus Protocol" (Eastron, input registers
# 3xxxx, FC 04, IEEE 754 float32, high word first); "Each request for data must be restricted to
# 40 parameters" (80 registers); parameters not valid for the wiring read as zero.
_SDM630 = (
    ("voltage1", 4, 0x0000, F32, HI, 0, "V"),     # 30001 Phase 1 line to neutral volts
    ("voltage2", 4, 0x0002, F32, HI, 0, "V"),     # 30003
    ("voltage3", 4, 0x0004, F32, HI, 0, "V"),     # 30005
    ("current1", 4, 0x0006, F32, HI, 0, "A"),     # 30007 Phase 1 current
    ("current2", 4, 0x0008, F32, HI, 0, "A"),     # 30009
    ("current3", 4, 0x000A, F32, HI, 0, "A"),     # 30011
    ("power", 4, 0x0034, F32, HI, 0, "W"),        # 30053 Total system power
    ("energy", 4, 0x0048, F32, HI, 0, "kWh"),     # 30073 Total import kWh
)

# Eastron SDM72D-M: "SDM72D-M User Manual V1.5", part 3 (B+G e-tech): same input register
# layout as the SDM630; "Each request for data must be restricted to 30 parameters" (60 regs).
_SDM72DM = _SDM630

# Eastron SDM120-Modbus: "SDM120 Modbus Protocol" (Eastron): 30001 voltage, 30007 current,
# 30013 active power, 30073 import active energy. The manual we could check does not state the
# request limit, so the SDM72D-M's 30 parameters is used: the map then needs 2 requests.
_SDM120 = (
    ("voltage1", 4, 0x0000, F32, HI, 0, "V"),     # 30001 Voltage
    ("current1", 4, 0x0006, F32, HI, 0, "A"),     # 30007 Current
    ("power", 4, 0x000C, F32, HI, 0, "W"),        # 30013 Active power
    ("energy", 4, 0x0048, F32, HI, 0, "kWh"),     # 30073 Import active energy
)

# ABB B21/B23/B24: "B-series meters, Modbus register map" (ABB 2CMC485003M0201), holding
# registers (FC 03), integers high word first. Energy uint64 in 0.01 kWh; voltage uint32 0.1 V;
# current uint32 0.01 A; active power int32 0.01 W. A value the meter cannot provide reads as
# all ones (unsigned) or the type's maximum (signed); the range checks in meter.py reject it.
_ABB_B23 = (
    ("energy", 3, 0x5000, U64, HI, -2, "kWh"),    # Active import kWh, total
    ("voltage1", 3, 0x5B00, U32, HI, -1, "V"),    # Voltage L1-N
    ("voltage2", 3, 0x5B02, U32, HI, -1, "V"),
    ("voltage3", 3, 0x5B04, U32, HI, -1, "V"),
    ("current1", 3, 0x5B0C, U32, HI, -2, "A"),    # Current L1
    ("current2", 3, 0x5B0E, U32, HI, -2, "A"),
    ("current3", 3, 0x5B10, U32, HI, -2, "A"),
    ("power", 3, 0x5B14, S32, HI, -2, "W"),       # Active power, total
)

# Carlo Gavazzi EM340: "EM300 Series and ET300 Series Communication Protocol" (v2 r17), input
# registers (FC 04, FC 03 reads the same), INT32 least significant word first.
_EM340 = (
    ("voltage1", 4, 0x0000, S32, LO, -1, "V"),    # V L1-N, 0.1 V
    ("voltage2", 4, 0x0002, S32, LO, -1, "V"),
    ("voltage3", 4, 0x0004, S32, LO, -1, "V"),
    ("current1", 4, 0x000C, S32, LO, -3, "A"),    # A L1, mA
    ("current2", 4, 0x000E, S32, LO, -3, "A"),
    ("current3", 4, 0x0010, S32, LO, -3, "A"),
    ("power", 4, 0x0028, S32, LO, -1, "W"),       # W sys, 0.1 W
    ("energy", 4, 0x0034, S32, LO, -1, "kWh"),    # kWh (+) TOT, 0.1 kWh
)

MODELS = {
    "SDM630": {"rows": _SDM630, "phases": 3, "max_regs": 80, "max_gap": 80},
    "SDM72D-M": {"rows": _SDM72DM, "phases": 3, "max_regs": 60, "max_gap": 60},
    "SDM120": {"rows": _SDM120, "phases": 1, "max_regs": 60, "max_gap": 60},
    "B23": {"rows": _ABB_B23, "phases": 3, "max_regs": 125, "max_gap": 16},
    # Conservative request size: the whole map would be one 54-register read.
    "EM340": {"rows": _EM340, "phases": 3, "max_regs": 50, "max_gap": 40},
}
ALIASES = {"B24": "B23", "SDM72DM": "SDM72D-M", "SDM72D": "SDM72D-M"}

# Quantity -> slot in a reading: 0 energy_wh, 1 power_w, 2..4 voltage_dv, 5..7 current_ma.
SLOTS = {"energy": 0, "power": 1, "voltage1": 2, "voltage2": 3, "voltage3": 4,
         "current1": 5, "current2": 6, "current3": 7}
# Unit -> (kind, factor to the integer unit the firmware carries: Wh, W, dV, mA).
UNITS = {"kWh": ("energy", 1000), "Wh": ("energy", 1), "W": ("power", 1),
         "kW": ("power", 1000), "V": ("voltage", 10), "A": ("current", 1000)}
TYPES = {U16: (0, 1), S16: (1, 1), U32: (2, 2), S32: (3, 2), U64: (4, 4), F32: (5, 2)}
# type name -> (code used by the decoder, registers)


class MapError(ValueError):
    """A register map row that cannot be right (checked when the map is planned)."""


def canonical(name):
    name = ALIASES.get(name, name)
    if name not in MODELS:
        raise UnknownMeterModel("unknown meter model %r (known: %s)" % (
            name, ", ".join(sorted(MODELS))))
    return name


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _ratio(scale_exp, unit, quantity):
    """raw * 10**scale_exp <unit>  ->  (mul, div) to the firmware's integer unit."""
    if unit not in UNITS or not quantity.startswith(UNITS[unit][0]):
        raise MapError("unit %r does not fit quantity %r" % (unit, quantity))
    mul = UNITS[unit][1]
    div = 1
    if scale_exp >= 0:
        mul *= 10 ** scale_exp
    else:
        div = 10 ** -scale_exp
    g = _gcd(mul, div)
    return mul // g, div // g


class Plan:
    """Precomputed reads for one model.

    txns:     list of (function, start, count)
    fields:   per transaction, a list of (slot, byte offset, type code, low word first, mul, div)
    energy:   (function, start, count, field) for the one-transaction energy read
    """

    def __init__(self, name):
        self.name = canonical(name)
        model = MODELS[self.name]
        self.phases = model["phases"]
        max_regs = model["max_regs"]
        max_gap = model["max_gap"]
        rows = sorted(model["rows"], key=lambda r: (r[1], r[2]))
        seen = {}
        for row in rows:
            if len(row) != 7 or row[0] not in SLOTS or row[3] not in TYPES or row[4] not in (HI, LO):
                raise MapError("bad row in %s: %r" % (self.name, row))
            if row[1] not in (3, 4):
                raise MapError("function must be 3 or 4 in %s: %r" % (self.name, row))
            if row[0] in seen:
                raise MapError("quantity %s twice in %s" % (row[0], self.name))
            seen[row[0]] = row
        if "energy" not in seen:
            raise MapError("%s has no energy register" % self.name)
        # Greedy grouping over rows sorted by (function, address): a row joins the open
        # transaction when the function matches, the gap is allowed and the size still fits.
        self.txns = []
        self.fields = []
        start = end = fc = None
        group = []
        for row in rows:
            regs = TYPES[row[3]][1]
            if (fc == row[1] and row[2] >= end and row[2] - end <= max_gap
                    and row[2] + regs - start <= max_regs):
                end = max(end, row[2] + regs)
                group.append(row)
                continue
            if group:
                self._close(fc, start, end, group)
            fc, start, end, group = row[1], row[2], row[2] + regs, [row]
        self._close(fc, start, end, group)
        e = seen["energy"]
        self.energy = (e[1], e[2], TYPES[e[3]][1], self._field(e, e[2]))

    def _field(self, row, start):
        mul, div = _ratio(row[5], row[6], row[0])
        return (SLOTS[row[0]], 2 * (row[2] - start), TYPES[row[3]][0], row[4] == LO, mul, div)

    def _close(self, fc, start, end, group):
        self.txns.append((fc, start, end - start))
        self.fields.append([self._field(row, start) for row in group])


_plans = {}


def plan(name):
    """The (cached) read plan for a model name or alias."""
    name = canonical(name)
    p = _plans.get(name)
    if p is None:
        p = _plans[name] = Plan(name)
    return p
