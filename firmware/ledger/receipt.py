# The ChargeProof receipt: what OCMF lacks, around the session's signed OCMF record.
#   <receipt JSON>|<charger's DER signature over the JSON bytes, hex>
# The JSON is built once, keys in this fixed order (the host parses it, never re-serialises):
#   {"v":1,"charger":str,"seq":int,"index":int,"begin":epoch s,"end":epoch s,
#    "charge_end":epoch s,"energy_wh":int,"segments":[[epoch s,Wh],...],"tariff":sha256 hex,
#    "currency":str,"net":int,"tax":int,"price":int,"reason":str,"ocmf":"OCMF|...|..."}
# seq = the OCMF pagination counter (PG "T<seq>"), index = the receipt's leaf in the log.
# Money in integer minor units; price = net + tax. The whole record (JSON|signature) is the
# Merkle leaf's data, so the log commits to the signed receipt.
import json
from binascii import hexlify, unhexlify

from ledger import der
from ledger.ocmf import uncarriable
from ledger.p256 import N as _N
from store import atomic

VERSION = 1


class ReceiptError(Exception):
    pass


def _str(name, v, maxlen=64):
    if type(v) is not str or not 0 < len(v) <= maxlen:
        raise ReceiptError("%s must be a string of 1..%d characters" % (name, maxlen))
    c = uncarriable(v)
    if c is not None:
        raise ReceiptError("%s contains %r" % (name, c))
    return '"' + v + '"'


def _int(name, v):
    if type(v) is not int or v < 0:
        raise ReceiptError("%s must be a non-negative integer" % name)
    return "%d" % v


def body(charger, seq, index, s, ocmf_record):
    """The receipt JSON (str) for session dict s (ledger/log.py) and its signed OCMF record."""
    segs = s.get("segments")
    energy = s["end_wh"] - s["begin_wh"]
    if segs is None:
        segs = [[s["begin_time"], energy]]
    if type(segs) is not list or not segs:
        raise ReceiptError("segments must be a non-empty list")
    total = 0
    seg_txt = []
    for seg in segs:
        if type(seg) not in (list, tuple) or len(seg) != 2:
            raise ReceiptError("a segment is [time, Wh]")
        seg_txt.append("[%s,%s]" % (_int("segment time", seg[0]), _int("segment Wh", seg[1])))
        total += seg[1]
    if total != energy:
        raise ReceiptError("segments sum to %d Wh, readings to %d Wh" % (total, energy))
    charge_end = s.get("charge_end_time", s["end_time"])
    if not s["begin_time"] <= charge_end <= s["end_time"]:
        raise ReceiptError("charge end outside the session")
    tariff = s["tariff"]
    if type(tariff) is not str:
        tariff = tariff.hash
    if len(tariff) != 64:
        raise ReceiptError("tariff hash must be 64 hex digits")
    if s["net_minor"] + s["tax_minor"] != s["price_minor"]:
        raise ReceiptError("price is not net + tax")
    atomic.idle()               # the safety watch between the pieces (~40 us each on 32 bits)
    ocmf_json = json.dumps(ocmf_record)
    atomic.idle()
    return "".join((
        '{"v":%d,"charger":' % VERSION, _str("charger", charger),
        ',"seq":', _int("seq", seq), ',"index":', _int("index", index),
        ',"begin":', _int("begin_time", s["begin_time"]), ',"end":', _int("end_time", s["end_time"]),
        ',"charge_end":', _int("charge_end_time", charge_end),
        ',"energy_wh":', _int("energy", energy), ',"segments":[', ",".join(seg_txt), "]",
        ',"tariff":', _str("tariff", tariff), ',"currency":', _str("currency", s["currency"], 3),
        ',"net":', _int("net_minor", s["net_minor"]), ',"tax":', _int("tax_minor", s["tax_minor"]),
        ',"price":', _int("price_minor", s["price_minor"]),
        ',"reason":', _str("stop_reason", s.get("stop_reason", "Local"), 32),
        ',"ocmf":', ocmf_json, "}"))


def sign(body_str, signer):
    """The receipt record (bytes): body|hex(DER signature over the body bytes).
    The signature is put in low-S form (s <= n/2): (r, n - s) verifies as well, and a record
    re-signed that way by anyone on the path would be a different Merkle leaf with the same
    content, i.e. a fake "fork" pinned on an honest charger. Verifiers accept only low S."""
    b = body_str.encode()
    sig = signer.sign(b)
    r, s = der.decode_sig(sig)
    if s > _N >> 1:
        sig = der.encode_sig(r, _N - s)
    return b"|".join((b, hexlify(sig)))


def split(record):
    """(body bytes, DER signature) of a receipt record."""
    if isinstance(record, str):
        record = record.encode()
    cut = record.rfind(b"|")
    if cut < 0 or not record.startswith(b"{"):
        raise ReceiptError("not a receipt record")
    try:
        return record[:cut], unhexlify(record[cut + 1:])
    except ValueError:
        raise ReceiptError("receipt signature is not hex")
