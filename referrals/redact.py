"""Taking patient data out of text that leaves the app's hands: log lines and job errors.
Pure. Values travel in SQL parameters (hidden by the engine), in PostgreSQL's error details,
and in providers' messages that quote a phone number."""

from __future__ import annotations

import logging
import re

_RULES = (
    # PostgreSQL: "DETAIL:  Failing row contains (…every column…)."
    (
        re.compile(r"Failing row contains \(.*?\)(?=\.?\s*$|\.\s)", re.M | re.S),
        "Failing row contains (…)",
    ),
    # PostgreSQL: "Key (email)=(someone@example.org) already exists."
    (re.compile(r"Key \(([^)]*)\)=\(.*?\)(?= )"), r"Key (\1)=(…)"),
    # Phone numbers as we store them (E.164) or as providers print them.
    (re.compile(r"\+\d[\d\s().-]{6,}\d"), "[number]"),
    (re.compile(r"%2B\d{7,15}", re.I), "[number]"),  # the same, in a URL
)


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose messages and tracebacks go through `redact`."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = redact(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return redact(super().formatException(ei))
