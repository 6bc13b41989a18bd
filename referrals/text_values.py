"""Numbers and moments that arrive as text (query parameters, form fields, FHIR elements), read
one way by every entry point.

Python's own readers accept more than a client means and fail in ways a request must never see:
`str.isdigit()` says yes to "²" and "٣", `int()` refuses more than 4,300 digits, and a moment
near the ends of the calendar cannot be moved to UTC or widened by a second without an
OverflowError. These helpers answer None (the caller says what is expected) or saturate at the
ends, so a search for "everything after 9999-12-31" finds nothing instead of failing. And what
was sent, quoted back in a message, is shown one way: printable, and not too long."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)

_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str, cap: int) -> int | None:
    """`text` read as a whole number written in the ASCII digits 0-9 alone, at most `cap`;
    None when it is anything else (a sign, spaces, "²", "1.0", an empty string)."""
    if not isinstance(text, str) or not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(cap)):
        return cap
    return min(int(significant), cap)


def utc_moment(moment: datetime) -> datetime:
    """`moment` in UTC (a naive one is taken as UTC already); the first or last moment Python
    can hold when UTC would fall outside the calendar."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        offset = moment.utcoffset() or timedelta(0)
        return EARLIEST if offset > timedelta(0) else LATEST


def later(moment: datetime, span: timedelta) -> datetime:
    """`moment + span`, or the last moment Python can hold when that is past it."""
    try:
        return moment + span
    except OverflowError:
        return LATEST if span >= timedelta(0) else EARLIEST


def _escaped(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with each character Python would not print written as a \\u escape (a message
    that quotes a client's input, made fit for a FHIR string whatever it quotes)."""
    return text if text.isprintable() else "".join(_escaped(char) for char in text)


def shown(text: str, limit: int = 80) -> str:
    """`text` as a message may quote it back to whoever sent it: each character Python would not
    print (control and format characters, line breaks, spaces other than " ") as a \\u escape,
    since FHIR strings hold none of them and validators refuse some; and at most `limit`
    characters of it, the rest cut with an ellipsis."""
    cut = "".join(_escaped(char) for char in text[:limit])
    return cut + "…" if len(text) > limit else cut
