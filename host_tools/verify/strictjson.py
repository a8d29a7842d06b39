"""JSON from the network, read with its bounds checked before anything is converted.

Python's json turns any number token into an int or (here) a Decimal, and the C scanner
recurses once per nesting level. A 540-byte receipt with `"RV":1e999999` then costs a
minute of big-number work downstream, and `[[[[...` a RecursionError. So: the nesting depth
is bounded, every number token is checked for length and exponent before it is converted,
and NaN/Infinity are refused.

Depth is measured on the parsed value: for valid JSON it equals the bracket depth of the text,
and walking a few dozen containers is far cheaper than scanning the text (a receipt carries its
OCMF record as an escaped string full of brackets and quotes). A text nested deeper than the C
scanner's recursion limit never becomes a value: its RecursionError is the same refusal.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Callable, Dict, Union

MAX_DEPTH = 8                 # receipts, OCMF, tariffs and bundles nest 4 deep at most
MAX_NUMBER_CHARS = 32         # sign, digits, fraction and exponent of one number token
MAX_EXPONENT = 12

# a JSON string, escapes included (unrolled: no alternation per character)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
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


def _deeper(container: Any, levels: int) -> bool:
    """True if a parsed list/dict nests more than `levels` containers deep (itself included)."""
    if levels <= 0:
        return True
    for v in (container.values() if type(container) is dict else container):
        t = type(v)
        if (t is dict or t is list) and _deeper(v, levels - 1):
            return True
    return False


def _int(token: str) -> int:
    # an int token has no exponent: its length is its only bound
    if len(token) > MAX_NUMBER_CHARS:
        raise JsonError("number of %d characters (at most %d)" % (len(token), MAX_NUMBER_CHARS))
    return int(token)


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
    try:
        value = _decoder(parse_float).decode(text)
    except JsonError:
        raise
    except RecursionError as exc:
        if too_deep(text, max_depth):
            raise JsonError("nested deeper than %d" % max_depth)
        raise JsonError(str(exc))
    except ValueError as exc:
        raise JsonError(str(exc))
    # the walk is as cheap as counting the text's brackets first would be (a receipt carries its
    # OCMF record as a string full of them), and it alone decides
    if (type(value) is dict or type(value) is list) and _deeper(value, max_depth):
        raise JsonError("nested deeper than %d" % max_depth)
    return value


_decoders: Dict[Any, json.JSONDecoder] = {}


def _decoder(parse_float: Callable[[str], Any]) -> json.JSONDecoder:
    """One decoder per float type, made once (json.loads with hooks builds one per call)."""
    dec = _decoders.get(parse_float)
    if dec is None:
        dec = _decoders[parse_float] = json.JSONDecoder(
            parse_int=_int, parse_float=lambda t: parse_float(_number(t)), parse_constant=_constant)
    return dec
