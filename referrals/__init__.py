"""referrals: closed-loop social-needs referrals over HL7 FHIR (Gravity SDOH Clinical Care)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from referrals import logs
from referrals.config import ROOT, Settings
from referrals.db import db

csrf = CSRFProtect()


class ReferralsApp(Flask):
    def make_default_options_response(self) -> Response:
        """OPTIONS answered as RFC 9110 has it: the methods in Allow and no content (rather
        than an empty 200 labelled as an HTML page). No route of ours handles OPTIONS itself."""
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def create_app(config: dict | None = None) -> Flask:
    """Build the app. `config` overrides settings by name (tests pass database_url etc.)."""
    settings = Settings.from_env(config)
    app = ReferralsApp(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        TESTING=settings.env == "test",
        SESSION_COOKIE_NAME="referrals_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=1 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the session's idle timeout bounds the token's life
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        **settings.extra,
    )
    logs.configure(settings.log_level, settings.json_logs)
    db.configure(settings.database_url)
    from referrals.auth.service import configure_hasher

    configure_hasher(settings.argon2_memory_kib, settings.argon2_time_cost)
    app.teardown_appcontext(lambda _exc: db.session.remove())

    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address and scheme as the proxy saw them: audit IPs and HSTS need them.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    Htmx(app)
    csrf.init_app(app)
    logs.init_app(app, access_lines=settings.json_logs)

    from referrals import web

    web.init_app(app)

    from referrals.admin.views import bp as admin_bp
    from referrals.auth.views import bp as auth_bp
    from referrals.directory.api import bp as hsds_bp
    from referrals.directory.listing_views import bp as listings_bp
    from referrals.directory.search_views import bp as directory_bp
    from referrals.exchange.views import bp as exchange_bp
    from referrals.loop.views import bp as loop_bp
    from referrals.notify.webhooks import bp as sms_bp
    from referrals.patients.screening_views import bp as screenings_bp
    from referrals.patients.views import bp as patients_bp

    blueprints = (auth_bp, patients_bp, screenings_bp, loop_bp, admin_bp, directory_bp, exchange_bp)
    from referrals.health import bp as health_bp

    for bp in (*blueprints, hsds_bp, listings_bp, sms_bp, health_bp):
        app.register_blueprint(bp)
    csrf.exempt(hsds_bp)  # read-only and public: GET only
    csrf.exempt(sms_bp)  # Twilio signs its requests instead (X-Twilio-Signature)
    csrf.exempt(health_bp)  # GET only, for machines
    from referrals.fhir.api import bp as fhir_bp
    from referrals.fhir.oauth import bp as oauth_bp

    for bp in (fhir_bp, oauth_bp):
        app.register_blueprint(bp)
        csrf.exempt(bp)  # machine clients: signed assertions and bearer tokens, not cookies

    import referrals.notify.service  # noqa: F401  (registers the sms.notice job handler)
    from referrals.exchange import service as exchange
    from referrals.exchange.notifications import bp as exchange_notifications_bp
    from referrals.fhir import subscriptions

    exchange.register()  # pushes referral changes to the peers that must know
    subscriptions.register(app)  # tells subscribers of the referral changes they may see
    app.register_blueprint(exchange_notifications_bp)
    csrf.exempt(exchange_notifications_bp)  # peers authenticate with the secret we gave them
    from referrals.cli import register_commands

    register_commands(app)
    return app
