"""Whom a family's SMS notice goes to, what it says, and how phone numbers are shown to staff."""

from __future__ import annotations

import string
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referrals.notify.texts import (
    STEPS,
    TEXTS,
    Contact,
    Skip,
    choose_recipient,
    mask_phone,
    notice_text,
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
# notice_text
# --------------------------------------------------------------------------------------------

ORG = "Bayview Community Pantry"
CLINIC = "Mission Street Clinic"
LANGUAGES = sorted(TEXTS)

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


def test_there_is_a_notice_for_every_step_and_a_private_notice_and_footer_in_every_language():
    assert "en" in TEXTS
    for language in LANGUAGES:
        assert set(TEXTS[language]) == {*STEPS, "private", "footer"}, language


@pytest.mark.parametrize("language", LANGUAGES)
def test_templates_only_use_the_org_and_clinic_placeholders(language):
    for key, template in TEXTS[language].items():
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        assert fields <= {"org", "clinic"}, (language, key)
        if key in STEPS:
            assert "org" in fields, (language, key)
        else:
            assert not fields, (language, key)


@pytest.mark.parametrize("language", LANGUAGES)
def test_footer_tells_the_family_how_to_opt_out(language):
    assert "STOP" in TEXTS[language]["footer"]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", STEPS)
def test_notice_names_the_organisation_and_ends_with_the_footer(step, language):
    text = notice_text(step, language, org=ORG, clinic=CLINIC, sensitive=False)
    assert ORG in text
    assert "{" not in text
    assert text.endswith(TEXTS[language]["footer"])


@pytest.mark.parametrize("language", ["zh", "vi", "tl", "", "xx", "es-MX"])
@pytest.mark.parametrize("step", STEPS)
def test_language_without_a_translation_falls_back_to_english(step, language):
    assert notice_text(step, language, org=ORG, clinic=CLINIC, sensitive=False) == notice_text(
        step, "en", org=ORG, clinic=CLINIC, sensitive=False
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", STEPS)
def test_sensitive_notice_names_neither_the_organisation_nor_the_clinic(step, language):
    text = notice_text(step, language, org=ORG, clinic=CLINIC, sensitive=True)
    assert ORG not in text
    assert CLINIC not in text
    assert "Bayview" not in text
    assert "Mission" not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_sensitive_notice_is_the_same_for_every_step_so_it_reveals_no_progress(language):
    texts = {notice_text(step, language, org=ORG, clinic=CLINIC, sensitive=True) for step in STEPS}
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
    text = notice_text(step, language, org="Org", clinic="Clinic", sensitive=sensitive).lower()
    for word in NEED_WORDS:
        assert word not in text, word


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
