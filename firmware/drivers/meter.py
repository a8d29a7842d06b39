# An energy meter on a Modbus RTU master: reads the planned registers and turns them into
# integers: energy_wh, power_w, voltage_dv[3], current_ma[3].
#
# Floats never carry energy: a float32 register is decoded from its bits into an exact
# rational (mantissa * 2**exponent) and rounded once to the integer unit, with integer
# arithmetic, so the result is the same on CPython and on the ESP32's single-precision floats.
from drivers.modbus import ModbusError

# Plausibility limits: beyond these a value is a fault (or a meter's "not available" marker).
MAX_ENERGY_WH = 10 ** 11          # 100 GWh: far above any meter's register range
MAX_POWER_W = 10 ** 7             # 10 MW
MAX_VOLTAGE_DV = 10000            # 1000 V line to neutral
MAX_CURRENT_MA = 10 ** 7          # 10 kA


class UnknownMeterModel(ValueError):
    """A meter model with no register map (drivers/meters.py raises it)."""


class MeterError(Exception):
    """A failed meter read: the reading object is left as it was. Raised as such when the meter
    answered with a value that cannot be true (NaN, infinity, out of range)."""


class MeterCommError(MeterError):
    """The meter did not answer properly; .cause is the ModbusError (ModbusTimeout,
    ModbusCRCError, ModbusFrameError, ModbusEchoError, ModbusException with .code)."""

    def __init__(self, cause):
        super().__init__("meter communication failed: %s: %s" % (type(cause).__name__, cause))
        self.cause = cause


# What a caller catches to treat the meter as faulty: MeterError covers all of it.
FAULTS = (MeterError,)


class Reading:
    """Last good values; one object per Meter, updated in place on every good read()."""

    def __init__(self, phases):
        self.phases = phases
        self.energy_wh = 0
        self.power_w = 0
        self.voltage_dv = [0, 0, 0]
        self.current_ma = [0, 0, 0]
        self.count = 0              # good reads so far

    def __repr__(self):
        return "Reading(energy_wh=%d, power_w=%d, voltage_dv=%r, current_ma=%r)" % (
            self.energy_wh, self.power_w, self.voltage_dv, self.current_ma)


# On the ESP32 a small integer has 31 bits (-2**30 .. 2**30 - 1): anything larger is a heap
# object. A meter is read every second of every session, so the decoding below keeps every
# intermediate value under _SMALL for every plausible reading (it allocates nothing), and
# takes the exact big-integer path only for values far beyond what a charger's meter shows.
_SMALL = 1 << 29


def _round_div(num, den):
    """num / den rounded half away from zero, den > 0 (no 2 * num: it would leave the small
    integers for num >= 2**29)."""
    if num >= 0:
        q = num // den
        return q + 1 if 2 * (num - q * den) >= den else q
    num = -num
    q = num // den
    return -(q + 1) if 2 * (num - q * den) >= den else -q


def _f32_exact(frac, exp, neg, mul, div):
    """frac * 2**exp * mul / div rounded, in big integers (the rare large values)."""
    num = frac * mul
    den = div
    if exp >= 0:
        num <<= exp
    else:
        den <<= -exp
    return _round_div(-num if neg else num, den)


def _f32(b0, b1, b2, b3, mul, div):
    """IEEE 754 binary32 from its bytes (sign, 8-bit biased exponent, 23-bit fraction) times
    mul / div, rounded half away from zero, as an exact rational: the same result on CPython
    and on the ESP32 whose floats are single precision (and heap objects)."""
    neg = b0 & 0x80
    exp = ((b0 & 0x7F) << 1) | (b1 >> 7)
    frac = ((b1 & 0x7F) << 16) | (b2 << 8) | b3
    if exp == 0xFF:
        raise MeterError("meter sent NaN or infinity")
    if exp:
        frac |= 0x800000
        exp -= 150                                   # bias 127 + 23 fraction bits
    elif not frac:
        return 0                                     # +0.0 and -0.0 (idle currents, power)
    else:
        exp = -149                                   # subnormal
    if exp >= 0 or mul >> 16:
        return _f32_exact(frac, exp, neg, mul, div)
    # A = frac * mul as H * 2**12 + L (L < 2**12, H < 2**29); x = A / 2**s, s = -exp >= 1.
    # q = floor(x) and b = its first bit after the point decide the rounding of x / div:
    # round(x / div) = floor((2q + b + div) / (2 div)) (the lower bits cannot carry).
    s = -exp
    lo = (frac & 0xFFF) * mul
    h = (frac >> 12) * mul + (lo >> 12)
    lo &= 0xFFF
    if s >= 12:
        q = h >> (s - 12)
        b = (h >> (s - 13)) & 1 if s > 12 else lo >> 11
    elif h >> (17 + s):
        return _f32_exact(frac, exp, neg, mul, div)
    else:
        q = (h << (12 - s)) | (lo >> s)
        b = (lo >> (s - 1)) & 1
    if q >= _SMALL - div:
        return _f32_exact(frac, exp, neg, mul, div)
    r = (2 * q + b + div) // (2 * div)
    return -r if neg else r


def decode(buf, off, kind, low_first, mul, div):
    """One value from register bytes buf[off:], scaled by mul/div to an integer."""
    if kind == 0 or kind == 1:                       # u16 / s16
        v = (buf[off] << 8) | buf[off + 1]
        if kind == 1 and v & 0x8000:
            v -= 0x10000
        return _round_div(v * mul, div)
    if kind == 4:                                    # u64: four words, most significant first
        v = 0
        for i in range(4):
            w = (3 - i) if low_first else i
            v = (v << 16) + ((buf[off + 2 * w] << 8) | buf[off + 2 * w + 1])
        return _round_div(v * mul, div)
    hi = off + 2 if low_first else off
    lo = off if low_first else off + 2
    if kind == 5:
        return _f32(buf[hi], buf[hi + 1], buf[lo], buf[lo + 1], mul, div)
    b0 = buf[hi]
    if kind == 3 and b0 & 0x80:                      # s32: the sign is in the top byte
        b0 -= 0x100
    v = (b0 << 24) + (buf[hi + 1] << 16) + (buf[lo] << 8) + buf[lo + 1]
    return _round_div(v * mul, div)


def check(values):
    """Raise MeterError if the decoded slot values cannot be a real reading.

    A total register lower than the last one is not judged here: the session layer owns energy
    accounting and treats it as its own fault ("meter-backwards").
    """
    e = values[0]
    if not 0 <= e < MAX_ENERGY_WH:
        raise MeterError("energy register out of range: %d Wh" % e)
    if not -MAX_POWER_W <= values[1] <= MAX_POWER_W:
        raise MeterError("power out of range: %d W" % values[1])
    for i in range(2, 5):
        if not 0 <= values[i] <= MAX_VOLTAGE_DV:
            raise MeterError("voltage out of range: %d dV" % values[i])
    for i in range(5, 8):
        if not -MAX_CURRENT_MA <= values[i] <= MAX_CURRENT_MA:
            raise MeterError("current out of range: %d mA" % values[i])


class ReadPlan:
    """drivers/meters.py's Plan as data: its transactions and fields, without the planner's
    class (a Plan would keep that module's maps and functions alive on the heap)."""

    def __init__(self, plan):
        self.name = plan.name
        self.phases = plan.phases
        self.txns = plan.txns
        self.fields = plan.fields
        self.energy = plan.energy


class Meter:
    """Meter(master, model_name, address): read() -> Reading (the same object every time).

    read() raises MeterCommError (a MeterError carrying the ModbusError) when the meter does not
    answer properly and MeterError when it answers nonsense; the Reading keeps its last good values.
    """

    def __init__(self, master, model_name, address):
        if not 1 <= address <= 247:
            raise MeterError("meter address must be 1..247, not %r" % (address,))
        # drivers.meters (every model's map and the planner) is imported for the plan only and
        # forgotten after boot (app.BOOT_ONLY): what the reads need is copied out of it.
        from drivers import meters
        self.plan = ReadPlan(meters.plan(model_name))   # UnknownMeterModel for a name we lack
        self.model = self.plan.name
        self.master = master
        self.address = address
        self.reading = Reading(self.plan.phases)
        self._scratch = [0] * 8

    def read(self):
        """All quantities, in as few transactions as the plan has; commits only when all are good."""
        s = self._scratch
        for i in range(8):
            s[i] = 0
        p = self.plan
        master = self.master
        idle = master.idle            # the safety watch (ModbusRTU.idle), or None
        for t in range(len(p.txns)):
            fc, start, count = p.txns[t]
            try:
                buf = master.read_registers(self.address, fc, start, count)
            except ModbusError as exc:
                raise MeterCommError(exc)
            if idle is not None:      # the reply is in and checked: its decoding is a piece
                idle()
            for slot, off, kind, low_first, mul, div in p.fields[t]:
                s[slot] = decode(buf, off, kind, low_first, mul, div)
        if idle is not None:
            idle()
        check(s)
        r = self.reading
        r.energy_wh = s[0]
        r.power_w = s[1]
        v = r.voltage_dv
        c = r.current_ma
        for i in range(3):
            v[i] = s[2 + i]
            c[i] = s[5 + i]
        r.count += 1
        return r

    def read_energy_wh(self):
        """The total import register alone, in one transaction (for session begin/end)."""
        fc, start, count, field = self.plan.energy
        try:
            buf = self.master.read_registers(self.address, fc, start, count)
        except ModbusError as exc:
            raise MeterCommError(exc)
        e = decode(buf, field[1], field[2], field[3], field[4], field[5])
        if not 0 <= e < MAX_ENERGY_WH:
            raise MeterError("energy register out of range: %d Wh" % e)
        self.reading.energy_wh = e
        return e
