"""Seeded mutations of genuine inputs (plain random.Random: the same seed gives the same
inputs, so a failure found by `make fuzz` is reproduced by its seed)."""
from __future__ import annotations

import random
from typing import List, Sequence

# Tokens that broke parsers elsewhere: huge and odd numbers, deep nesting, wrong types,
# separators of the formats here.
TOKENS: Sequence[bytes] = (
    b"1e999999", b"-1e1000000", b"9" * 40, b"-0", b"0.0000001", b"1E+5", b"NaN", b"Infinity",
    b"[" * 200, b"{" * 100, b"]", b"}", b"null", b"true", b"false", b'""', b"[]", b"{}", b'"\\u0000"',
    b'"\\ud800"', b"\xff\xfe", b"|", b"||", b"\n", b"\n\n", b"\x00", b"\xe2\x80\x94 ", b"-1",
    b"4294967296", b"18446744073709551616", b"2147483648", b"0x10", b"1.5", b'"7"', b"7",
)


def mutate(rng: random.Random, seed: bytes, rounds: int = 0) -> bytes:
    """One mutant of seed: 1-4 edits (flip, insert a token, delete or duplicate a span,
    splice in random bytes, truncate)."""
    data = bytearray(seed)
    for _ in range(rounds or rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at:at] = rng.choice(TOKENS)
        elif op == 2:
            del data[at:at + rng.randint(1, 16)]
        elif op == 3:
            span = bytes(data[at:at + rng.randint(1, 32)])
            data[at:at] = span * rng.randint(1, 4)
        elif op == 4:
            data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        elif op == 5:
            end = at + rng.randint(1, 12)
            data[at:end] = rng.choice(TOKENS)
        else:
            del data[at:]
    return bytes(data)


def batch(seed: int, seeds: Sequence[bytes], n: int, raw_share: float = 0.1) -> List[bytes]:
    """n inputs: the seeds themselves, mostly mutants, and some raw random bytes."""
    rng = random.Random(seed)
    out = list(seeds[:n])
    while len(out) < n:
        if rng.random() < raw_share:
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))))
        else:
            out.append(mutate(rng, rng.choice(seeds)))
    return out
