"""JSON a client sent, read safely: nesting is measured on the text before any parser or
validator recurses into it, and what JSON allows but FHIR and our database cannot hold is
refused with a sentence saying what (NaN and Infinity, numbers too large for a double, lone
surrogates, the NUL character). Pure: bytes in, a value or JsonRefused out."""

from __future__ import annotations

import json
import math
import re
from typing import Any

# FHIR resources nest a few levels per element: a Bundle's contained resource's extension's
# coding is about 12 deep. Parsers and validators recurse once or more per level, and Python
# stops at 1,000 frames: a body nested deeper than this is refused before it is parsed.
MAX_DEPTH = 64

# A JSON string: quote, then runs of plain characters and escapes, then quote.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The body cannot be taken as JSON; the message says why, for the client."""


def nesting_depth(text: str, stop_after: int = MAX_DEPTH) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not
    count); counting stops once past `stop_after`."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> float:
    raise JsonRefused(f"{name} is not a JSON number.")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"The number {text[:40]} is too large.")
    return value


def read_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The value a UTF-8 JSON body holds, or JsonRefused saying what is wrong with it."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise JsonRefused(f"The body is not UTF-8 (byte {err.start}).") from None
    if nesting_depth(text, max_depth) > max_depth:
        raise JsonRefused(
            f"The body nests arrays and objects more than {max_depth} levels deep; "
            f"FHIR resources need far fewer (the limit is {max_depth})."
        )
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except JsonRefused:
        raise
    except (ValueError, RecursionError) as err:
        raise JsonRefused(f"The body is not JSON: {err}.") from None
    _check_strings(value)
    return value


def _check_strings(value: Any) -> None:
    """Every key and string can be stored: no NUL, no half of a surrogate pair."""
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, dict):
            waiting.extend(item.keys())
            waiting.extend(item.values())
        elif isinstance(item, list):
            waiting.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise JsonRefused(
                    "The body holds the NUL character (\\u0000): not allowed in text."
                )
            if not item.isascii() and _SURROGATE.search(item):
                raise JsonRefused(
                    "The body holds half a surrogate pair (\\ud800-\\udfff): not text."
                )
