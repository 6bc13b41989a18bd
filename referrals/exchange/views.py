"""The network admins' Exchange page: the peers, the pushes that ran out of tries (with a retry
button), and each referral's sync state on each peer."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import login_required

from referrals.auth.roles import Permission
from referrals.exchange import service
from referrals.web import render, require

bp = Blueprint("exchange", __name__, url_prefix="/admin/exchange")


@bp.get("")
@login_required
def overview() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    return render(
        "admin/exchange.html",
        peers=service.peers(actor),
        failed=service.failed_pushes(actor),
        states=service.sync_overview(actor),
    )


@bp.post("/pushes/<uuid:job_id>/retry")
@login_required
def retry(job_id: uuid.UUID) -> Response:
    actor = require(Permission.VIEW_NETWORK)
    service.retry_push(actor, job_id)
    if request.htmx and not request.htmx.boosted:
        push = service.push_row(actor, job_id)
        return render("admin/exchange.html", "push_row", push=push, retried=True)
    flash("The push will be tried again.", "success")
    return redirect(url_for("exchange.overview"))
