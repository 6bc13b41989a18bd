"""Referral pages: the referral form, a referral with its timeline and actions, the recipient's
inbox and the referrer's list. Thin: parse, call the service, render."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, current_app, flash, redirect, request, url_for
from flask_login import login_required

from referrals.auth.roles import Permission
from referrals.directory.listing import is_stale, own_listings
from referrals.directory.models import CAPACITY_STATUSES
from referrals.directory.search import SEARCH_FIELDS, run_search
from referrals.errors import Conflict, InvalidInput
from referrals.loop import service
from referrals.loop.lifecycle import (
    ACTION_LABELS,
    STATUS_LABELS,
    Action,
    Refusal,
    Side,
    Status,
    available_actions,
)
from referrals.loop.models import Task
from referrals.loop.reasons import PROGRESS_STEPS, REASONS, dhcs_reporting
from referrals.patients import service as patients
from referrals.terminology import SDOH_CATEGORIES, california_today
from referrals.text_values import whole_number
from referrals.web import current_actor, is_background_refresh, render, require

bp = Blueprint("loop", __name__)

# Moves the inbox offers as one click; the others need a reason or an outcome.
INLINE_ACTIONS = (Action.ACCEPT, Action.START)


def inline_actions(task: Task) -> list[Action]:
    """The one-click moves the lifecycle allows the recipient on this Task now."""
    allowed = available_actions(Status(task.status), Side.RECIPIENT)
    return [action for action in INLINE_ACTIONS if action in allowed]


def _referral_form(
    patient_id: uuid.UUID, form: dict, errors: dict, error: str | None = None, status: int = 200
) -> Response:
    actor = current_actor()
    patient = patients.get_patient(actor, patient_id)
    age = patient.age(california_today())
    search = _service_search(form, zip_code=patient.zip_code, age=age, language=patient.language)
    found = run_search(search, other_languages=True)
    return render(
        "loop/new.html",
        "services" if request.args.get("fragment") == "services" else None,
        status,
        patient=patient,
        found=found,
        search=search,
        form=form,
        errors=errors,
        error=error,
        category=search.get("category"),
        categories=SDOH_CATEGORIES,
        age=age,
        today=california_today().isoformat(),
    )


def _service_search(form: dict, *, zip_code: str, age: int, language: str) -> dict[str, str]:
    """The directory search the form shows: what the clinician set, or at first the patient's
    ZIP, age and language (the same search as the directory page)."""
    search = {name: str(form.get(name) or "") for name in ("category", *SEARCH_FIELDS)}
    if not any(name in form for name in ("zip", "radius", "language", "age")):
        search.update(zip=zip_code or "", age=str(age), language=language or "")
    return search


@bp.get("/patients/<uuid:patient_id>/referrals/new")
@login_required
def new(patient_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    # Consent is most often given at the visit itself.
    form = {"consent_date": california_today().isoformat(), **request.args}
    return _referral_form(patient_id, form, {})


@bp.post("/patients/<uuid:patient_id>/referrals")
@login_required
def create(patient_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    if request.form.get("find_services"):  # the search's own button, for browsers without JS
        return _referral_form(patient_id, dict(request.form), {})
    try:
        referral = service.send_referral(current_actor(), patient_id, request.form)
    except InvalidInput as err:
        return _referral_form(patient_id, dict(request.form), err.fields, err.message, 422)
    flash(f"Referral sent to {referral.performer_org.name}.", "success")
    return redirect(url_for("loop.show", referral_id=referral.id))


def _detail(
    referral_id: uuid.UUID,
    *,
    errors: dict | None = None,
    error: str | None = None,
    form: dict | None = None,
    status: int = 200,
) -> Response:
    view = service.open_referral(current_actor(), referral_id)
    settings = current_app.config["SETTINGS"]
    return render(
        "loop/show.html",
        None,
        status,
        view=view,
        r=view.referral,
        task=view.task,
        reasons=REASONS,
        steps=PROGRESS_STEPS,
        errors=errors or {},
        error=error,
        form=form or {},
        overdue=service.is_overdue(view.task, settings.overdue_business_days),
        dhcs=dhcs_reporting(view.task),
        today=california_today(),
    )


@bp.get("/referrals/<uuid:referral_id>")
@login_required
def show(referral_id: uuid.UUID) -> Response:
    return _detail(referral_id)


@bp.post("/referrals/<uuid:referral_id>/status")
@login_required
def change(referral_id: uuid.UUID) -> Response:
    actor = current_actor()
    inline = request.htmx and request.form.get("from") == "inbox"
    try:
        task = service.change_referral(actor, referral_id, request.form)
    except (InvalidInput, Refusal, Conflict) as err:
        message = err.message if isinstance(err, InvalidInput | Conflict) else str(err)
        if inline:
            raise
        status = 409 if isinstance(err, Refusal | Conflict) else 422
        fields = err.fields if isinstance(err, InvalidInput) else {}
        return _detail(
            referral_id, errors=fields, error=message, form=dict(request.form), status=status
        )
    action = Action(request.form["action"])
    if inline:
        return render(
            "loop/_inbox_row.html",
            task=task,
            inline_actions=inline_actions,
            settings=current_app.config["SETTINGS"],
            flash_message=_done(action, task),
            new_count=service.count_new_referrals(actor),
        )
    flash(_done(action, task), "success")
    return redirect(url_for("loop.show", referral_id=referral_id))


def _done(action: Action, task: object) -> str:
    if action is Action.NOTE:
        return "Progress note added."
    status = STATUS_LABELS[Status(task.status)]  # type: ignore[attr-defined]
    if action is Action.CANCEL and task.status != Status.CANCELLED:  # type: ignore[attr-defined]
        return "Cancellation requested: the receiving organisation will confirm it."
    return f"{ACTION_LABELS[action]}: the referral is now {status.lower()}."


@bp.get("/inbox")
@login_required
def inbox() -> Response:
    actor = require(Permission.WORK_REFERRALS)
    status = request.args.get("status") or None
    if status not in Status._value2member_map_:
        status = None
    page_number = whole_number(request.args.get("page", "1"), 10**9) or 1
    page = service.inbox(actor, status, page_number, refresh=is_background_refresh())
    return render(
        "loop/inbox.html",
        "table" if request.htmx.target == "inbox-table" else None,
        page=page,
        status=status,
        statuses=STATUS_LABELS,
        inline_actions=inline_actions,
        settings=current_app.config["SETTINGS"],
        # Admins set their services' capacity from here in one click.
        listings=own_listings(actor) if actor.can(Permission.MANAGE_LISTINGS) else [],
        capacities=CAPACITY_STATUSES,
        is_stale=is_stale,
    )


@bp.get("/referrals")
@login_required
def sent() -> Response:
    actor = require(Permission.SEND_REFERRALS)
    bucket = request.args.get("bucket", "open")
    mine = request.args.get("scope", "mine") != "org"
    settings = current_app.config["SETTINGS"]
    referrals = service.sent_referrals(
        actor, bucket, mine=mine, overdue_days=settings.overdue_business_days
    )
    return render(
        "loop/sent.html",
        "table" if request.htmx.target == "sent-table" else None,
        referrals=referrals,
        bucket=bucket,
        mine=mine,
        settings=settings,
        is_overdue=lambda t: service.is_overdue(t, settings.overdue_business_days),
    )
