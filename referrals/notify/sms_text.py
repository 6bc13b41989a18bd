"""How an SMS body is encoded and how many segments (billed messages) it takes. Pure.

One non-GSM character, such as a curly quote pasted from a word processor, makes a whole
message go as UCS-2: 70 characters a segment instead of 160. `to_sms_alphabet` replaces such
characters by their GSM look-alikes where a reader sees no difference; `segments` counts what
the message then costs.

Sources:
- 3GPP TS 23.038 (formerly GSM 03.38), section 6.2.1 "GSM 7 bit Default Alphabet" and
  6.2.1.1 "GSM 7 bit default alphabet extension table" (the escape 0x1B followed by a second
  septet, so an extension character costs two septets). Unicode's mapping of the same tables:
  https://www.unicode.org/Public/MAPPINGS/ETSI/GSM0338.TXT
- 3GPP TS 23.040, section 9.2.3.24.1 (concatenated short messages): a 140-octet user data
  field holds 160 septets or 70 UCS-2 characters; a concatenation header takes 6 octets of
  each part, leaving 153 septets or 67 UCS-2 characters per part.
- UCS-2 is counted in UTF-16 code units, as carriers and gateways (e.g. Twilio) do: a
  character outside the Basic Multilingual Plane, such as most emoji, takes two.

The count is the usual arithmetic: ceil(units / 153) or ceil(units / 67) once the text no longer
fits one segment. Some gateways never split an escape pair or a surrogate pair across two parts,
so a text with one of those exactly on a boundary may cost one part more than counted here.

An empty text counts as one segment: a message is still sent and billed, it is just empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# 3GPP TS 23.038 6.2.1, in code order 0x00-0x7F; 0x1B (escape to the extension table) left out.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x1B (ESC) belongs between Ξ and Æ
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# 3GPP TS 23.038 6.2.1.1: sent as ESC + one septet, so each counts as two.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_SEGMENT = {"GSM-7": 160, "UCS-2": 70}
PER_PART = {"GSM-7": 153, "UCS-2": 67}

# Replacements a reader cannot see. Left alone on purpose: accented letters GSM lacks (á, í,
# ó, ú, ê, ...), CJK, Hangul and Vietnamese letters, low-9 quotes and guillemets, which look
# different from their nearest GSM character; and the zero-width (non-)joiners U+200C/U+200D,
# which change how Persian and Arabic letters join and how emoji combine.
_LOOK_ALIKES = {
    # curly single quotes and apostrophes
    "\u2018": "'",
    "\u2019": "'",
    "\u201b": "'",
    # curly double quotes
    "\u201c": '"',
    "\u201d": '"',
    "\u201f": '"',
    # hyphens, dashes and the minus sign
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    # ellipsis
    "\u2026": "...",
    # non-breaking and other Unicode spaces
    "\u00a0": " ",
    "\u1680": " ",
    **{chr(code): " " for code in range(0x2000, 0x200B)},  # en quad .. hair space
    "\u202f": " ",
    "\u205f": " ",
    "\u3000": " ",
    # zero-width space, word joiner, byte-order mark / zero-width no-break space
    "\u200b": "",
    "\u2060": "",
    "\ufeff": "",
}
_TABLE = str.maketrans(_LOOK_ALIKES)


def to_sms_alphabet(text: str) -> str:
    """The text with invisible-difference characters replaced by GSM ones (see module doc)."""
    return text.translate(_TABLE)


@dataclass(frozen=True)
class SmsSegments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int  # segments the message is split into and billed as


def is_gsm(text: str) -> bool:
    """Whether every character of the text is in the GSM 7-bit alphabet or its extension."""
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def segments(text: str) -> SmsSegments:
    """The encoding a text goes in, its length in that encoding, and how many segments it takes."""
    if is_gsm(text):
        encoding = "GSM-7"
        units = sum(2 if char in GSM_EXTENSION else 1 for char in text)
    else:
        encoding = "UCS-2"
        units = len(text.encode("utf-16-le")) // 2
    fits_one = units <= SINGLE_SEGMENT[encoding]
    count = 1 if fits_one else math.ceil(units / PER_PART[encoding])
    return SmsSegments(encoding, units, count)
