"""Which alphabet an SMS goes in, what it costs in segments, and invisible look-alike cleaning."""

from __future__ import annotations

import pytest

from referrals.notify.sms_text import (
    GSM_BASIC,
    GSM_EXTENSION,
    SmsSegments,
    segments,
    to_sms_alphabet,
)

pytestmark = pytest.mark.pure

# --------------------------------------------------------------------------------------------
# to_sms_alphabet
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It\u2019s ready", "It's ready"),
        ("\u2018quoted\u2019", "'quoted'"),
        ("\u201cquoted\u201d", '"quoted"'),
        ("9\u201312", "9-12"),
        ("wait\u2014then", "wait-then"),
        ("\u22125", "-5"),
        ("non\u2011breaking hyphen", "non-breaking hyphen"),
        ("Wait\u2026", "Wait..."),
        ("East\u00a0Bay", "East Bay"),
        ("thin\u2009space", "thin space"),
        ("narrow\u202fno-break", "narrow no-break"),
        ("em\u2003space", "em space"),
        ("zero\u200bwidth", "zerowidth"),
        ("\ufeffbyte order mark", "byte order mark"),
        ("word\u2060joiner", "wordjoiner"),
        ("Plain text, nothing to do.", "Plain text, nothing to do."),
        ("", ""),
    ],
    ids=lambda value: repr(value)[:24],
)
def test_invisible_differences_are_replaced_by_gsm_characters(text, expected):
    assert to_sms_alphabet(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Atención: opción, aquí, según",  # á í ó ú are not GSM: left for UCS-2
        "Tiếng Việt: giấy giới thiệu",
        "您的醫護團隊有新消息。",
        "담당 의료팀에 전화해 주세요.",
        "Ça coûte 5 €, voilà",
        "„low-9‚ quotes and «guillemets» ‹›",
        "emoji \U0001f600 and family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "Persian zero-width non-joiner: \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "GSM already: @£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!¤¡ÄÖÑÜ§¿äöñüà{}[]~|^\\€\n\r",
    ],
    ids=["spanish", "vietnamese", "chinese", "korean", "french", "quotes", "emoji", "zwnj", "gsm"],
)
def test_everything_else_is_left_alone(text):
    assert to_sms_alphabet(text) == text


def test_cleaning_is_idempotent():
    text = "\u201cIt\u2019s\u00a0done\u201d \u2014 wait\u2026"
    assert to_sms_alphabet(to_sms_alphabet(text)) == to_sms_alphabet(text)


# --------------------------------------------------------------------------------------------
# segments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsSegments("GSM-7", 0, 1)),  # an empty message is still one message
        ("a", SmsSegments("GSM-7", 1, 1)),
        ("a" * 160, SmsSegments("GSM-7", 160, 1)),
        ("a" * 161, SmsSegments("GSM-7", 161, 2)),
        ("a" * 306, SmsSegments("GSM-7", 306, 2)),
        ("a" * 307, SmsSegments("GSM-7", 307, 3)),
        ("a" * 459, SmsSegments("GSM-7", 459, 3)),
        ("a" * 460, SmsSegments("GSM-7", 460, 4)),
        # extension-table characters take an escape septet as well
        ("€", SmsSegments("GSM-7", 2, 1)),
        ("{}[]~|^\\€\f", SmsSegments("GSM-7", 20, 1)),
        ("a" * 158 + "€", SmsSegments("GSM-7", 160, 1)),
        ("a" * 159 + "€", SmsSegments("GSM-7", 161, 2)),
        ("[" * 80, SmsSegments("GSM-7", 160, 1)),
        ("[" * 81, SmsSegments("GSM-7", 162, 2)),
        # the basic set's non-ASCII characters are one septet each
        ("£¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", SmsSegments("GSM-7", 40, 1)),
        ("line\nbreak\r", SmsSegments("GSM-7", 11, 1)),
        # UCS-2
        ("á", SmsSegments("UCS-2", 1, 1)),
        ("á" * 70, SmsSegments("UCS-2", 70, 1)),
        ("á" * 71, SmsSegments("UCS-2", 71, 2)),
        ("中" * 134, SmsSegments("UCS-2", 134, 2)),
        ("中" * 135, SmsSegments("UCS-2", 135, 3)),
        ("한" * 201, SmsSegments("UCS-2", 201, 3)),
        ("한" * 202, SmsSegments("UCS-2", 202, 4)),
        # one non-GSM character sends the whole text as UCS-2, extension characters included
        ("a" * 69 + "ó", SmsSegments("UCS-2", 70, 1)),
        ("a" * 70 + "ó", SmsSegments("UCS-2", 71, 2)),
        ("€ó", SmsSegments("UCS-2", 2, 1)),
        # an emoji outside the Basic Multilingual Plane is two UTF-16 code units
        ("\U0001f600", SmsSegments("UCS-2", 2, 1)),
        ("a" * 68 + "\U0001f600", SmsSegments("UCS-2", 70, 1)),
        ("a" * 69 + "\U0001f600", SmsSegments("UCS-2", 71, 2)),
        ("a" * 159 + "\U0001f600", SmsSegments("UCS-2", 161, 3)),
        # a curly quote alone forces UCS-2
        ("It\u2019s ready", SmsSegments("UCS-2", 10, 1)),
    ],
    ids=lambda value: repr(value)[:20] if isinstance(value, str) else None,
)
def test_segments(text, expected):
    assert segments(text) == expected


def test_a_curly_quote_no_longer_forces_ucs2_once_cleaned():
    text = "Bayview\u2019s team says \u201chello\u201d \u2014 " + "a" * 130
    assert segments(text).encoding == "UCS-2"
    assert segments(text).count == 3
    cleaned = to_sms_alphabet(text)
    assert segments(cleaned) == SmsSegments("GSM-7", len(cleaned), 1)


def test_the_gsm_tables_are_complete_and_separate():
    assert len(GSM_BASIC) == 127  # 128 code points less the escape to the extension table
    assert len(GSM_EXTENSION) == 10
    assert not GSM_BASIC & GSM_EXTENSION


def test_ascii_outside_gsm_is_only_the_backtick_and_extension_characters():
    printable_ascii = {chr(code) for code in range(0x20, 0x7F)}
    assert printable_ascii - GSM_BASIC == set("`[]{}|~^\\")
    assert printable_ascii - GSM_BASIC - GSM_EXTENSION == {"`"}
    assert segments("`").encoding == "UCS-2"
