"""Settings read once from the environment, with safe defaults for a laptop."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance: Path) -> str:
    """A key from the environment, or one generated once and kept in instance/ (dev only)."""
    env = os.environ.get("SECRET_KEY")
    if env:
        return env
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Settings:
    """Everything the app can be told. Each field maps to the upper-case environment variable."""

    env: str = "production"  # REFERRALS_ENV: production | development | test
    database_url: str = f"sqlite:///{INSTANCE / 'referrals.db'}"
    secret_key: str = ""
    session_idle_minutes: int = 30
    session_cookie_secure: bool = True
    login_max_failures: int = 5
    login_lockout_seconds: int = 60
    overdue_business_days: int = 2
    sms_gateway: str = "console"  # console | twilio
    public_base_url: str = "http://127.0.0.1:5000"  # what Twilio calls back and signs
    # The name the first text to a number introduces us by, and HELP answers with.
    sms_sender_name: str = "Referrals"
    # Which referral steps text the family (comma-separated Task statuses).
    sms_notify_steps: str = "requested,accepted,rejected,completed,cancelled"
    sms_time_zone: str = "America/Los_Angeles"  # the families' time zone, for quiet hours
    sms_quiet_start: str = "21:00"  # no text from then...
    sms_quiet_end: str = "08:00"  # ...until then: it waits
    sms_rate_per_second: float = 1.0  # per sender (number or Messaging Service)
    sms_validity_seconds: int = 3600  # the provider drops a text it could not deliver by then
    sms_max_delay_hours: float = 14.0  # a notice not sent this long after its event expires
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_messaging_service_sid: str = ""  # preferred over a single From number
    twilio_from_number: str = ""
    twilio_timeout_seconds: float = 10.0
    twilio_api_base_url: str = ""  # empty: Twilio's own API
    # The exchange: our signing key (PEM, RS384) for SMART Backend Services at peers; empty:
    # one kept in instance/ (not in production). Peers' answers wait this long at most.
    exchange_key_file: str = ""
    exchange_timeout_seconds: float = 15.0
    exchange_poll_seconds: float = 300.0  # how often `serve` polls peers that poll
    # A peer down is waited for: its pushes and reads retry with backoff (at most an hour
    # apart) this many times, about two days, before they are shown as failed.
    exchange_max_attempts: int = 48
    exchange_peers: str = ""  # a JSON file of peers; `flask exchange load-peers` reads it
    # Origins (scheme://host:port, comma-separated) that Subscriptions may notify although they
    # are not public https addresses: a peer on this machine or network, for development and
    # tests. Empty: only public https endpoints.
    subscription_allowed_endpoints: str = ""
    worker_poll_seconds: float = 2.0
    job_max_attempts: int = 8
    log_level: str = "INFO"
    trusted_proxies: int = 0  # reverse proxies in front of the app (X-Forwarded-For/-Proto)
    argon2_memory_kib: int = 65536
    argon2_time_cost: int = 3
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, overrides: dict | None = None) -> Settings:
        values: dict = {}
        env = os.environ.get("REFERRALS_ENV", cls.env)
        values["env"] = env
        for f in fields(cls):
            if f.name in {"env", "extra", "secret_key"}:
                continue
            raw = os.environ.get(f.name.upper())
            if raw is None:
                continue
            if f.type == "bool":
                values[f.name] = _bool(raw)
            elif f.type == "int":
                values[f.name] = int(raw)
            elif f.type == "float":
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        if "PUBLIC_BASE_URL" not in os.environ and os.environ.get("PORT", "").isdigit():
            # `PORT=5090 make run`: links, callbacks and FHIR references name that port.
            values["public_base_url"] = f"http://127.0.0.1:{os.environ['PORT']}"
        if env != "production" and "SESSION_COOKIE_SECURE" not in os.environ:
            # Local HTTP on 127.0.0.1 cannot carry a Secure cookie in every browser.
            values["session_cookie_secure"] = False
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known})
        values["extra"] = {k: v for k, v in overrides.items() if k not in known}
        settings = cls(**values)
        if not settings.secret_key:
            if settings.env == "production":
                # Each host would invent its own key and sessions would break across them.
                raise RuntimeError(
                    "SECRET_KEY must be set in production (REFERRALS_ENV=production). "
                    "For a laptop, use REFERRALS_ENV=development."
                )
            settings.secret_key = _secret_key(INSTANCE)
        settings.check_sms()
        settings.subscription_allowed_origins()  # refuse to start on an entry that is not one
        return settings

    def check_sms(self) -> None:
        """Refuse to start with an SMS set-up that cannot work, naming what is missing."""
        if self.sms_gateway not in {"console", "twilio"}:
            raise RuntimeError(f"SMS_GATEWAY={self.sms_gateway!r}: use console or twilio.")
        if self.sms_gateway == "twilio":
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                    (
                        "TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER",
                        self.twilio_messaging_service_sid or self.twilio_from_number,
                    ),
                )
                if not value
            ]
            if missing:
                raise RuntimeError(f"SMS_GATEWAY=twilio needs {', '.join(missing)}.")
        for name in ("sms_quiet_start", "sms_quiet_end"):
            value = getattr(self, name)
            hours, _, minutes = value.partition(":")
            if not (
                hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60
            ):
                raise RuntimeError(f"{name.upper()}={value!r}: use HH:MM, e.g. 21:00.")
        if self.sms_rate_per_second <= 0:
            raise RuntimeError("SMS_RATE_PER_SECOND must be more than 0.")
        try:
            ZoneInfo(self.sms_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise RuntimeError(
                f"SMS_TIME_ZONE={self.sms_time_zone!r} is not a time zone "
                "(e.g. America/Los_Angeles)."
            ) from None
        from referrals.notify.texts import STEPS  # a text for each of them

        unknown = sorted(self.sms_steps - set(STEPS))
        if unknown:
            raise RuntimeError(
                f"SMS_NOTIFY_STEPS names {', '.join(unknown)}: use Task statuses among "
                f"{', '.join(STEPS)}."
            )
        if (
            self.sms_gateway == "twilio"
            and self.env == "production"
            and not self.public_base_url.startswith("https://")
        ):
            raise RuntimeError(
                "SMS_GATEWAY=twilio needs PUBLIC_BASE_URL: the app's public https:// address, "
                "where Twilio sends delivery statuses and replies."
            )

    def subscription_allowed_origins(self) -> frozenset:
        """SUBSCRIPTION_ALLOWED_ENDPOINTS as origins; RuntimeError names an entry that is not
        one."""
        from referrals.fhir.endpoints import parse_allowed

        try:
            return parse_allowed(self.subscription_allowed_endpoints)
        except ValueError as err:
            raise RuntimeError(
                f"SUBSCRIPTION_ALLOWED_ENDPOINTS: {err} Use scheme://host:port, comma-separated."
            ) from None

    @property
    def sms_steps(self) -> frozenset[str]:
        return frozenset(step.strip() for step in self.sms_notify_steps.split(",") if step.strip())
