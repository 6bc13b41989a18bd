"""Sign in, sign out, and choosing which organisation to act for."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from referrals.auth import service
from referrals.auth.roles import Permission
from referrals.web import client_ip, current_actor, local_redirect_target, render

bp = Blueprint("auth", __name__)


def home_for_current_user() -> str:
    actor = current_actor()
    if actor.can(Permission.WORK_REFERRALS):
        return url_for("loop.inbox")
    if actor.can(Permission.SEND_REFERRALS):
        return url_for("loop.sent")
    if actor.can(Permission.VIEW_NETWORK):
        return url_for("admin.messages")
    return url_for("auth.login")


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(home_for_current_user())
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(home_for_current_user())
        return render("auth/login.html", next=local_redirect_target(request.args.get("next")))
    settings = current_app.config["SETTINGS"]
    email = request.form.get("email", "")[:254]
    attempt = service.SignInAttempt(email, request.form.get("password", "")[:1024], client_ip())
    result = service.authenticate(attempt, service.SignInLimits.from_settings(settings))
    if result.user is None:
        # The same page for every address: only the typed address and the CSRF token differ.
        response = render(
            "auth/login.html",
            None,
            429 if result.retry_after else 401,
            error=result.error,
            email=email,
            next=local_redirect_target(request.form.get("next")),
        )
        if result.retry_after:
            response.headers["Retry-After"] = str(result.retry_after)
        return response
    session.clear()  # no fixation: a fresh session for the signed-in person
    login_user(result.user)
    if result.user.memberships:
        session["membership_id"] = str(result.user.memberships[0].id)
    target = local_redirect_target(request.form.get("next")) or home_for_current_user()
    return redirect(target)


@bp.post("/logout")
@login_required
def logout() -> Response:
    service.sign_out_everywhere(current_actor())
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.post("/organisation")
@login_required
def switch_organisation() -> Response:
    chosen = request.form.get("membership_id", "")
    if not any(str(m.id) == chosen for m in current_user.memberships):
        flash("You are not a member of that organisation.", "error")
    else:
        session["membership_id"] = chosen
    return redirect(url_for("auth.index"))
