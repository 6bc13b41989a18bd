"""Use cases for social-needs screenings: start one, save answers as they come, finish it (score,
record an observation per answer and a need per positive domain), and decide on the needs.

A screening belongs to the clinic that holds the patient's record; only its clinic staff see it.
Every call is audited; a finished screening cannot be changed or finished again."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import transaction, utcnow
from referrals.errors import Conflict, Forbidden, InvalidInput, NotFound
from referrals.patients.consent_rules import MINOR_CONSENT_MIN_AGE
from referrals.patients.instruments import DEFAULT_INSTRUMENT, INSTRUMENTS, Instrument
from referrals.patients.models import Guardian, Need, Patient, Screening, ScreeningObservation
from referrals.patients.needs import need_codes
from referrals.patients.scoring import (
    SKIPPED,
    ImpossibleAnswer,
    ScreeningScore,
    check_answers,
    negative_answer,
    score_screening,
)
from referrals.terminology import (
    CALIFORNIA,
    GUARDIAN_RELATIONSHIPS,
    california_today,
)

FORM_LANGUAGES = ("en", "es")
RESPONDENT_NAME_MAX = 200
# How the clinician decides on a need: (verification status, the family wants help now)
DECISIONS: dict[str, tuple[str, bool]] = {
    "help-now": ("confirmed", True),
    "confirmed": ("confirmed", False),
    "dismissed": ("refuted", False),
}


def _require_clinic(actor: Actor) -> None:
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only clinic staff who send referrals screen patients.")


def _patient(session: Session, actor: Actor, patient_id: uuid.UUID, action: str) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.organization_id != actor.org_id:
        audit.deny(session, actor, action, "Patient", patient_id)
        raise NotFound("No such patient in your organisation.")
    return patient


def load_screening(
    session: Session, actor: Actor, screening_id: uuid.UUID, action: str, *, lock: bool = False
) -> Screening:
    """A screening of one of the actor's clinic's patients, or NotFound (audited). `lock` holds
    its row until the transaction ends (PostgreSQL), so that two submissions of the same
    screening's form run one after the other."""
    screening = session.get(Screening, screening_id, with_for_update=lock or None)
    if screening is None or screening.organization_id != actor.org_id:
        audit.deny(session, actor, action, "Screening", screening_id)
        raise NotFound("No such screening for a patient of your organisation.")
    return screening


def respondent_choices(patient: Patient, age: int) -> list[tuple[str, str]]:
    """Who may have answered, as (form value, label): the guardians on file, the patient when
    old enough to answer for themselves, or another caregiver named on the form."""
    choices = [
        (f"guardian:{guardian.id}", f"{guardian.name} ({_relationship(guardian)})")
        for guardian in patient.guardians
    ]
    if age >= MINOR_CONSENT_MIN_AGE:
        choices.append(("patient", f"{patient.name} (the patient)"))
    choices.append(("other", "Another caregiver (name below)"))
    return choices


def _relationship(guardian: Guardian) -> str:
    return GUARDIAN_RELATIONSHIPS.get(guardian.relationship_code, "guardian").lower()


def default_respondent(patient: Patient, age: int) -> str:
    """The respondent the form starts with: the patient for an adolescent or adult; for a child,
    the one guardian on file (a child does not answer for themselves); else nobody yet."""
    if age >= MINOR_CONSENT_MIN_AGE:
        return "patient" if age >= 18 or not patient.guardians else ""
    return f"guardian:{patient.guardians[0].id}" if len(patient.guardians) == 1 else ""


def start_screening(actor: Actor, patient_id: uuid.UUID, form: Mapping[str, str]) -> Screening:
    """Open an in-progress screening of a patient with one instrument, recording who answers."""
    _require_clinic(actor)
    key = (form.get("instrument") or DEFAULT_INSTRUMENT).strip()
    if key not in INSTRUMENTS:
        raise InvalidInput(
            "Choose a screening tool.", {"instrument": ["Choose one of the listed tools."]}
        )
    with transaction() as session:
        patient = _patient(session, actor, patient_id, "screening.start")
        age = patient.age(california_today())
        respondent, guardian, name = _respondent(patient, age, form)
        language = (form.get("language") or "").strip()
        if not language:
            spoken = guardian.language if guardian else patient.language
            language = spoken if spoken in FORM_LANGUAGES else "en"
        if language not in FORM_LANGUAGES:
            raise InvalidInput(
                "The form is in English or Spanish.", {"language": ["English or Spanish."]}
            )
        instrument = INSTRUMENTS[key]
        now = utcnow()
        screening = Screening(
            id=uuid.uuid4(),
            patient_id=patient.id,
            organization_id=actor.org_id,
            instrument=instrument.key,
            instrument_code=instrument.code,
            status="in-progress",
            language=language,
            respondent=respondent,
            respondent_guardian_id=guardian.id if guardian else None,
            respondent_name=name,
            answers={},
            results=[],
            started_at=now,
            updated_at=now,
            recorded_by_id=actor.user_id,
        )
        session.add(screening)
        session.flush()
        audit.record(
            session,
            actor,
            "screening.start",
            "Screening",
            screening.id,
            patient_id=patient.id,
            detail={"instrument": instrument.key, "respondent": respondent},
        )
    return screening


def _respondent(
    patient: Patient, age: int, form: Mapping[str, str]
) -> tuple[str, Guardian | None, str]:
    value = (form.get("respondent") or "").strip()
    if value.startswith("guardian:"):
        guardian = next((g for g in patient.guardians if str(g.id) == value[9:]), None)
        if guardian is None:
            raise InvalidInput(
                "Who answered?", {"respondent": ["Choose one of the patient's guardians."]}
            )
        return "guardian", guardian, guardian.name
    if value == "patient":
        if age < MINOR_CONSENT_MIN_AGE:
            raise InvalidInput(
                "Who answered?",
                {
                    "respondent": [
                        f"A child under {MINOR_CONSENT_MIN_AGE} does not answer for themselves: "
                        "record the parent or caregiver who did."
                    ]
                },
            )
        return "patient", None, patient.name
    if value == "other":
        name = (form.get("respondent_name") or "").strip()
        if not name or len(name) > RESPONDENT_NAME_MAX:
            raise InvalidInput(
                "Who answered?",
                {"respondent_name": [f"Name the caregiver (at most {RESPONDENT_NAME_MAX})."]},
            )
        return "other", None, name
    raise InvalidInput("Who answered?", {"respondent": ["Say who answered the questions."]})


def form_answers(
    instrument: Instrument, form: Mapping[str, object]
) -> tuple[dict[str, object], list[str]]:
    """The answers a form carries, and the questions it clears. Field `q-<LOINC>` per question,
    repeated for select-all questions; "skipped" marks a question the family skipped. Each
    question on the page also sends `present=<LOINC>`: one present without an answer was
    cleared (unticked boxes send nothing). Unknown `q-` fields are kept so that checking them
    names them."""
    getlist = getattr(form, "getlist", None)

    def values_of(key: str) -> list[str]:
        raw = getlist(key) if getlist else [form[key]] if key in form else []
        return [str(v) for v in raw if v]

    answers: dict[str, object] = {}
    for key in form:
        if not key.startswith("q-"):
            continue
        code = key[2:]
        values = values_of(key)
        question = instrument.question(code)
        if not values:
            continue
        if values == [SKIPPED]:
            answers[code] = SKIPPED
        elif question is not None and question.repeats:
            answers[code] = values
        else:
            answers[code] = values[0] if len(values) == 1 else values
    cleared = [code for code in values_of("present") if code not in answers]
    return answers, cleared


def save_answers(
    actor: Actor,
    screening_id: uuid.UUID,
    form: Mapping[str, object],
    *,
    rest_negative: bool = False,
) -> Screening:
    """Keep what the form answers on an in-progress screening (not scored yet). With
    `rest_negative`, every question still unanswered that has a single negative answer gets it:
    the clinician's "no to the rest"."""
    _require_clinic(actor)
    with transaction() as session:
        screening = load_screening(session, actor, screening_id, "screening.update")
        _refuse_finished(screening)
        _check_version(screening, form)
        _merge(screening, form)
        if rest_negative:
            instrument = INSTRUMENTS[screening.instrument]
            answers = dict(screening.answers)
            filled = []
            for question in instrument.questions:
                negative = negative_answer(question)
                if question.code not in answers and negative is not None:
                    answers[question.code] = [negative]
                    filled.append(question.code)
            screening.answers = answers
            # Kept apart: the results say which answers came from "no to the rest".
            screening.autofilled = [*screening.autofilled, *filled]
        screening.updated_at = utcnow()
        _flush(session)
        audit.record(
            session,
            actor,
            "screening.update",
            "Screening",
            screening.id,
            patient_id=screening.patient_id,
            detail={"answered": len(screening.answers)},
        )
    return screening


def _refuse_finished(screening: Screening) -> None:
    if screening.completed:
        when = screening.completed_at.astimezone(CALIFORNIA).strftime("%b %-d at %-I:%M %p")
        raise Conflict(
            f"This screening was submitted already ({when}); it cannot be changed or submitted "
            "again. Start a new screening to record new answers."
        )


def _check_version(screening: Screening, form: Mapping[str, object]) -> None:
    """A whole form carries the version it was drawn from and its page's id: sent from a page
    older than the last save made elsewhere (another window), it would put back answers changed
    since. The page's own saves (each question as it is answered) do not count; they carry no
    version and only change their question."""
    given = str(form.get("version") or "").strip()
    page = str(form.get("page") or "")[:32]
    if given and given != str(screening.version) and screening.last_page != page:
        raise Conflict(
            "These answers were changed in another window since this page was opened. Reload "
            "the page to see them, then go on."
        )


def _merge(screening: Screening, form: Mapping[str, object]) -> None:
    instrument = INSTRUMENTS[screening.instrument]
    found, cleared = form_answers(instrument, form)
    try:
        given = check_answers(instrument, found)
    except ImpossibleAnswer as err:
        raise InvalidInput(str(err), {"answers": [str(err)]}) from None
    screening.last_page = str(form.get("page") or "")[:32]
    answers = dict(screening.answers)
    autofilled = [code for code in screening.autofilled if code not in given]
    for code in cleared:
        if instrument.question(code) is not None:
            answers.pop(code, None)
    for code, value in given.items():
        answers[code] = value if value == SKIPPED else list(value)
    screening.answers = answers
    screening.autofilled = [code for code in autofilled if code in answers]


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise Conflict(
            "Someone else saved this screening while you had it open. Reload the page, check the "
            "answers, then go on."
        ) from None


def complete_screening(
    actor: Actor, screening_id: uuid.UUID, form: Mapping[str, object]
) -> Screening:
    """Finish a screening: every question answered or marked skipped, then scored. Records one
    observation per answered question and per instrument result, and one unconfirmed need per
    positive domain. A screening is submitted once: a second submission is refused."""
    _require_clinic(actor)
    with transaction() as session:
        screening = load_screening(session, actor, screening_id, "screening.complete")
        _refuse_finished(screening)
        _check_version(screening, form)
        _merge(screening, form)
        instrument = INSTRUMENTS[screening.instrument]
        score = score_screening(instrument, screening.answers)
        if not score.complete:
            texts = [instrument.question(code).text.en for code in score.unanswered]
            raise InvalidInput(
                f"{len(texts)} question{'s' if len(texts) != 1 else ''} still need an answer "
                "(or mark them skipped).",
                {f"q-{code}": ["Answer this, or mark it skipped."] for code in score.unanswered},
            )
        now = utcnow()
        screening.status, screening.completed_at, screening.updated_at = "completed", now, now
        screening.results = [
            {"code": r.code, "value": r.value, "positive": r.positive} for r in score.results
        ]
        _record_observations(session, screening, instrument, score, now)
        _record_needs(session, screening, score, now)
        _flush(session)
        session.expire(screening, ["observations", "needs"])  # loaded before they were written
        screening.needs  # noqa: B018  (the caller reads them after the session ends)
        screening.observations  # noqa: B018
        audit.record(
            session,
            actor,
            "screening.complete",
            "Screening",
            screening.id,
            patient_id=screening.patient_id,
            detail={
                "instrument": instrument.key,
                "positive_domains": sorted(score.positive_domains),
                "skipped": len(score.skipped),
            },
        )
    return screening


def _record_observations(
    session: Session,
    screening: Screening,
    instrument: Instrument,
    score: ScreeningScore,
    now: datetime,
) -> None:
    position = 0
    for question in instrument.questions:
        codes = score.answers.get(question.code)
        if codes is None:
            continue  # skipped: the QuestionnaireResponse says so; no observation
        position += 1
        domains = [d for d, qs in score.positive_domains.items() if question.code in qs]
        session.add(
            ScreeningObservation(
                id=uuid.uuid4(),
                screening_id=screening.id,
                patient_id=screening.patient_id,
                position=position,
                code=question.code,
                display=question.text.en,
                answer_codes=list(codes),
                answer_display="; ".join(question.option(code).text.en for code in codes),
                positive=score.positive_questions.get(question.code, False),
                domains=domains,
                effective_at=now,
            )
        )
    for rule, result in zip(instrument.rules, score.results, strict=True):
        if result.value is None and not result.positive:
            continue  # not enough answers to know
        position += 1
        answer_display = str(result.value) if result.value is not None else "at or above threshold"
        answer_codes: list[str] = []
        value_integer = None
        if isinstance(result.value, int):
            value_integer = result.value
        elif isinstance(result.value, str):
            answer_codes = [result.value]
            option = next((o for o in (rule.at_risk, rule.no_risk) if o.code == result.value), None)  # type: ignore[union-attr]
            answer_display = option.text.en if option else result.value
        session.add(
            ScreeningObservation(
                id=uuid.uuid4(),
                screening_id=screening.id,
                patient_id=screening.patient_id,
                position=position,
                code=result.code,
                display=rule.name.en,
                answer_codes=answer_codes,
                answer_display=answer_display,
                value_integer=value_integer,
                derived=True,
                positive=result.positive,
                domains=[rule.domain] if result.positive else [],
                effective_at=now,
            )
        )


def _record_needs(
    session: Session, screening: Screening, score: ScreeningScore, now: datetime
) -> None:
    for position, (domain, evidence) in enumerate(score.positive_domains.items(), start=1):
        codes = need_codes(domain)
        session.add(
            Need(
                id=uuid.uuid4(),
                patient_id=screening.patient_id,
                screening_id=screening.id,
                position=position,
                domain=domain,
                display=codes.display,
                snomed_code=codes.snomed.code if codes.snomed else None,
                snomed_display=codes.snomed.display if codes.snomed else None,
                icd10_code=codes.icd10cm.code if codes.icd10cm else None,
                icd10_display=codes.icd10cm.display if codes.icd10cm else None,
                verification="unconfirmed",
                clinical_status="active",
                evidence=list(evidence),
                recorded_at=now,
            )
        )


def parse_decisions(screening: Screening, form: Mapping[str, object]) -> dict[uuid.UUID, str]:
    """The clinician's decision per need from a form (`need-<id>`: help-now | confirmed |
    dismissed); needs not mentioned are left as they are. A decision on a need of another
    screening, or an unknown decision, is refused."""
    ids = {str(need.id): need.id for need in screening.needs}
    decisions: dict[uuid.UUID, str] = {}
    for key in form:
        if not key.startswith("need-"):
            continue
        value = str(form[key] or "").strip()
        if not value:
            continue
        if key[5:] not in ids:
            raise InvalidInput("That need is not part of this screening.", {key: ["Unknown."]})
        if value not in DECISIONS:
            raise InvalidInput(
                "Confirm or dismiss each need.", {key: ["Pick one of the listed choices."]}
            )
        decisions[ids[key[5:]]] = value
    return decisions


def apply_decisions(
    session: Session, actor: Actor, screening: Screening, decisions: Mapping[uuid.UUID, str]
) -> None:
    """Confirm or dismiss needs and record the family's priorities, inside the caller's
    transaction (deciding and referring are one write)."""
    if not screening.completed:
        raise InvalidInput(
            "Finish the screening before deciding on its needs.", {"answers": ["Not finished."]}
        )
    now = utcnow()
    for need in screening.needs:
        decision = decisions.get(need.id)
        if decision is None:
            continue
        verification, priority = DECISIONS[decision]
        if (need.verification, need.family_priority) == (verification, priority):
            continue
        if verification == "refuted" and open_referral_exists(session, need):
            raise InvalidInput(
                f"{need.display} has an open referral: cancel it before dismissing the need.",
                {f"need-{need.id}": ["Cancel its open referral first."]},
            )
        need.verification, need.family_priority = verification, priority
        need.clinical_status = "inactive" if verification == "refuted" else "active"
        need.decided_at, need.decided_by_id = now, actor.user_id
        audit.record(
            session,
            actor,
            f"need.{decision}",
            "Need",
            need.id,
            patient_id=screening.patient_id,
            detail={"domain": need.domain},
        )


def open_referral_exists(session: Session, need: Need, service_id: uuid.UUID | None = None) -> bool:
    """Whether the need has an open referral (to this service, when one is named)."""
    from referrals.loop.lifecycle import OPEN
    from referrals.loop.models import Referral, Task

    query = (
        select(Referral.id)
        .join(Referral.task)
        .where(Referral.need_id == need.id, Task.status.in_([s.value for s in OPEN]))
    )
    if service_id is not None:
        query = query.where(Referral.service_id == service_id)
    return session.scalar(query.limit(1)) is not None


def open_screening(actor: Actor, screening_id: uuid.UUID) -> Screening:
    """A screening with its answers, observations and needs, for the patient's clinic."""
    _require_clinic(actor)
    with transaction() as session:
        screening = load_screening(session, actor, screening_id, "screening.view")
        screening.patient  # loaded for the page  # noqa: B018
        audit.record(
            session,
            actor,
            "screening.view",
            "Screening",
            screening.id,
            patient_id=screening.patient_id,
        )
    return screening


def patient_screenings(actor: Actor, patient: Patient) -> list[Screening]:
    """The screenings of one of the actor's clinic's patients, newest first."""
    if patient.organization_id != actor.org_id or not actor.can(Permission.SEND_REFERRALS):
        return []
    with transaction() as session:
        return list(
            session.scalars(
                select(Screening)
                .where(Screening.patient_id == patient.id)
                .order_by(Screening.started_at.desc())
            )
        )
