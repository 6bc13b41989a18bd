"""The network admins' Exchange page: the peers (added, edited and subscribed to here), our
public key for them, the pushes that ran out of tries (with a retry button), and each
referral's sync state on each peer."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.errors import InvalidInput
from referrals.exchange import service
from referrals.exchange.client import PeerError, public_jwks
from referrals.exchange.models import ExchangePeer
from referrals.web import render, require

bp = Blueprint("exchange", __name__, url_prefix="/admin/exchange")

TEXT_FIELDS = ("name", "base_url", "client_id", "token_url", "scope")
SWITCHES = ("push", "poll", "active")
NEW_PEER_FORM: dict[str, Any] = {"scope": service.DEFAULT_SCOPE, "push": True, "active": True}


def _submitted(form: MultiDict) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A peer form's settings, and the organisations it serves ({our id: its id there})."""
    fields: dict[str, Any] = {key: form.get(key, "")[:1000] for key in TEXT_FIELDS}
    fields |= {key: key in form for key in SWITCHES}
    served = {org_id: form.get(f"remote-{org_id}", "")[:200] for org_id in form.getlist("serves")}
    return fields, served


def _as_form(fields: dict[str, Any], served: dict[str, str | None]) -> dict[str, Any]:
    return {**fields, "serves": {str(k): v or "" for k, v in served.items()}}


def _peer_form(peer: ExchangePeer) -> dict[str, Any]:
    fields = {key: getattr(peer, key) for key in (*TEXT_FIELDS, *SWITCHES)}
    return _as_form(fields, {o.organization_id: o.remote_id for o in peer.organizations})


def _our_jwks() -> tuple[str, str]:
    """Our public key as the page shows it (never the private half), or why there is none."""
    try:
        return json.dumps(public_jwks(), indent=2), ""
    except RuntimeError as err:
        return "", str(err)


def _overview(actor: Actor, form: dict[str, Any], errors: dict, status: int = 200) -> Response:
    jwks, jwks_error = _our_jwks()
    return render(
        "admin/exchange.html",
        None,
        status,
        peers=service.peers(actor),
        failed=service.failed_pushes(actor),
        states=service.sync_overview(actor),
        organizations=service.directory_organizations(actor),
        form=form,
        errors=errors,
        jwks=jwks,
        jwks_error=jwks_error,
    )


@bp.get("")
@login_required
def overview() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    return _overview(actor, NEW_PEER_FORM, {})


@bp.post("/peers")
@login_required
def add_peer() -> Response:
    actor = require(Permission.VIEW_NETWORK)
    fields, served = _submitted(request.form)
    try:
        peer = service.add_peer(actor, organizations=served, **fields)
    except InvalidInput as err:
        return _overview(actor, _as_form(fields, served), err.fields, status=422)
    flash(f"Added {peer.name}.", "success")
    return redirect(url_for("exchange.overview") + f"#peer-{peer.id}")


@bp.route("/peers/<uuid:peer_id>", methods=["GET", "POST"])
@login_required
def edit_peer(peer_id: uuid.UUID) -> Response:
    actor = require(Permission.VIEW_NETWORK)
    peer = service.find_peer(actor, peer_id)
    form, errors = _peer_form(peer), {}
    if request.method == "POST":
        fields, served = _submitted(request.form)
        try:
            peer = service.update_peer(actor, peer_id, organizations=served, **fields)
        except InvalidInput as err:
            form, errors = _as_form(fields, served), err.fields
        else:
            flash(f"Saved {peer.name}.", "success")
            return redirect(url_for("exchange.overview") + f"#peer-{peer.id}")
    return render(
        "admin/exchange_peer.html",
        None,
        422 if errors else 200,
        peer=peer,
        form=form,
        errors=errors,
        organizations=service.directory_organizations(actor),
    )


def _peer_row(actor: Actor, peer_id: uuid.UUID, **context: Any) -> Response:
    return render(
        "admin/exchange.html", "peer_row", peer=service.find_peer(actor, peer_id), **context
    )


@bp.post("/peers/<uuid:peer_id>/subscribe")
@login_required
def subscribe(peer_id: uuid.UUID) -> Response:
    """Ask the peer to notify us of its Tasks' changes; the row says how it went."""
    from referrals.exchange.notifications import subscribe as subscribe_to

    actor = require(Permission.VIEW_NETWORK)
    try:
        subscription_id = subscribe_to(actor, peer_id)
        outcome, ok = f"Subscribed: Subscription/{subscription_id}.", True
    except PeerError as err:
        outcome, ok = f"Not subscribed: {err}", False
    if request.htmx and not request.htmx.boosted:
        return _peer_row(actor, peer_id, outcome=outcome, ok=ok)
    flash(outcome, "success" if ok else "error")
    return redirect(url_for("exchange.overview") + f"#peer-{peer_id}")


@bp.post("/peers/<uuid:peer_id>/organizations/<uuid:organization_id>/remove")
@login_required
def remove_organization(peer_id: uuid.UUID, organization_id: uuid.UUID) -> Response:
    actor = require(Permission.VIEW_NETWORK)
    service.remove_organization(actor, peer_id, organization_id)
    if request.htmx and not request.htmx.boosted:
        return _peer_row(actor, peer_id, outcome="Organisation removed.", ok=True)
    flash("The peer no longer serves that organisation.", "success")
    return redirect(url_for("exchange.overview") + f"#peer-{peer_id}")


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
