"""What every page shares: who is signed in and for which organisation, idle timeout, security
headers, errors as pages or fragments, and rendering a whole page or just one block of it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFError
from jinja2_fragments import render_block
from werkzeug.exceptions import HTTPException, InternalServerError

from referrals.auth.actor import Actor
from referrals.auth.models import Membership, User
from referrals.auth.roles import ROLE_LABELS, Permission, Role
from referrals.db import db, utcnow
from referrals.directory import api as hsds_api
from referrals.errors import ServiceError
from referrals.fhir import oauth
from referrals.fhir import outcomes as fhir_outcomes
from referrals.forms import display_phone
from referrals.loop.lifecycle import ACTION_LABELS, EVENT_LABELS, STATUS_LABELS, Refusal, Status
from referrals.loop.reasons import BUSINESS_STATUS_LABELS
from referrals.notify.texts import mask_phone
from referrals.terminology import (
    CALIFORNIA,
    CONSENT_GIVERS,
    CONSENT_METHOD_LABELS,
    CONSENT_METHODS,
    CONSENT_SCOPE,
    GUARDIAN_RELATIONSHIPS,
    LANGUAGES,
    PRIORITIES,
    category_label,
    language_label,
)

log = logging.getLogger(__name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.session_protection = "strong"
MAX_REDIRECT_TARGET = 2000  # characters: longer is no path of ours


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    """The person a session belongs to, unless they were disabled or signed out since."""
    user_id, _, version = session_id.partition(":")
    try:
        user = db.session.get(User, uuid.UUID(user_id))
    except ValueError:
        return None
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return user


@login_manager.unauthorized_handler
def _unauthorized() -> Response:
    back = local_redirect_target(request.full_path) if request.method == "GET" else None
    target = url_for("auth.login", next=back)
    if request.htmx:
        # A swap would put the sign-in page inside a table cell: send the browser there.
        response = make_response("", 401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    flash(login_manager.login_message, "info")
    return redirect(target)


def current_membership() -> Membership | None:
    if not current_user.is_authenticated:
        return None
    chosen = session.get("membership_id")
    for membership in current_user.memberships:
        if str(membership.id) == chosen:
            return membership
    return current_user.memberships[0] if current_user.memberships else None


def client_ip() -> str | None:
    return request.remote_addr


def current_actor() -> Actor:
    """The signed-in person acting for their chosen organisation."""
    if "actor" not in g:
        from referrals.auth.service import actor_for

        g.actor = actor_for(current_user, current_membership(), client_ip())
    return g.actor


def render(
    template: str, block: str | None = None, status: int = 200, /, **context: Any
) -> Response:
    """The whole page, or only `block` of it when HTMX asked for a fragment, answered with the
    HTTP `status`.

    `template`, `block` and `status` are positional-only, and the context travels on to the
    renderers as one mapping, so a template variable may have any name (the inbox's filter is
    called `status`) without being taken for an argument, here or below."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app.update_template_context(context)
    wants_fragment = (
        block is not None
        and request.htmx
        and not request.htmx.boosted
        and not request.htmx.history_restore_request
    )
    if wants_fragment:
        body = render_block(app.jinja_env, template, block, context)
    else:
        body = app.jinja_env.get_or_select_template(template).render(context)
    return make_response(body, status)


def local_redirect_target(target: str | None) -> str | None:
    """`target` if it is safe to send a browser to: a path on this site made of printable
    ASCII. None for anything else: another site (`//host`, `/\\host`, a scheme), a control
    character or a line break (which browsers drop, or which cannot go in a header), spaces,
    non-ASCII text. Every redirect whose target comes from a request goes through here."""
    if not target or len(target) > MAX_REDIRECT_TARGET:
        return None
    if not all("!" <= char <= "~" for char in target) or "\\" in target:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def require(permission: Permission) -> Actor:
    actor = current_actor()
    if not actor.can(permission):
        abort(403)
    return actor


# Blueprints that answer machines, not people: a session is never read or written there (the
# health checks, the public HSDS API, Twilio's webhooks, a peer exchange's notifications).
MACHINE_FACING = frozenset({"health", "hsds", "sms", "exchange_notifications"})


# Elements that refresh themselves (hx-trigger="every ..."): their requests are not a person
# at work, so they do not keep a session alive. htmx names the element in HX-Trigger.
BACKGROUND_REFRESHERS = frozenset({"inbox-table"})


def is_background_refresh() -> bool:
    return bool(request.htmx) and request.headers.get("HX-Trigger") in BACKGROUND_REFRESHERS


def _machine_facing() -> bool:
    """A request to the machine APIs (/fhir, /oauth, /hsds, webhooks) or the health checks:
    no session."""
    return (
        request.blueprint in MACHINE_FACING
        or fhir_outcomes.serves(request.path)
        or oauth.serves(request.path)
    )


def _idle_timeout() -> Response | None:
    if request.endpoint in (None, "static") or _machine_facing():
        return None  # no session is read or written for these
    if not current_user.is_authenticated:
        return None
    idle = current_app.config["SETTINGS"].session_idle_minutes * 60
    now = utcnow().timestamp()
    seen = session.get("seen")
    if seen is not None and now - float(seen) > idle:
        logout_user()
        session.clear()
        flash("You were signed out after a period of inactivity.", "info")
        return _unauthorized()
    if seen is None or not is_background_refresh():
        session["seen"] = now
    return None


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.endpoint != "static":
        # Pages carry patient information: never keep them in a cache.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
        headers.add("Vary", "HX-Request")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def _error_page(status: int, title: str, message: str) -> Response:
    if request.htmx:
        response = make_response(
            render_template("_error_fragment.html", title=title, message=message), status
        )
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
        # The element's own hx-select would look for its target in this fragment: not here.
        response.headers["HX-Reselect"] = ".flash"
        return response
    return make_response(render_template("error.html", title=title, message=message), status)


class _PageSessions(SecureCookieSessionInterface):
    """Sessions are for people on the pages: an answer of the machine APIs (/fhir, /oauth) and
    of the health checks never sets a cookie, whatever the request carried."""

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if _machine_facing():
            # Nor any other cookie (flask-login's remember cookie, cleared when a browser's
            # session is presented from elsewhere): these answers are for machines.
            response.headers.remove("Set-Cookie")
            return
        super().save_session(app, session, response)


def _api_error(err: Exception) -> Response | None:
    """The machine APIs' own answer to an error (FHIR, OAuth, HSDS), or None for the pages."""
    answer = fhir_outcomes.api_error(err)
    return answer if answer is not None else hsds_api.api_error(err)


def _pages_only(handler: Callable[[Any], Response]) -> Callable[[Any], Response]:
    """An error handler for the pages; the machine APIs answer their errors in their own
    formats (an OperationOutcome under /fhir, RFC 6749 JSON at /oauth)."""

    @wraps(handler)
    def handle(err: Any) -> Response:
        answer = _api_error(err)
        return answer if answer is not None else handler(err)

    return handle


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.session_interface = _PageSessions()
    app.before_request(_idle_timeout)
    app.after_request(_security_headers)

    @app.errorhandler(ServiceError)
    @_pages_only
    def _service_error(err: ServiceError) -> Response:
        titles = {403: "Not allowed", 404: "Not found", 409: "Changed meanwhile"}
        return _error_page(
            err.status_code, titles.get(err.status_code, "Cannot do that"), err.message
        )

    @app.errorhandler(Refusal)
    @_pages_only
    def _refusal(err: Refusal) -> Response:
        return _error_page(409, "Not possible now", str(err))

    @app.errorhandler(CSRFError)
    @_pages_only
    def _csrf(err: CSRFError) -> Response:
        log.warning("refused %s %s: %s", request.method, request.path, err.description)
        return _error_page(
            400,
            "Form expired",
            "This form has expired or did not come from this site. Reload the page and try again.",
        )

    for code, title, message in (
        (403, "Not allowed", "Your role does not allow this."),
        (404, "Not found", "There is nothing here, or it is not yours to see."),
        (405, "Not allowed", "That is not how this page is used."),
        (413, "Too large", "What you sent is too large."),
    ):
        app.register_error_handler(
            code, _pages_only(lambda _e, c=code, t=title, m=message: _error_page(c, t, m))
        )

    @app.errorhandler(Exception)
    def _anything_else(err: Exception) -> Response:
        """The machine APIs answer every error themselves; for the pages, HTTP errors keep
        their own answer and the rest go on to Flask's 500 as before."""
        answer = _api_error(err)
        if answer is not None:
            return answer
        if isinstance(err, HTTPException):
            return err  # type: ignore[return-value]
        raise err

    @app.errorhandler(InternalServerError)
    def _server_error(err: InternalServerError) -> Response:
        answer = _api_error(err)
        return answer if answer is not None else err  # type: ignore[return-value]

    @app.context_processor
    def _who() -> dict[str, Any]:
        signed_in = current_user.is_authenticated
        return {
            "membership": current_membership() if signed_in else None,
            "actor": current_actor() if signed_in else None,
        }

    # Labels are the same tables the services and the FHIR mapping use (one place per fact).
    app.jinja_env.globals.update(
        Permission=Permission,
        ROLE_LABELS=ROLE_LABELS,
        Role=Role,
        STATUS_LABELS={s.value: label for s, label in STATUS_LABELS.items()},
        ACTION_LABELS={a.value: label for a, label in ACTION_LABELS.items()},
        EVENT_LABELS=EVENT_LABELS,
        BUSINESS_STATUS_LABELS=BUSINESS_STATUS_LABELS,
        PRIORITIES=PRIORITIES,
        CONSENT_GIVERS=CONSENT_GIVERS,
        CONSENT_SCOPE=CONSENT_SCOPE,
        CONSENT_METHODS=CONSENT_METHODS,
        CONSENT_METHOD_LABELS=CONSENT_METHOD_LABELS,
        GUARDIAN_RELATIONSHIPS=GUARDIAN_RELATIONSHIPS,
        LANGUAGE_OPTIONS=[(code, language_label(code)) for code in LANGUAGES],
    )
    app.jinja_env.filters.update(
        local_time=_local_time,
        category=category_label,
        language=language_label,
        phone=display_phone,
        masked=mask_phone,
        status=lambda s: STATUS_LABELS.get(Status(s), s) if s in Status._value2member_map_ else s,
    )


def _local_time(value: datetime | None, fmt: str = "%b %-d, %Y %-I:%M %p") -> str:
    """Times are stored in UTC and shown in California time."""
    if value is None:
        return ""
    return value.astimezone(CALIFORNIA).strftime(fmt)
