"""Pages where organisations keep their listings current, and network admins see stale ones."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import login_required

from referrals.auth.roles import Permission
from referrals.directory import listing
from referrals.directory.models import CAPACITY_STATUSES, SERVICE_STATUSES
from referrals.errors import InvalidInput
from referrals.terminology import LANGUAGES, SDOH_CATEGORIES
from referrals.web import render, require

bp = Blueprint("listings", __name__, url_prefix="/listings")
WEEKDAY_NAMES = dict(
    zip(listing.WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True)
)


def _back() -> str:
    target = request.form.get("back", "")
    return target if target in {"inbox", "listings"} else "listings"


@bp.get("")
@login_required
def index() -> Response:
    actor = require(Permission.MANAGE_LISTINGS)
    return render(
        "listings/index.html",
        services=listing.own_listings(actor),
        is_stale=listing.is_stale,
        capacities=CAPACITY_STATUSES,
    )


@bp.route("/<uuid:service_id>/edit", methods=["GET", "POST"])
@login_required
def edit(service_id: uuid.UUID) -> Response:
    actor = require(Permission.MANAGE_LISTINGS)
    service = listing.get_listing(actor, service_id)
    context = dict(
        service=service,
        categories=SDOH_CATEGORIES,
        languages=LANGUAGES,
        statuses=[(s, s.capitalize()) for s in SERVICE_STATUSES],
        pattern=listing.weekly_pattern(service),
        weekdays=WEEKDAY_NAMES,
    )
    if request.method == "GET":
        return render("listings/edit.html", form=None, errors={}, **context)
    try:
        listing.update_listing(actor, service_id, request.form)
    except InvalidInput as err:
        return render(
            "listings/edit.html",
            None,
            422,
            form=request.form,
            errors=err.fields,
            error=err.message,
            **context,
        )
    flash(f"“{request.form.get('name', service.name)}” is saved.", "success")
    return redirect(url_for("listings.index"))


@bp.post("/<uuid:service_id>/capacity")
@login_required
def capacity(service_id: uuid.UUID) -> Response:
    actor = require(Permission.MANAGE_LISTINGS)
    service = listing.set_capacity(
        actor,
        service_id,
        request.form.get("capacity_status", ""),
        request.form.get("capacity_note", ""),
    )
    message = f"{service.name}: {CAPACITY_STATUSES[service.capacity_status].lower()}."
    if request.htmx:
        return render(
            "listings/_capacity.html",
            service=service,
            capacities=CAPACITY_STATUSES,
            back=_back(),
            is_stale=listing.is_stale,
            saved=message,
        )
    flash(message, "success")
    return redirect(url_for("loop.inbox" if _back() == "inbox" else "listings.index"))


@bp.get("/stale")
@login_required
def stale() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    return render("listings/stale.html", services=listing.stale_listings(actor))
