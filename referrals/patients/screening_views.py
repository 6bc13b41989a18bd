"""Screening pages: start a screening from the patient page, answer it on one page (saved as it
goes), finish it, then decide on its needs and send referrals for them in one submit."""

from __future__ import annotations

import contextlib
import uuid

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import login_required

from referrals.auth.roles import Permission
from referrals.errors import InvalidInput
from referrals.loop import from_screening
from referrals.loop import service as loop
from referrals.patients import screening as screenings
from referrals.patients.consent_rules import MINOR_CONSENT_MIN_AGE, SENSITIVE_DOMAINS
from referrals.patients.instruments import INSTRUMENTS, SumScoreRule, section_of
from referrals.patients.scoring import SKIPPED, negative_answer
from referrals.terminology import CONSENT_SCOPE, california_today
from referrals.web import current_actor, render, require

bp = Blueprint("screenings", __name__)


@bp.post("/patients/<uuid:patient_id>/screenings")
@login_required
def start(patient_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    try:
        screening = screenings.start_screening(current_actor(), patient_id, request.form)
    except InvalidInput as err:
        flash(" ".join([err.message, *(m for ms in err.fields.values() for m in ms)]), "error")
        return redirect(url_for("patients.show", patient_id=patient_id, _anchor="screenings"))
    return redirect(url_for("screenings.show", screening_id=screening.id))


# What the form says around the questions, in the form's language: the family may read along.
FORM_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "answered_by": "Answered by {name} ({who}), about the household.",
        "guardian": "parent or guardian",
        "patient": "the patient",
        "other": "caregiver",
        "saved_as_you_go": "Answers are saved as you go; the screening is scored when finished.",
        "all_that_apply": "Choose all that apply.",
        "skipped": "Skipped",
        "answer_this": "Answer this, or mark it skipped.",
        "autofilled": "“no to the rest”",
        "autofilled_title": "Answered with the “Answer the rest no” button",
        "progress": "{answered} of {total} answered · saved {time}",
        "finish": "Finish screening",
        "rest": "Answer the rest “no”",
        "rest_title": "Every question not answered yet gets its “no” answer (never, no, "
        "steady place…)",
        "later": "Save for later",
        "back": "Back to {name}",
    },
    # translation: needs review (every Spanish line of this table was written by us)
    "es": {
        "answered_by": "Respondido por {name} ({who}), sobre el hogar.",
        "guardian": "madre, padre o tutor",
        "patient": "el paciente",
        "other": "cuidador",
        "saved_as_you_go": "Las respuestas se guardan al contestar; la evaluación se califica "
        "al terminar.",
        "all_that_apply": "Marque todas las que correspondan.",
        "skipped": "Omitida",
        "answer_this": "Conteste esta pregunta o márquela como omitida.",
        "autofilled": "“no al resto”",
        "autofilled_title": "Respondida con el botón “Responder no al resto”",
        "progress": "{answered} de {total} respondidas · guardado {time}",
        "finish": "Terminar la evaluación",
        "rest": "Responder “no” al resto",
        "rest_title": "Cada pregunta sin respuesta recibe su respuesta “no” (nunca, no, "
        "lugar estable…)",
        "later": "Guardar para después",
        "back": "Volver a {name}",
    },
}


def _answer_form(screening, *, errors: dict | None = None, error: str | None = None, status=200):
    lang = request.args.get("lang") or screening.language
    lang = lang if lang in screenings.FORM_LANGUAGES else "en"
    instrument = INSTRUMENTS[screening.instrument]
    answered = sum(1 for q in instrument.questions if q.code in screening.answers)
    return render(
        "patients/screening_form.html",
        None,
        status,
        s=screening,
        patient=screening.patient,
        instrument=instrument,
        lang=lang,
        answers=screening.answers,
        answered=answered,
        SKIPPED=SKIPPED,
        negative_answer=negative_answer,
        section_of=section_of,
        t=FORM_TEXTS[lang],
        # One opening of the form: its own saves never count as someone else's.
        page_id=request.form.get("page") or uuid.uuid4().hex,
        errors=errors or {},
        error=error,
    )


def _needs_page(screening, *, form=None, errors=None, error=None, notice=None, status=200):
    patient = screening.patient
    people = from_screening.people(patient)
    respondent = from_screening.respondent_value(screening)
    defaults = {
        "consent_by": respondent,
        "sms_to": next(
            (p.value for p in people if p.value == respondent and p.phone),
            next((p.value for p in people if p.phone), "none"),
        ),
        "consent_language": from_screening.family_language(patient, screening),
    }
    need_ids = {need.id for need in screening.needs}
    sent: dict[str, list] = {}
    for referral in loop.patient_referrals(current_actor(), patient):
        if referral.need_id in need_ids:
            sent.setdefault(str(referral.need_id), []).append(referral)
    return render(
        "patients/screening_needs.html",
        None,
        status,
        s=screening,
        patient=patient,
        instrument=INSTRUMENTS[screening.instrument],
        age=patient.age(california_today()),
        suggestions=from_screening.suggest_services(patient, screening),
        people=people,
        form=form if form is not None else defaults,
        form_lists=request.form if form is not None else {},
        errors=errors or {},
        error=error,
        notice=notice,
        SCOPE=CONSENT_SCOPE,
        sent_by_need=sent,
        MINOR_CONSENT_MIN_AGE=MINOR_CONSENT_MIN_AGE,
        SENSITIVE_DOMAINS=SENSITIVE_DOMAINS,
        THRESHOLDS={
            rule.code: rule.threshold
            for rule in INSTRUMENTS[screening.instrument].rules
            if isinstance(rule, SumScoreRule)
        },
        language=from_screening.family_language(patient, screening),
    )


@bp.get("/screenings/<uuid:screening_id>")
@login_required
def show(screening_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    screening = screenings.open_screening(current_actor(), screening_id)
    if screening.completed:
        return _needs_page(screening)
    return _answer_form(screening)


@bp.post("/screenings/<uuid:screening_id>/answers")
@login_required
def save(screening_id: uuid.UUID) -> Response:
    """Keep the answers given so far; with `rest=negative`, answer the rest with their negative
    answer. HTMX saves on every change and gets the progress line back."""
    require(Permission.SEND_REFERRALS)
    actor = current_actor()
    rest = request.form.get("rest") == "negative"
    try:
        screening = screenings.save_answers(actor, screening_id, request.form, rest_negative=rest)
    except InvalidInput as err:
        screening = screenings.open_screening(actor, screening_id)
        return _answer_form(screening, errors=err.fields, error=err.message, status=422)
    if request.htmx and not rest:
        return _answer_form(screening)  # the progress block only, via hx-select
    if not request.htmx:
        flash("Answers saved." if not rest else "The remaining questions were answered “no”.")
    return redirect(url_for("screenings.show", screening_id=screening_id))


@bp.post("/screenings/<uuid:screening_id>/complete")
@login_required
def complete(screening_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    actor = current_actor()
    try:
        screening = screenings.complete_screening(actor, screening_id, request.form)
    except InvalidInput as err:
        # What the form carried is kept even though the screening cannot be finished yet.
        screening = screenings.open_screening(actor, screening_id)
        if not screening.completed:
            with contextlib.suppress(InvalidInput):
                screening = screenings.save_answers(actor, screening_id, request.form)
        return _answer_form(screening, errors=err.fields, error=err.message, status=422)
    found = [need.display.lower() for need in screening.needs]
    flash(
        "Screening finished: "
        + (f"positive for {', '.join(found)}." if found else "no needs found."),
        "success",
    )
    return redirect(url_for("screenings.show", screening_id=screening_id))


@bp.post("/screenings/<uuid:screening_id>/referrals")
@login_required
def refer(screening_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    actor = current_actor()
    try:
        screening, referrals = from_screening.refer_for_needs(actor, screening_id, request.form)
    except InvalidInput as err:
        screening = screenings.open_screening(actor, screening_id)
        return _needs_page(
            screening, form=dict(request.form), errors=err.fields, error=err.message, status=422
        )
    if referrals:
        names = ", ".join(dict.fromkeys(r.performer_org.name for r in referrals))
        count = len(referrals)
        flash(f"{count} referral{'s' if count != 1 else ''} sent: {names}.", "success")
        return redirect(url_for("patients.show", patient_id=screening.patient_id))
    # Nothing went out: say so and why, on the same page with what was filled in (the consent,
    # the note), so that a service forgotten can be ticked and the form sent again.
    nothing = from_screening.why_nothing_was_sent(screening.needs)
    return _needs_page(
        screening, form=dict(request.form), errors=nothing.fields, notice=nothing.message
    )


def patient_start_form(patient) -> dict:
    """What the patient page's "start a screening" form offers and starts with."""
    age = patient.age(california_today())
    return {
        "instruments": [(i.key, i.name.en) for i in INSTRUMENTS.values()],
        "respondents": screenings.respondent_choices(patient, age),
        "respondent": screenings.default_respondent(patient, age),
    }


INSTRUMENT_NAMES = {instrument.key: instrument.name.en for instrument in INSTRUMENTS.values()}
