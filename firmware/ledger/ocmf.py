# OCMF record (Open Charge Metering Format, S.A.F.E. e.V., OCMF-en.md) for a finished session:
#   OCMF|<payload JSON>|<signature JSON>
# The signature covers the payload section's bytes exactly as transmitted, so the payload is
# built ONCE here as a string with a fixed key order and never re-serialised (MicroPython's
# json does not keep key order). Two readings of the total import register: B (begin) and
# E (end). The signature is ECDSA-secp256r1-SHA256, DER, hex (SA/SE/SM/SD).
from binascii import hexlify

from store import atomic

FORMAT_VERSION = "1.0"        # Transparenzsoftware 1.4.1 refuses FV above 1.3
OBIS_IMPORT = "01-00:01.08.00*FF"   # total active energy import (IEC 62056-6-1)
SIG_ALGORITHM = "ECDSA-secp256r1-SHA256"
_CLOCK = "SIU"                # time status: synchronised, informative, unknown (OCMF table 19)
_METER_STATUS = "NGTDRMXIOSEF"  # OCMF table 10
_TX = "BCXELRAPST"            # OCMF table 7, TX


class OcmfError(Exception):
    pass


def uncarriable(v):
    """The first character of str v that OCMF cannot carry (printable ASCII only, without
    '"', '\\' and '|'), or None. Checked on its bytes in C (min, max, in: a character
    outside ASCII encodes to bytes above 126): a loop over the characters in Python, or min
    and max over the str (a 1-character str made per character), cost ~0.7 us per character,
    ~200 us for a payload's fields between two safety polls (~40 ms on an ESP32)."""
    b = v.encode()
    if b and (min(b) < 32 or max(b) > 126) or b'"' in b or b"\\" in b or b"|" in b:
        for c in v:                 # only to name it in the error
            if not " " <= c <= "~" or c in '"\\|':
                return c
    return None


def _text(name, v, maxlen=64, empty=False):
    # Only printable ASCII without '"', '\\' and '|': the section separator must never
    # appear inside a section, and no escaping means the bytes are what every parser sees.
    if type(v) is not str or len(v) > maxlen or (not v and not empty):
        raise OcmfError("%s must be a string of 1..%d characters" % (name, maxlen))
    c = uncarriable(v)
    if c is not None:
        raise OcmfError("%s contains a character OCMF cannot carry: %r" % (name, c))
    return '"' + v + '"'


def _int(name, v, lo=0):
    if type(v) is not int or v < lo:
        raise OcmfError("%s must be an integer >= %d" % (name, lo))
    return v


def civil(t):
    """(year, month, day, hh, mm, ss) of epoch second t, UTC (proleptic Gregorian; the
    days-to-civil conversion of H. Hinnant's 'chrono-compatible low-level date algorithms')."""
    days, sod = divmod(t, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m, d, sod // 3600, sod // 60 % 60, sod % 60


def iso_time(t, clock_status):
    """OCMF TM: '2018-07-24T13:22:04,000+0000 S' (UTC, milliseconds, clock status letter)."""
    if type(clock_status) is not str or len(clock_status) != 1 or clock_status not in _CLOCK:
        raise OcmfError("clock status must be one of S, I, U")
    return "%04d-%02d-%02dT%02d:%02d:%02d,000+0000 %s" % (civil(_int("time", t)) + (clock_status,))


def kwh(wh, decimals=3):
    """Integer Wh as an exact kWh JSON number with `decimals` places (no float on the way)."""
    _int("reading", wh)
    if not 0 <= decimals <= 3:
        raise OcmfError("decimals must be 0..3")
    div = (1, 10, 100, 1000)[3 - decimals]
    if wh % div:
        raise OcmfError("%d Wh cannot be written with %d decimals in kWh" % (wh, decimals))
    if decimals == 0:
        return "%d" % (wh // 1000)
    q = wh // div
    scale = (1, 10, 100, 1000)[decimals]
    return "%d.%0*d" % (q // scale, decimals, q % scale)


def _reading(tm, tx, rv, rt, status):
    # Fields repeated from the first reading are written again: verifiers differ in how
    # they inherit omitted fields, and the record stays far below OCPP's size limit.
    return ('{"TM":"%s","TX":"%s","RV":%s,"RI":"%s","RU":"kWh","RT":%s,"EF":"","ST":"%s"}'
            % (tm, tx, rv, OBIS_IMPORT, rt, status))


def payload(s, pagination):
    """The payload section (str) for session dict s (keys documented in ledger/log.py)."""
    _int("pagination", pagination, 1)
    decimals = s.get("rv_decimals", 3)
    begin_wh, end_wh = _int("begin_wh", s["begin_wh"]), _int("end_wh", s["end_wh"])
    if end_wh < begin_wh:
        raise OcmfError("end reading below begin reading")
    if s["end_time"] < s["begin_time"]:
        raise OcmfError("session ends before it begins")
    clock = s.get("clock_status", "U")
    status = s.get("meter_status", "G")
    if type(status) is not str or len(status) != 1 or status not in _METER_STATUS:
        raise OcmfError("meter status must be an OCMF table 10 letter")
    end_tx = s.get("end_tx", "E")
    if type(end_tx) is not str or len(end_tx) != 1 or end_tx not in "ELRAP":
        raise OcmfError("end reason TX must be E, L, R, A or P")
    rt = _text("current_type", s.get("current_type", "AC"), 2)
    user = s.get("user_id", "")
    flags = s.get("id_flags", [])
    if type(flags) is not list or len(flags) > 4:
        raise OcmfError("id_flags must be a list of at most 4 identifiers")
    parts = ['{"FV":"', FORMAT_VERSION, '","GI":', _text("gateway_id", s.get("gateway_id", "ChargeProof")),
             ',"GS":', _text("charger_id", s["charger_id"]),
             ',"GV":', _text("firmware", s.get("firmware", "0"), 32),
             ',"PG":"T%d"' % pagination]
    if "meter_vendor" in s:
        parts.append(',"MV":' + _text("meter_vendor", s["meter_vendor"]))
    parts.append(',"MM":' + _text("meter_model", s["meter_model"]))
    parts.append(',"MS":' + _text("meter_serial", s["meter_serial"]))
    if "meter_firmware" in s:
        parts.append(',"MF":' + _text("meter_firmware", s["meter_firmware"], 32))
    atomic.idle()               # the safety watch between the pieces (~50 us each on 32 bits)
    parts.append(',"IS":%s' % ("true" if user else "false"))
    if "id_level" in s:
        parts.append(',"IL":' + _text("id_level", s["id_level"], 16))
    parts.append(',"IF":[' + ",".join([_text("id_flag", f, 16) for f in flags]) + "]")
    parts.append(',"IT":' + _text("user_id_type", s.get("user_id_type", "NONE") if user else "NONE", 16))
    if user:
        parts.append(',"ID":' + _text("user_id", user, 40))
    if "evse_id" in s:
        parts.append(',"CT":"EVSEID","CI":' + _text("evse_id", s["evse_id"], 40))
    atomic.idle()
    parts.append(',"RD":[')
    parts.append(_reading(iso_time(s["begin_time"], clock), "B", kwh(begin_wh, decimals), rt, status))
    parts.append(",")
    parts.append(_reading(iso_time(s["end_time"], clock), end_tx, kwh(end_wh, decimals), rt, status))
    parts.append("]}")
    return "".join(parts)


def sign(payload_str, signer):
    """The whole record 'OCMF|payload|signature' (str), signed by signer.sign(bytes) -> DER."""
    sd = hexlify(signer.sign(payload_str.encode())).decode().upper()
    return ('OCMF|%s|{"SA":"%s","SE":"hex","SM":"application/x-der","SD":"%s"}'
            % (payload_str, SIG_ALGORITHM, sd))


def split(record):
    """(payload str, signature section str) of an OCMF record, exactly as transmitted."""
    if type(record) is not str or not record.startswith("OCMF|"):
        raise OcmfError("not an OCMF record")
    body = record[5:]
    cut = body.rfind("|")
    if cut < 0:
        raise OcmfError("OCMF record has no signature section")
    return body[:cut], body[cut + 1:]
