"""Numbers and moments written as text, read one way by every entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from referrals.text_values import EARLIEST, LATEST, shown, utc_moment, whole_number

pytestmark = pytest.mark.pure


@pytest.mark.parametrize(
    ("text", "cap", "expected"),
    [
        ("0", 10, 0),
        ("7", 10, 7),
        ("007", 10, 7),
        ("10", 10, 10),
        ("11", 10, 10),
        ("9" * 30, 200, 200),
        ("9" * 5000, 10**9, 10**9),  # int() alone refuses more than 4,300 digits
        ("0" * 5000 + "3", 10, 3),
        ("", 10, None),
        ("²", 10, None),  # str.isdigit() says yes; int() fails
        ("٣", 10, None),  # str.isdigit() says yes; int() reads 3
        ("1²", 10, None),
        ("+1", 10, None),
        ("-1", 10, None),
        (" 1", 10, None),
        ("1 ", 10, None),
        ("1_0", 10, None),
        ("1.0", 10, None),
        ("0x1", 10, None),
    ],
)
def test_a_whole_number_is_written_in_the_digits_0_to_9(text: str, cap: int, expected) -> None:
    assert whole_number(text, cap) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 24, 8, 0), datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
        (
            datetime(2026, 11, 24, 8, 0, tzinfo=timezone(timedelta(hours=-8))),
            datetime(2026, 11, 24, 16, 0, tzinfo=UTC),
        ),
        (datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), LATEST),
        (datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1))), EARLIEST),
        (
            datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-1))),
            datetime(1, 1, 1, 1, 0, tzinfo=UTC),
        ),
    ],
)
def test_a_moment_in_utc_is_the_first_or_last_when_utc_cannot_write_it(moment, expected) -> None:
    assert utc_moment(moment) == expected
    assert utc_moment(moment).tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("food", "food"),
        ("", ""),
        ("Árbol ² ٣ 𝔉", "Árbol ² ٣ 𝔉"),  # printable, whatever the script
        ("a\x00b", "a\\u0000b"),
        ("a\tb\nc", "a\\u0009b\\u000ac"),
        ("no\u00a0break", "no\\u00a0break"),  # HL7's schema refuses it in a FHIR string
        ("\u2028\ufeff\u202e", "\\u2028\\ufeff\\u202e"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("x" * 81, "x" * 80 + "…"),
    ],
)
def test_what_was_sent_is_shown_printable_and_short(text: str, expected: str) -> None:
    assert shown(text) == expected
