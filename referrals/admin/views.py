"""Network administration pages: messages, audit trail, jobs."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import login_required

from referrals.admin import service
from referrals.auth.roles import Permission
from referrals.errors import InvalidInput
from referrals.terminology import SDOH_CATEGORIES
from referrals.web import render, require

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/messages")
@login_required
def messages() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    return render("admin/messages.html", messages=service.recent_messages(actor))


@bp.get("/audit")
@login_required
def audit_trail() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    user = request.args.get("user", "").strip()[:254]
    patient = request.args.get("patient", "").strip()[:64]
    try:
        events, broken = service.audit_trail(actor, user_email=user, patient_id=patient)
        errors: dict = {}
    except InvalidInput as err:
        events, broken, errors = [], None, err.fields
    return render(
        "admin/audit.html",
        "table" if request.htmx.target == "audit-table" else None,
        422 if errors else 200,
        events=events,
        broken=broken,
        user=user,
        patient=patient,
        errors=errors,
    )


@bp.get("/jobs")
@login_required
def jobs() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    counts, dead = service.jobs_overview(actor)
    workers = service.workers_overview(actor)
    return render("admin/jobs.html", counts=counts, dead=dead, workers=workers)


@bp.post("/jobs/<uuid:job_id>/retry")
@login_required
def retry(job_id: uuid.UUID) -> Response:
    actor = require(Permission.VIEW_NETWORK)
    service.retry_job(actor, job_id)
    flash("The job will be tried again.", "success")
    return redirect(url_for("admin.jobs"))


@bp.route("/taxonomy-map", methods=["GET", "POST"])
@login_required
def taxonomy_map() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    errors: dict = {}
    form: dict = {}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            service.add_taxonomy_mapping(actor, form)
        except InvalidInput as err:
            errors = err.fields
        else:
            flash("Mapping added. It applies to the next import of the directory.", "success")
            return redirect(url_for("admin.taxonomy_map"))
    return render(
        "admin/taxonomy_map.html",
        None,
        422 if errors else 200,
        rows=service.taxonomy_map(actor),
        errors=errors,
        form=form,
        categories=SDOH_CATEGORIES,
    )


@bp.post("/taxonomy-map/<uuid:row_id>/delete")
@login_required
def remove_mapping(row_id: uuid.UUID) -> Response:
    actor = require(Permission.VIEW_NETWORK)
    service.remove_taxonomy_mapping(actor, row_id)
    flash("Mapping removed.", "success")
    return redirect(url_for("admin.taxonomy_map"))
