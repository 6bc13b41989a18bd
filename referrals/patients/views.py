"""Patient pages: find, register, open."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import login_required

from referrals.auth.roles import Permission
from referrals.errors import InvalidInput
from referrals.loop import service as loop
from referrals.loop.summary import TEXTS as SUMMARY_TEXTS
from referrals.patients import screening as screenings
from referrals.patients import service
from referrals.patients.screening_views import INSTRUMENT_NAMES, patient_start_form
from referrals.patients.service import LikelyDuplicate
from referrals.terminology import GENDERS, LANGUAGES, california_today
from referrals.web import current_actor, render, require

bp = Blueprint("patients", __name__, url_prefix="/patients")


@bp.get("")
@login_required
def index() -> Response:
    require(Permission.SEND_REFERRALS)
    query = request.args.get("q", "")[:100]
    patients = service.find_patients(current_actor(), query)
    return render("patients/index.html", "results", patients=patients, q=query)


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Response:
    require(Permission.SEND_REFERRALS)
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        try:
            patient = service.register_patient(current_actor(), request.form)
        except InvalidInput as err:
            return render(
                "patients/new.html",
                None,
                409 if isinstance(err, LikelyDuplicate) else 422,
                form=form,
                errors=err.fields,
                error=err.message,
                duplicates=getattr(err, "existing", []),
                GENDERS=GENDERS,
                LANGUAGES=LANGUAGES,
            )
        flash(f"{patient.name} was added.", "success")
        return redirect(url_for("patients.show", patient_id=patient.id))
    return render("patients/new.html", form=form, errors={}, GENDERS=GENDERS, LANGUAGES=LANGUAGES)


@bp.get("/<uuid:patient_id>")
@login_required
def show(patient_id: uuid.UUID) -> Response:
    actor = current_actor()
    patient = service.get_patient(actor, patient_id)
    referrals = loop.patient_referrals(actor, patient)
    return render(
        "patients/show.html",
        patient=patient,
        referrals=referrals,
        age=patient.age(california_today()),
        consents=loop.patient_consents(actor, patient),
        screenings=screenings.patient_screenings(actor, patient),
        start=patient_start_form(patient),
        INSTRUMENT_NAMES=INSTRUMENT_NAMES,
    )


@bp.get("/<uuid:patient_id>/summary")
@login_required
def summary(patient_id: uuid.UUID) -> Response:
    """A print-friendly page the family takes home, in their language."""
    require(Permission.SEND_REFERRALS)
    patient, language, items = loop.family_summary(current_actor(), patient_id)
    return render(
        "patients/summary.html",
        patient=patient,
        items=items,
        lang=language,
        t=SUMMARY_TEXTS[language],
    )


@bp.post("/<uuid:patient_id>/consents/<uuid:consent_id>/revoke")
@login_required
def revoke_consent(patient_id: uuid.UUID, consent_id: uuid.UUID) -> Response:
    require(Permission.SEND_REFERRALS)
    consent = loop.revoke_consent(current_actor(), consent_id, request.form.get("reason", ""))
    flash(
        f"Consent to share with {consent.recipient.name} is withdrawn: nothing more is shared "
        "and no more texts are sent for those referrals.",
        "success",
    )
    return redirect(url_for("patients.show", patient_id=patient_id))
