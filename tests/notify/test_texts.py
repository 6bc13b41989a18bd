"""Whom a family's SMS notice goes to, what it says, and how phone numbers are shown to staff."""

from __future__ import annotations

import string
import unicodedata
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referrals.notify.sms_text import segments, to_sms_alphabet
from referrals.notify.texts import (
    NAME_MAX,
    STEPS,
    TEXTS,
    Contact,
    Skip,
    choose_recipient,
    help_text,
    mask_phone,
    notice_text,
    short_name,
    text_language,
)

pytestmark = pytest.mark.pure

TODAY = date(2025, 3, 15)
ADULT = date(1990, 6, 1)
MINOR = date(2012, 1, 20)  # 13
CHILD = date(2019, 5, 5)  # 5

PATIENT_PHONE = "+14155550100"
GUARDIAN_PHONE = "+14155550111"
SECOND_GUARDIAN_PHONE = "+14155550122"


def choose(**overrides):
    args = {
        "birth_date": ADULT,
        "today": TODAY,
        "patient_phone": PATIENT_PHONE,
        "patient_language": "en",
        "guardians": [(GUARDIAN_PHONE, "es")],
        "sensitive": False,
        "contact_prohibited": False,
        "opted_in": True,
    }
    args.update(overrides)
    return choose_recipient(**args)


# --------------------------------------------------------------------------------------------
# choose_recipient
# --------------------------------------------------------------------------------------------


def test_adult_notice_goes_to_the_patient_in_the_patients_language():
    assert choose(birth_date=ADULT, patient_language="vi") == Contact(
        "patient", PATIENT_PHONE, "vi"
    )


def test_minor_notice_goes_to_the_guardian_in_the_guardians_language():
    assert choose(birth_date=MINOR, patient_language="en") == Contact(
        "guardian", GUARDIAN_PHONE, "es"
    )


def test_minor_notice_goes_to_the_first_guardian_who_has_a_phone():
    guardians = [(None, "zh"), ("", "tl"), (SECOND_GUARDIAN_PHONE, "vi"), (GUARDIAN_PHONE, "es")]
    assert choose(birth_date=CHILD, guardians=guardians) == Contact(
        "guardian", SECOND_GUARDIAN_PHONE, "vi"
    )


def test_patient_turning_eighteen_today_is_an_adult():
    assert choose(birth_date=date(2007, 3, 15)).kind == "patient"


def test_patient_turning_eighteen_tomorrow_is_still_a_minor():
    assert choose(birth_date=date(2007, 3, 16)).kind == "guardian"


@pytest.mark.parametrize("birth_date", [ADULT, MINOR, CHILD], ids=["adult", "minor", "child"])
def test_sensitive_notice_goes_only_to_the_patients_own_phone(birth_date):
    assert choose(birth_date=birth_date, sensitive=True, patient_language="es") == Contact(
        "patient", PATIENT_PHONE, "es"
    )


@pytest.mark.parametrize("phone", [None, ""], ids=["none", "empty"])
def test_sensitive_notice_is_skipped_rather_than_sent_to_a_guardian(phone):
    result = choose(birth_date=MINOR, sensitive=True, patient_phone=phone)
    assert isinstance(result, Skip)
    assert result.reason


@pytest.mark.parametrize("sensitive", [False, True])
@pytest.mark.parametrize("birth_date", [ADULT, MINOR], ids=["adult", "minor"])
def test_contact_prohibited_skips_the_notice(birth_date, sensitive):
    result = choose(birth_date=birth_date, sensitive=sensitive, contact_prohibited=True)
    assert isinstance(result, Skip)
    assert "not be contacted" in result.reason


@pytest.mark.parametrize("sensitive", [False, True])
@pytest.mark.parametrize("birth_date", [ADULT, MINOR], ids=["adult", "minor"])
def test_opted_out_family_gets_no_notice(birth_date, sensitive):
    result = choose(birth_date=birth_date, sensitive=sensitive, opted_in=False)
    assert isinstance(result, Skip)
    assert "opted out" in result.reason


def test_no_phone_anywhere_skips_the_notice():
    result = choose(birth_date=MINOR, patient_phone=None, guardians=[(None, "es")])
    assert isinstance(result, Skip)


def test_adult_without_a_phone_is_skipped_even_with_a_guardian_on_file():
    assert isinstance(choose(birth_date=ADULT, patient_phone=None), Skip)


phones = st.one_of(st.none(), st.just(""), st.from_regex(r"\+1415555\d{4}", fullmatch=True))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    birth_date=st.dates(min_value=date(1940, 1, 1), max_value=TODAY),
    patient_phone=phones,
    guardians=st.lists(st.tuples(phones, st.sampled_from(["en", "es", "zh"])), max_size=3),
    contact_prohibited=st.booleans(),
    opted_in=st.booleans(),
)
def test_sensitive_notice_never_reaches_a_guardian(
    birth_date, patient_phone, guardians, contact_prohibited, opted_in
):
    result = choose(
        birth_date=birth_date,
        patient_phone=patient_phone,
        guardians=guardians,
        sensitive=True,
        contact_prohibited=contact_prohibited,
        opted_in=opted_in,
    )
    if isinstance(result, Contact):
        assert result.kind == "patient"
        assert result.phone == patient_phone
        assert not contact_prohibited
        assert opted_in
    else:
        assert isinstance(result, Skip)


# --------------------------------------------------------------------------------------------
# notice_text and help_text
# --------------------------------------------------------------------------------------------

ORG = "Bayview Community Pantry"
CLINIC = "Mission Street Clinic"
SENDER = "East Bay Referral Network"
LANGUAGES = sorted(TEXTS)
TRANSLATED = ("en", "es", "zh", "vi", "tl", "ko")

# As long as the names we expect to see get: a notice must still render and stay affordable.
LONG_ORG = "Alameda County Community Resource and Family Support Service"
LONG_CLINIC = "San Leandro Family Health Center, East Campus"

# Names longer than NAME_MAX are cut at a word, so every text fits 3 segments.

# Words that would disclose the need or anything clinical (English and Spanish).
NEED_WORDS = (
    "food",
    "hunger",
    "meal",
    "pantry",
    "housing",
    "homeless",
    "shelter",
    "rent",
    "eviction",
    "counsel",
    "therap",
    "mental",
    "depress",
    "substance",
    "drug",
    "alcohol",
    "pregnan",
    "sexual",
    "contracept",
    "violence",
    "utilit",
    "transport",
    "comida",
    "aliment",
    "vivienda",
    "alquiler",
    "desalojo",
    "consejer",
    "terapia",
    "salud mental",
    "embarazo",
    "droga",
)


def notice(step, language, **overrides):
    args = {
        "org": ORG,
        "clinic": CLINIC,
        "sensitive": False,
        "sender": SENDER,
        "first": False,
    }
    args.update(overrides)
    return notice_text(step, language, **args)


def test_every_language_has_every_message():
    assert set(TRANSLATED) <= set(TEXTS)
    for language in LANGUAGES:
        assert set(TEXTS[language]) == {*STEPS, "private", "intro", "help"}, language


@pytest.mark.parametrize("language", LANGUAGES)
def test_templates_only_use_their_own_placeholders(language):
    for key, template in TEXTS[language].items():
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        if key in STEPS:
            assert fields <= {"org", "clinic"}, (language, key)
            assert "org" in fields, (language, key)
        elif key in ("intro", "help"):
            assert fields == {"sender"}, (language, key)
        else:
            assert not fields, (language, key)


@pytest.mark.parametrize("language", LANGUAGES)
def test_templates_are_composed_unicode(language):
    # Decomposed accents would double the length of a UCS-2 text for nothing.
    for key, template in TEXTS[language].items():
        assert unicodedata.is_normalized("NFC", template), (language, key)


@pytest.mark.parametrize("language", ["en", "es", "tl"])
def test_latin_script_texts_go_as_gsm(language):
    # Spanish is worded without á, í, ó, ú so that it costs what English does.
    for key, template in TEXTS[language].items():
        assert segments(template).encoding == "GSM-7", (language, key)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", STEPS)
def test_notice_names_the_organisation(step, language):
    text = notice(step, language)
    assert ORG in text
    assert SENDER not in text


@pytest.mark.parametrize("sensitive", [False, True], ids=["plain", "sensitive"])
@pytest.mark.parametrize("first", [False, True], ids=["later", "first"])
@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("step", STEPS)
def test_every_notice_renders_within_its_segment_budget(step, language, first, sensitive):
    assert len(LONG_ORG) == 60
    assert len(LONG_CLINIC) == 45
    text = notice(
        step, language, org=LONG_ORG, clinic=LONG_CLINIC, sensitive=sensitive, first=first
    )
    assert "{" not in text
    assert "}" not in text
    assert to_sms_alphabet(text) == text
    assert segments(text).count <= 3, segments(text)


def test_long_names_are_cut_at_a_word() -> None:
    assert short_name(LONG_ORG) == "Alameda County Community Resource..."
    assert len(short_name(LONG_ORG)) <= NAME_MAX
    assert short_name("Sunrise Pediatrics") == "Sunrise Pediatrics"
    assert short_name("X" * 50) == "X" * 37 + "..."


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", STEPS)
def test_first_notice_starts_with_the_sender_and_says_how_to_stop(step, language):
    for sensitive in (False, True):
        text = notice(step, language, sensitive=sensitive, first=True)
        assert text.startswith(SENDER)
        assert "STOP" in text
        assert "HELP" in text
        assert text.endswith(notice(step, language, sensitive=sensitive, first=False))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", STEPS)
def test_later_notices_carry_no_intro(step, language):
    text = notice(step, language, first=False)
    assert SENDER not in text
    assert "STOP" not in text


@pytest.mark.parametrize("language", [*LANGUAGES, "hy", "fr", "", "es-MX"])
def test_help_names_the_sender_and_keeps_stop_in_english(language):
    text = help_text(language, sender=SENDER)
    assert text.startswith(SENDER)
    assert "STOP" in text
    assert "{" not in text
    assert segments(text).count <= 3


@pytest.mark.parametrize("language", ["hy", "fr", "ru", "", "xx", "es-MX", "EN"])
@pytest.mark.parametrize("step", STEPS)
def test_language_without_a_translation_falls_back_to_english(step, language):
    for first in (False, True):
        for sensitive in (False, True):
            kwargs = {"first": first, "sensitive": sensitive}
            assert notice(step, language, **kwargs) == notice(step, "en", **kwargs)
    assert help_text(language, sender=SENDER) == help_text("en", sender=SENDER)


def test_text_language_is_the_family_language_or_english():
    assert [text_language(code) for code in ("vi", "ko", "zh", "tl", "hy", "fr")] == [
        "vi",
        "ko",
        "zh",
        "tl",
        "en",
        "en",
    ]


@pytest.mark.parametrize("first", [False, True], ids=["later", "first"])
@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("step", STEPS)
def test_sensitive_notice_names_neither_the_organisation_nor_the_clinic(step, language, first):
    for org, clinic in ((ORG, CLINIC), (LONG_ORG, LONG_CLINIC)):
        text = notice(step, language, org=org, clinic=clinic, sensitive=True, first=first)
        assert org not in text
        assert clinic not in text
        for word in (*org.split(), *clinic.split()):
            if len(word) > 4:
                assert word not in text, word


@pytest.mark.parametrize("first", [False, True], ids=["later", "first"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_sensitive_notice_is_the_same_for_every_step_so_it_reveals_no_progress(language, first):
    texts = {notice(step, language, sensitive=True, first=first) for step in STEPS}
    assert len(texts) == 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_template_names_a_need(language):
    for key, template in TEXTS[language].items():
        lowered = template.lower()
        for word in NEED_WORDS:
            assert word not in lowered, (language, key, word)


@pytest.mark.parametrize("sensitive", [False, True])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", STEPS)
def test_no_notice_names_a_need(step, language, sensitive):
    text = notice(
        step, language, org="Org", clinic="Clinic", sensitive=sensitive, sender="Net", first=True
    ).lower()
    for word in NEED_WORDS:
        assert word not in text, word


def test_notices_are_cleaned_to_the_sms_alphabet():
    text = notice("accepted", "en", org="St. Mary\u2019s\u00a0Pantry \u2014 Oakland", first=True)
    assert "St. Mary's Pantry - Oakland accepted" in text
    assert segments(text).encoding == "GSM-7"
    assert help_text("en", sender="Bay\u00a0Area\u2019s Network").startswith("Bay Area's Network:")


# --------------------------------------------------------------------------------------------
# mask_phone
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phone", [None, ""], ids=["none", "empty"])
def test_no_phone_masks_to_nothing(phone):
    assert mask_phone(phone) == ""


def test_phone_shows_only_its_country_prefix_and_last_two_digits():
    masked = mask_phone("+14155550123")
    assert masked == "+1" + "•" * 8 + "23"
    assert len(masked) == len("+14155550123")
    assert "4155550" not in masked


def test_different_numbers_can_still_be_told_apart():
    assert mask_phone("+14155550123") != mask_phone("+14155550145")


@given(st.from_regex(r"\+[1-9]\d{9,13}", fullmatch=True))
def test_masked_e164_number_hides_all_but_four_characters(phone):
    masked = mask_phone(phone)
    assert len(masked) == len(phone)
    assert masked[:2] == phone[:2]
    assert masked[-2:] == phone[-2:]
    assert set(masked[2:-2]) == {"•"}
