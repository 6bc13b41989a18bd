"""Scoring each instrument against its published rules."""

from __future__ import annotations

import pytest

from referrals.patients.instruments import AHC_HRSN, HUNGER_VITAL_SIGN, PRAPARE
from referrals.patients.scoring import SKIPPED, ImpossibleAnswer, score_screening

pytestmark = pytest.mark.pure

OFTEN, SOMETIMES, NEVER, DONT_KNOW = "LA28397-0", "LA6729-3", "LA28398-8", "LA15775-2"
AT_RISK, NO_RISK = "LA19952-3", "LA19983-8"
YES, NO = "LA33-6", "LA32-8"
# AHC safety frequencies, 1 to 5 points.
NEVER_1, RARELY_2, SOMETIMES_3, FAIRLY_OFTEN_4, FREQUENTLY_5 = (
    "LA6270-8",
    "LA10066-1",
    "LA10082-8",
    "LA16644-9",
    "LA6482-9",
)
SAFETY_ITEMS = ("95618-5", "95617-7", "95616-9", "95615-1")

AHC_ALL_CLEAR = {
    "71802-3": "LA31993-1",
    "96778-6": ["LA9-3"],
    "88122-7": NEVER,
    "88123-5": NEVER,
    "93030-5": NO,
    "96779-4": NO,
    **dict.fromkeys(SAFETY_ITEMS, NEVER_1),
}


# --- Hunger Vital Sign: at risk when either item is "often" or "sometimes" true ----------------

HVS_TABLE = [
    (OFTEN, OFTEN, AT_RISK, ("88122-7", "88123-5")),
    (OFTEN, NEVER, AT_RISK, ("88122-7",)),
    (SOMETIMES, NEVER, AT_RISK, ("88122-7",)),
    (NEVER, SOMETIMES, AT_RISK, ("88123-5",)),
    (NEVER, OFTEN, AT_RISK, ("88123-5",)),
    (DONT_KNOW, SOMETIMES, AT_RISK, ("88123-5",)),
    (NEVER, NEVER, NO_RISK, ()),
    (NEVER, DONT_KNOW, NO_RISK, ()),
    (DONT_KNOW, DONT_KNOW, NO_RISK, ()),
    (SKIPPED, SOMETIMES, AT_RISK, ("88123-5",)),
    (NEVER, SKIPPED, NO_RISK, ()),
]


@pytest.mark.parametrize(("worried", "ran_out", "risk", "evidence"), HVS_TABLE)
def test_hunger_vital_sign_is_at_risk_when_either_item_is_often_or_sometimes_true(
    worried: str, ran_out: str, risk: str, evidence: tuple[str, ...]
) -> None:
    score = score_screening(HUNGER_VITAL_SIGN, {"88122-7": worried, "88123-5": ran_out})

    result = score.result("88124-3")
    assert result is not None
    assert result.value == risk
    assert result.positive is (risk == AT_RISK)
    assert score.positive_domains.get("food-insecurity", ()) == evidence
    for code in evidence:
        assert score.positive_questions[code] is True


def test_hunger_vital_sign_has_no_risk_result_when_neither_item_is_answered() -> None:
    score = score_screening(HUNGER_VITAL_SIGN, {"88122-7": SKIPPED, "88123-5": SKIPPED})

    result = score.result("88124-3")
    assert result is not None
    assert result.value is None
    assert result.positive is False
    assert score.positive_domains == {}
    assert score.skipped == ("88122-7", "88123-5")
    assert score.complete is True


# --- AHC HRSN: the underlined answers, and the safety score of 11 or more ----------------------

AHC_DOMAIN_TABLE = [
    # (changed answers, the domains that screen positive)
    ({}, set()),
    ({"71802-3": "LA31994-9"}, {"housing-instability"}),
    ({"71802-3": "LA31995-6"}, {"homelessness"}),
    ({"96778-6": ["LA28580-1"]}, {"inadequate-housing"}),
    ({"96778-6": ["LA31996-4", "LA31998-0"]}, {"inadequate-housing"}),
    ({"88122-7": SOMETIMES}, {"food-insecurity"}),
    ({"88123-5": OFTEN}, {"food-insecurity"}),
    ({"93030-5": YES}, {"transportation-insecurity"}),
    ({"96779-4": YES}, {"utility-insecurity"}),
    ({"96779-4": "LA32002-0"}, {"utility-insecurity"}),
    (
        {"71802-3": "LA31994-9", "88122-7": OFTEN, "88123-5": SOMETIMES},
        {"housing-instability", "food-insecurity"},
    ),
]


@pytest.mark.parametrize(("changes", "domains"), AHC_DOMAIN_TABLE)
def test_ahc_underlined_answers_make_their_domain_positive(
    changes: dict[str, object], domains: set[str]
) -> None:
    answers = {**AHC_ALL_CLEAR, **changes}

    score = score_screening(AHC_HRSN, answers)

    assert set(score.positive_domains) == domains
    for domain in domains:
        assert set(score.positive_domains[domain]) <= set(changes)
    for code in changes:
        assert score.positive_questions[code] is True
    assert score.complete is True


def test_ahc_food_positive_names_both_food_questions_when_both_are_positive() -> None:
    score = score_screening(AHC_HRSN, {**AHC_ALL_CLEAR, "88122-7": OFTEN, "88123-5": OFTEN})

    assert score.positive_domains["food-insecurity"] == ("88122-7", "88123-5")


SAFETY_TABLE = [
    # (the four item answers, total score, positive)
    ((NEVER_1, NEVER_1, NEVER_1, NEVER_1), 4, False),
    ((SOMETIMES_3, SOMETIMES_3, RARELY_2, RARELY_2), 10, False),
    ((FREQUENTLY_5, FREQUENTLY_5, NEVER_1, NEVER_1), 12, True),
    ((SOMETIMES_3, SOMETIMES_3, SOMETIMES_3, RARELY_2), 11, True),
    ((FREQUENTLY_5, NEVER_1, NEVER_1, FAIRLY_OFTEN_4), 11, True),
    ((FAIRLY_OFTEN_4, NEVER_1, NEVER_1, FAIRLY_OFTEN_4), 10, False),
    ((FREQUENTLY_5,) * 4, 20, True),
]


@pytest.mark.parametrize(("items", "total", "positive"), SAFETY_TABLE)
def test_ahc_safety_is_positive_at_a_total_of_11_or_more(
    items: tuple[str, ...], total: int, positive: bool
) -> None:
    answers = {**AHC_ALL_CLEAR, **dict(zip(SAFETY_ITEMS, items, strict=True))}

    score = score_screening(AHC_HRSN, answers)

    result = score.result("95614-4")
    assert result is not None
    assert result.value == total
    assert result.positive is positive
    if positive:
        assert score.positive_domains["intimate-partner-violence"] == SAFETY_ITEMS
    else:
        assert "intimate-partner-violence" not in score.positive_domains


def test_no_single_safety_answer_is_positive_on_its_own() -> None:
    answers = {**AHC_ALL_CLEAR, "95618-5": FREQUENTLY_5}

    score = score_screening(AHC_HRSN, answers)

    assert all(score.positive_questions[code] is False for code in SAFETY_ITEMS)
    assert score.positive_domains == {}


SAFETY_PARTIAL_TABLE = [
    # A skipped item has no score, but the lowest answer (1 point) to each skipped item already
    # proving 11 or more is still a positive screen.
    ((FREQUENTLY_5, FREQUENTLY_5, SKIPPED, NEVER_1), True),
    ((FREQUENTLY_5, RARELY_2, SKIPPED, NEVER_1), False),
    ((SKIPPED, SKIPPED, SKIPPED, SKIPPED), False),
]


@pytest.mark.parametrize(("items", "positive"), SAFETY_PARTIAL_TABLE)
def test_a_safety_score_with_skipped_items_has_no_total(
    items: tuple[str, ...], positive: bool
) -> None:
    answers = {**AHC_ALL_CLEAR, **dict(zip(SAFETY_ITEMS, items, strict=True))}

    score = score_screening(AHC_HRSN, answers)

    result = score.result("95614-4")
    assert result is not None
    assert result.value is None
    assert result.positive is positive


# --- PRAPARE: the risk answers confirmed in the SDOHCC IG ---------------------------------------

PRAPARE_TABLE = [
    ({"71802-3": "LA30190-5"}, {"homelessness"}),
    ({"71802-3": "LA30189-7"}, set()),
    ({"93033-9": YES}, {"housing-instability"}),
    ({"93033-9": NO}, set()),
    ({"67875-5": "LA17956-6"}, {"employment-status"}),
    ({"67875-5": "LA30136-8"}, set()),
    ({"93031-3": ["LA30125-1"]}, {"food-insecurity"}),
    ({"93031-3": ["LA30126-9", "LA30124-4"]}, {"material-hardship", "utility-insecurity"}),
    ({"93031-3": ["LA30129-3"]}, set()),
    ({"93030-5": ["LA30133-5"]}, {"transportation-insecurity"}),
    ({"93030-5": ["LA30133-5", "LA30134-3"]}, {"transportation-insecurity"}),
    ({"93030-5": [NO]}, set()),
    ({"76501-6": YES}, {"intimate-partner-violence"}),
    ({"76501-6": "LA30122-8"}, set()),
]


@pytest.mark.parametrize(("answers", "domains"), PRAPARE_TABLE)
def test_prapare_risk_answers_make_their_domain_positive(
    answers: dict[str, object], domains: set[str]
) -> None:
    score = score_screening(PRAPARE, answers)

    assert set(score.positive_domains) == domains
    assert score.complete is False


# --- partial answers and impossible answers -----------------------------------------------------


def test_a_half_finished_screening_is_not_complete_and_lists_what_is_missing() -> None:
    score = score_screening(AHC_HRSN, {"71802-3": "LA31994-9", "88122-7": SKIPPED})

    assert score.complete is False
    assert score.skipped == ("88122-7",)
    assert "88123-5" in score.unanswered
    assert "71802-3" not in score.unanswered
    assert score.answers == {"71802-3": ("LA31994-9",)}


def test_skipped_items_make_a_screening_complete_but_are_not_answers() -> None:
    answers = dict.fromkeys(AHC_HRSN.question_codes, SKIPPED)

    score = score_screening(AHC_HRSN, answers)

    assert score.complete is True
    assert score.answers == {}
    assert score.positive_questions == {}
    assert score.positive_domains == {}


IMPOSSIBLE_TABLE = [
    # (instrument, answers, words the message must contain)
    (HUNGER_VITAL_SIGN, {"88122-7": "LA33-6"}, ["88122-7", "LA33-6"]),
    (AHC_HRSN, {"88122-7": DONT_KNOW}, ["88122-7", DONT_KNOW]),  # AHC has no "don't know"
    (AHC_HRSN, {"93030-5": "yes"}, ["93030-5", "'yes'"]),
    (AHC_HRSN, {"99999-9": YES}, ["99999-9", "96777-8"]),
    (AHC_HRSN, {"71802-3": ["LA31993-1", "LA31994-9"]}, ["71802-3", "one answer"]),
    (AHC_HRSN, {"96778-6": ["LA28580-1", "LA00000-0"]}, ["96778-6", "LA00000-0"]),
    (AHC_HRSN, {"96778-6": []}, ["96778-6", "skipped"]),
    (PRAPARE, {"95618-5": NEVER_1}, ["95618-5", "93025-5"]),
]


@pytest.mark.parametrize(("instrument", "answers", "words"), IMPOSSIBLE_TABLE)
def test_an_impossible_answer_is_refused_naming_question_and_value(
    instrument: object, answers: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ImpossibleAnswer) as refused:
        score_screening(instrument, answers)  # type: ignore[arg-type]

    for word in words:
        assert word in str(refused.value)


@pytest.mark.parametrize(
    "answers",
    [
        ["LA9-3", "LA31996-4"],  # none of the above, with pests
        ["LA31996-4", "LA9-3"],
    ],
)
def test_none_of_the_above_cannot_go_with_another_answer(answers: list[str]) -> None:
    with pytest.raises(ImpossibleAnswer, match="“None of the above” cannot go with other"):
        score_screening(AHC_HRSN, {"96778-6": answers})


def test_a_select_all_question_takes_several_real_answers() -> None:
    score = score_screening(AHC_HRSN, {"96778-6": ["LA31996-4", "LA28580-1"]})
    assert score.answers["96778-6"] == ("LA31996-4", "LA28580-1")
    assert score.positive_domains == {"inadequate-housing": ("96778-6",)}
