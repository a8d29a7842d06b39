"""Hostile messages for the validator, made from genuine ones: what an attacker on the broker
can publish without any key (issue 8). Used by the attack tests, the benches and the fuzzer.

Each function takes genuine bytes (a receipt or checkpoint a SimCharger made) and returns the
attacker's variant; none of them needs the charger's key.
"""
from __future__ import annotations

import json
import os
import random
import re
from typing import List, Optional

_RV = re.compile(rb'(\\"RV\\":)([-0-9.eE+]+)')
_EF = re.compile(rb'(\\"EF\\":)(\\"\\")')


def with_reading(receipt: bytes, value: bytes, unit: Optional[bytes] = None) -> bytes:
    """The receipt with its OCMF begin reading RV replaced by `value` (e.g. b"1e999999") and
    optionally its unit RU: the signature no longer verifies, but a validator that converts
    numbers before checking it spends minutes on one message (int() of 1e999999 Wh)."""
    out, n = _RV.subn(lambda m: m.group(1) + value, receipt, count=1)
    if not n:
        raise ValueError("no OCMF RV in this receipt")
    if unit is not None:
        out = out.replace(b'\\"RU\\":\\"kWh\\"', b'\\"RU\\":\\"' + unit + b'\\"', 1)
    return out


def with_integer_ef(receipt: bytes) -> bytes:
    """The OCMF begin reading's error flags EF as an integer instead of a string."""
    out, n = _EF.subn(lambda m: m.group(1) + b"7", receipt, count=1)
    if not n:
        raise ValueError("no OCMF EF in this receipt")
    return out


def nested(depth: int = 100000) -> bytes:
    """A receipt-shaped message whose JSON nests `depth` levels deep."""
    return b'{"v":' + b"[" * depth + b"]" * depth + b"}|3006020101020101"


def nested_ocmf(receipt: bytes, depth: int = 5000) -> bytes:
    """The receipt with a deeply nested value inside its OCMF payload."""
    return receipt.replace(b'\\"CT\\":', b'\\"XX\\":' + b"[" * depth + b"]" * depth + b',\\"CT\\":', 1)


def flipped(message: bytes, at: Optional[int] = None, rng: Optional[random.Random] = None) -> bytes:
    """An unauthenticated copy with one byte changed (inside the signed part)."""
    rng = rng or random.Random(1)
    body_end = message.rfind(b"|") if message.startswith(b"{") else message.find(b"\n\n")
    body_end = body_end if body_end > 0 else len(message)
    i = at if at is not None else rng.randrange(10, body_end)
    b = bytearray(message)
    b[i] = b[i] ^ 0x01 if b[i] ^ 0x01 not in (0x7C, 0x0A) else b[i] ^ 0x02   # keep '|' and '\n' out
    return bytes(b)


def junk(rng: random.Random, size: int = 8000) -> bytes:
    """Random bytes that look a little like a receipt."""
    return b'{"v":1,"charger":"' + os.urandom(8).hex().encode() + b'"' + bytes(
        rng.getrandbits(8) for _ in range(max(0, size - 40))) + b"|00"


def junk_batch(seed: int, n: int, size: int = 8000) -> List[bytes]:
    rng = random.Random(seed)
    template = junk(rng, size)
    out = []
    for i in range(n):
        b = bytearray(template)
        b[20 + i % (len(b) - 30)] ^= 1 + i % 255
        out.append(bytes(b))
    return out


def junk_command(rng: random.Random, charger: str, n: int, with_mac: bool, pad: int = 0,
                 exp: int = 1800003600) -> bytes:
    """A well-formed junk command for charger: valid JSON with the right charger, a fresh
    counter and a DER signature of two random numbers (what anyone can make without the
    operator key); with_mac: behind 64 random hex digits, so the charger has to compute the
    MAC to refuse it."""
    args = {"ma": 16000} if not pad else {"ma": 16000, "ttl_s": 60, "pad": "x" * pad}
    body = json.dumps({"charger": charger, "n": n, "exp": exp, "cmd": "current_limit",
                       "args": args}, separators=(",", ":"), sort_keys=True).encode()
    r, s = (rng.getrandbits(255) | 1 << 254 for _ in range(2))
    rb, sb = r.to_bytes(32, "big"), s.to_bytes(32, "big")
    der = b"\x30\x44\x02\x20" + rb + b"\x02\x20" + sb
    msg = body + b"|" + der.hex().encode()
    if with_mac:
        msg = rng.randbytes(32).hex().encode() + b"|" + msg
    return msg
