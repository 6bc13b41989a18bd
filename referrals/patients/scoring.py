"""Scoring a screening: which answers are positive, which SDOH domains screen positive and why,
and each instrument's own results (Hunger Vital Sign risk, AHC safety score). Pure: an
instrument and answers in, a result out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from referrals.patients.instruments import (
    EXCLUSIVE_ANSWERS,
    REFUSALS,
    EitherItemRule,
    Instrument,
    Question,
    Rule,
    SumScoreRule,
)

SKIPPED = "skipped"

# {question code: answer code | several answer codes (select-all questions) | "skipped"}
Answers = Mapping[str, str | Sequence[str]]


class ImpossibleAnswer(ValueError):
    """An answer the instrument does not allow: an unknown question or a value not in its list."""


@dataclass(frozen=True)
class InstrumentResult:
    code: str  # LOINC code of the result, e.g. 88124-3 or 95614-4
    value: str | int | None  # an answer code (LA...) or a score; None when it cannot be known
    positive: bool
    questions: tuple[str, ...]  # the answers it was derived from


@dataclass(frozen=True)
class ScreeningScore:
    instrument: str  # LOINC panel code
    complete: bool  # every question answered or explicitly skipped
    answers: dict[str, tuple[str, ...]]  # answered questions, their answer codes
    skipped: tuple[str, ...]
    unanswered: tuple[str, ...]  # neither answered nor skipped
    positive_questions: dict[str, bool]  # per answered question
    positive_domains: dict[str, tuple[str, ...]]  # domain -> question codes that made it positive
    results: tuple[InstrumentResult, ...]

    def result(self, code: str) -> InstrumentResult | None:
        return next((result for result in self.results if result.code == code), None)


def score_screening(instrument: Instrument, answers: Answers) -> ScreeningScore:
    """Score the answers against the instrument's published rules.

    Raises ImpossibleAnswer naming the question and value when an answer is not allowed."""
    given = _check_answers(instrument, answers)
    answered = {code: value for code, value in given.items() if value != SKIPPED}
    skipped = tuple(code for code in instrument.question_codes if given.get(code) == SKIPPED)
    unanswered = tuple(code for code in instrument.question_codes if code not in given)

    positive_questions: dict[str, bool] = {}
    positive_domains: dict[str, list[str]] = {}
    for question in instrument.questions:
        codes = answered.get(question.code)
        if codes is None:
            continue
        domains = _positive_domains(question, codes)
        positive_questions[question.code] = bool(domains)
        for domain in domains:
            positive_domains.setdefault(domain, []).append(question.code)

    results = tuple(_apply_rule(rule, answered, instrument) for rule in instrument.rules)
    for rule, result in zip(instrument.rules, results, strict=True):
        if result.positive:
            evidence = positive_domains.setdefault(rule.domain, [])
            evidence.extend(code for code in result.questions if code not in evidence)

    return ScreeningScore(
        instrument=instrument.code,
        complete=not unanswered,
        answers=answered,
        skipped=skipped,
        unanswered=unanswered,
        positive_questions=positive_questions,
        positive_domains={domain: tuple(codes) for domain, codes in positive_domains.items()},
        results=results,
    )


def check_answers(instrument: Instrument, answers: Answers) -> dict[str, tuple[str, ...] | str]:
    """The answers, each as a tuple of answer codes or "skipped"; ImpossibleAnswer otherwise."""
    return _check_answers(instrument, answers)


def negative_answer(question: Question) -> str | None:
    """The answer that screens negative, when the question has exactly one: what "no to the
    rest" fills in. None for questions with no single negative (demographics, several options):
    those the person must answer themselves."""
    scored = [option for option in question.options if option.points is not None]
    if scored:
        return min(scored, key=lambda option: option.points or 0).code
    if not question.positive_answers:
        return None
    negatives = [
        option.code
        for option in question.options
        if option.code not in question.positive_answers and option.code not in REFUSALS
    ]
    return negatives[0] if len(negatives) == 1 else None


def _check_answers(instrument: Instrument, answers: Answers) -> dict[str, tuple[str, ...] | str]:
    checked: dict[str, tuple[str, ...] | str] = {}
    for code, value in answers.items():
        question = instrument.question(code)
        if question is None:
            raise ImpossibleAnswer(
                f"Question {code} is not part of {instrument.name.en} ({instrument.code})."
            )
        if value == SKIPPED:
            checked[code] = SKIPPED
            continue
        values = (value,) if isinstance(value, str) else tuple(value)
        if SKIPPED in values:
            raise ImpossibleAnswer(
                f"Question {code} ({question.text.en}) is marked skipped and answered: "
                "untick one of them."
            )
        if not values:
            raise ImpossibleAnswer(
                f"Question {code} ({question.text.en}) has no answer; mark it skipped instead."
            )
        if len(values) > 1 and not question.repeats:
            raise ImpossibleAnswer(
                f"Question {code} ({question.text.en}) takes one answer, got {', '.join(values)}."
            )
        exclusive = [answer for answer in values if answer in EXCLUSIVE_ANSWERS]
        if exclusive and len(set(values)) > 1:
            option = question.option(exclusive[0])
            label = option.text.en if option else exclusive[0]
            raise ImpossibleAnswer(
                f"Question {code} ({question.text.en}): “{label}” cannot go with other answers."
            )
        for answer in values:
            if question.option(answer) is None:
                allowed = ", ".join(question.answer_codes)
                raise ImpossibleAnswer(
                    f"{answer!r} is not an answer to question {code} ({question.text.en}); "
                    f"allowed: {allowed}."
                )
        checked[code] = values
    return checked


def _positive_domains(question: Question, answers: tuple[str, ...]) -> tuple[str, ...]:
    domains: dict[str, None] = {}
    for answer in answers:
        domains.update(dict.fromkeys(question.positive_answers.get(answer, ())))
    return tuple(domains)


def _apply_rule(
    rule: Rule, answered: Mapping[str, tuple[str, ...] | str], instrument: Instrument
) -> InstrumentResult:
    if isinstance(rule, EitherItemRule):
        return _either_item(rule, answered)
    return _sum_score(rule, answered, instrument)


def _either_item(
    rule: EitherItemRule, answered: Mapping[str, tuple[str, ...] | str]
) -> InstrumentResult:
    # SDOHCC-QuestionnaireHungerVitalSign: no result unless at least one item was answered.
    given = [code for code in rule.questions if code in answered]
    if not given:
        return InstrumentResult(rule.code, None, False, ())
    risky = tuple(code for code in given if set(answered[code]) & rule.risk_answers)
    if risky:
        return InstrumentResult(rule.code, rule.at_risk.code, True, risky)
    return InstrumentResult(rule.code, rule.no_risk.code, False, tuple(given))


def _sum_score(
    rule: SumScoreRule, answered: Mapping[str, tuple[str, ...] | str], instrument: Instrument
) -> InstrumentResult:
    points: list[int] = []
    lowest_missing = 0
    for code in rule.questions:
        question = instrument.question(code)
        if question is None:
            raise ValueError(f"{instrument.code}: score {rule.code} names unknown question {code}")
        values = {option.code: option.points or 0 for option in question.options}
        if code in answered:
            points.append(values[answered[code][0]])
        else:
            lowest_missing += min(values.values())
    given = tuple(code for code in rule.questions if code in answered)
    total = sum(points)
    # The published score needs every item answered (AHC: "all safety questions must be
    # answered"). A partial sum still proves a positive screen when even the lowest answers to
    # the missing items would reach the threshold.
    positive = total + lowest_missing >= rule.threshold
    value = total if len(given) == len(rule.questions) else None
    return InstrumentResult(rule.code, value, positive, given)
