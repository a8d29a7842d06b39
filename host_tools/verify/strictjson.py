"""JSON from the network, read with its bounds checked before anything is converted.

Python's json turns any number token into an int or (here) a Decimal, and the C scanner
recurses once per nesting level. A 540-byte receipt with `"RV":1e999999` then costs a
minute of big-number work downstream, and `[[[[...` a RecursionError. So: the nesting depth
is measured on the text first (strings skipped), every number token is checked for length
and exponent before it is converted, and NaN/Infinity are refused.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Callable, Union

MAX_DEPTH = 8                 # receipts, OCMF, tariffs and bundles nest 4 deep at most
MAX_NUMBER_CHARS = 32         # sign, digits, fraction and exponent of one number token
MAX_EXPONENT = 12

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)      # a JSON string, escapes included
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)\Z")


class JsonError(ValueError):
    """The text is not JSON within the bounds (message says which)."""


def too_deep(text: str, max_depth: int) -> bool:
    """True if the text nests [ / { deeper than max_depth (brackets inside strings do not
    count; an unterminated string runs to the end). The strings are cut out by one regular
    expression and only the brackets left are walked: a receipt has a few dozen brackets but
    hundreds of quotes, and this runs on every message (it was the biggest cost per receipt)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    outside = _STRING.sub("", text)
    quote = outside.find('"')
    if quote >= 0:
        outside = outside[:quote]
    depth = 0
    for c in _NOT_BRACKET.sub("", outside):
        if c in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _number(token: str) -> str:
    if len(token) > MAX_NUMBER_CHARS:
        raise JsonError("number of %d characters (at most %d)" % (len(token), MAX_NUMBER_CHARS))
    m = _EXPONENT.search(token)
    if m and abs(int(m.group(1))) > MAX_EXPONENT:
        raise JsonError("number exponent %s (at most %d)" % (m.group(1), MAX_EXPONENT))
    return token


def _constant(name: str) -> Any:
    raise JsonError("%s is not a JSON number" % name)


def loads(text: Union[str, bytes], max_depth: int = MAX_DEPTH,
          parse_float: Callable[[str], Any] = Decimal) -> Any:
    """json.loads with bounded depth and numbers (floats as Decimal unless told otherwise);
    raises JsonError (a ValueError) on anything else."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError("not UTF-8: %s" % exc)
    if not isinstance(text, str):
        raise JsonError("JSON must be text")
    if too_deep(text, max_depth):
        raise JsonError("nested deeper than %d" % max_depth)
    try:
        return json.loads(text, parse_int=lambda t: int(_number(t)),
                          parse_float=lambda t: parse_float(_number(t)), parse_constant=_constant)
    except JsonError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JsonError(str(exc))
