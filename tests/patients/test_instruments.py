"""The instruments as data: codes, answer lists, domains and translations hang together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from referrals.patients import instruments
from referrals.patients.instruments import (
    AHC_HRSN,
    HUNGER_VITAL_SIGN,
    INSTRUMENTS,
    PRAPARE,
    EitherItemRule,
    Instrument,
    SumScoreRule,
    Text,
    instrument_by_key,
)
from referrals.terminology import SDOH_CATEGORIES

pytestmark = pytest.mark.pure

LOINC_CODE = re.compile(r"^\d{1,7}-\d$")
LOINC_ANSWER = re.compile(r"^LA\d{1,6}-\d$")

ALL = list(INSTRUMENTS.values())


def _loinc_check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check digit on question and panel codes (answer codes use another)."""
    body, check = code.split("-")
    digits = [int(d) for d in body]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            doubled = digit * 2
            total += doubled // 10 + doubled % 10
        else:
            total += digit
    return (10 - total % 10) % 10 == int(check)


@pytest.mark.parametrize("instrument", ALL, ids=lambda i: i.key)
def test_every_code_is_well_formed_loinc(instrument: Instrument) -> None:
    codes = [instrument.code, *instrument.question_codes, *(r.code for r in instrument.rules)]
    for code in codes:
        assert LOINC_CODE.match(code), code
        assert _loinc_check_digit_ok(code), code
    for question in instrument.questions:
        for answer in question.answer_codes:
            assert LOINC_ANSWER.match(answer), (question.code, answer)


@pytest.mark.parametrize("instrument", ALL, ids=lambda i: i.key)
def test_questions_and_answers_are_unique_and_positive_answers_are_in_the_list(
    instrument: Instrument,
) -> None:
    assert len(set(instrument.question_codes)) == len(instrument.question_codes)
    for question in instrument.questions:
        assert len(set(question.answer_codes)) == len(question.answer_codes), question.code
        assert set(question.positive_answers) <= set(question.answer_codes), question.code
        for domains in question.positive_answers.values():
            assert set(domains) <= set(question.domains), question.code


@pytest.mark.parametrize("instrument", ALL, ids=lambda i: i.key)
def test_every_domain_is_an_sdohcc_category(instrument: Instrument) -> None:
    assert set(instrument.domains) <= set(SDOH_CATEGORIES)


def _texts(instrument: Instrument) -> list[Text]:
    texts = [instrument.name, *(q.text for q in instrument.questions)]
    texts += [o.text for q in instrument.questions for o in q.options]
    texts += [r.name for r in instrument.rules]
    for rule in instrument.rules:
        if isinstance(rule, EitherItemRule):
            texts += [rule.at_risk.text, rule.no_risk.text]
    return texts


@pytest.mark.parametrize("instrument", ALL, ids=lambda i: i.key)
def test_every_text_has_english_and_spanish(instrument: Instrument) -> None:
    for text in _texts(instrument):
        assert text.en.strip() and text.es.strip()
        assert text.in_language("es") == text.es
        assert text.in_language("en") == text.en


def test_spanish_we_wrote_is_marked_for_review() -> None:
    source = Path(instruments.__file__).read_text(encoding="utf-8")
    spanish = {text.es for instrument in ALL for text in _texts(instrument) if text.es != text.en}

    # None of the Spanish comes from a published translation: one review mark per text at least.
    assert source.count("# translation: needs review") >= len(spanish)


def test_the_required_instruments_are_shipped_with_their_panel_codes() -> None:
    assert AHC_HRSN.code == "96777-8"
    assert HUNGER_VITAL_SIGN.code == "88121-9"
    assert PRAPARE.code == "93025-5"
    assert instrument_by_key("ahc-hrsn") is AHC_HRSN


def test_an_unknown_instrument_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'phq-9'"):
        instrument_by_key("phq-9")


def test_ahc_core_has_living_situation_housing_food_transport_utilities_and_safety() -> None:
    assert AHC_HRSN.question_codes == (
        "71802-3",
        "96778-6",
        "88122-7",
        "88123-5",
        "93030-5",
        "96779-4",
        "95618-5",
        "95617-7",
        "95616-9",
        "95615-1",
    )


def test_ahc_safety_items_score_one_to_five_with_a_threshold_of_11() -> None:
    (rule,) = AHC_HRSN.rules
    assert isinstance(rule, SumScoreRule)
    assert rule.code == "95614-4"
    assert rule.threshold == 11
    for code in rule.questions:
        question = AHC_HRSN.question(code)
        assert question is not None
        assert [option.points for option in question.options] == [1, 2, 3, 4, 5]


def test_hunger_vital_sign_result_is_88124_3_with_at_risk_and_no_risk() -> None:
    (rule,) = HUNGER_VITAL_SIGN.rules
    assert isinstance(rule, EitherItemRule)
    assert rule.code == "88124-3"
    assert (rule.at_risk.code, rule.no_risk.code) == ("LA19952-3", "LA19983-8")
    assert rule.risk_answers == {"LA28397-0", "LA6729-3"}
