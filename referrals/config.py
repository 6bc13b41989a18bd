"""Settings read once from the environment, with safe defaults for a laptop."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


def _bool(value: str) -> bool:
    word = value.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(value)


def _parse(kind: object, raw: str) -> object:
    """An environment variable's text as the field's type (annotations are strings here)."""
    if kind == "bool":
        return _bool(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw


class ConfigError(RuntimeError):
    """Settings the app cannot start with: every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "The app cannot start with these settings:\n" + "\n".join(f"- {p}" for p in problems)
        )


def _kept_secret(path: Path) -> str:
    """A secret generated once into `path` (outside production) and read from there after:
    every process of a laptop gets the same one, even several starting at once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process was first: theirs
                os.link(draft, path)
        finally:
            os.unlink(draft)
    return path.read_text().strip()


@dataclass
class Settings:
    """Everything the app can be told. Each field maps to the upper-case environment variable."""

    env: str = "production"  # REFERRALS_ENV: production | development | test
    database_url: str = f"sqlite:///{INSTANCE / 'referrals.db'}"
    secret_key: str = ""
    session_idle_minutes: int = 30
    session_cookie_secure: bool = True
    # Failed sign-ins for one email address (whether an account has it or not) before it is
    # refused for login_lockout_seconds, doubling with each further failure (at most a day).
    login_max_failures: int = 5
    login_lockout_seconds: int = 60
    # Failed sign-ins from one network address (IP) per window before it is refused until the
    # window ends: looser, since a clinic's staff may share one address.
    login_ip_max_failures: int = 50
    login_ip_window_seconds: int = 900
    # Requests to POST /oauth/token per window, per API client and per network address.
    oauth_token_max_per_client: int = 20
    oauth_token_max_per_ip: int = 60
    oauth_token_window_seconds: int = 60
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
    # A running job is leased to its worker for this long, renewed while the worker lives:
    # a worker that dies leaves its job to another one after at most this long.
    worker_lease_seconds: float = 30.0
    job_retry_seconds: float = 10.0  # the first retry's delay; it doubles (with jitter) after
    # What one HSDS import may make us read (`flask import-hsds`): an input past these is
    # refused before, or as soon as, it is read past them (an archive bomb, a runaway file).
    hsds_import_max_file_mib: int = 200  # per file (per zip entry, uncompressed)
    hsds_import_max_total_mib: int = 1024  # all files of one input together
    hsds_import_max_files: int = 10000  # files in one folder or zip
    job_max_attempts: int = 8
    log_level: str = "INFO"
    log_format: str = ""  # json | text; empty: json in production, text elsewhere
    trusted_proxies: int = 0  # reverse proxies in front of the app (X-Forwarded-For/-Proto)
    argon2_memory_kib: int = 65536
    argon2_time_cost: int = 3
    # The audit trail's key (HMAC) for its chain and checkpoints, kept outside the database;
    # empty: one kept in instance/ (not in production). A checkpoint of the trail's head is
    # logged (and appended to the file, when set) this often by a worker; 0: never.
    audit_key: str = ""
    audit_checkpoint_minutes: float = 15.0
    audit_checkpoint_file: str = ""
    extra: dict = field(default_factory=dict)
    unreadable: list = field(default_factory=list)  # variables whose text is not their type

    @classmethod
    def from_env(cls, overrides: dict | None = None) -> Settings:
        """The settings from the environment (and `overrides`, by field name), refused with
        every problem named at once when they cannot work or are not safe in production."""
        settings = cls.read(overrides)
        errors, _warnings = settings.problems()
        if errors:
            raise ConfigError(errors)
        return settings

    @classmethod
    def read(cls, overrides: dict | None = None) -> Settings:
        """The settings as given, unchecked (`check-config` reads them this way to report)."""
        values: dict = {"env": os.environ.get("REFERRALS_ENV", cls.env)}
        unreadable: list[str] = []
        for f in fields(cls):
            if f.name in {"env", "extra", "unreadable"}:
                continue
            raw = os.environ.get(f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = _parse(f.type, raw)
            except ValueError:
                unreadable.append(f.name.upper())
        if "PUBLIC_BASE_URL" not in os.environ and os.environ.get("PORT", "").isdigit():
            # `PORT=5090 make run`: links, callbacks and FHIR references name that port.
            values["public_base_url"] = f"http://127.0.0.1:{os.environ['PORT']}"
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known})
        if values["env"] != "production" and "session_cookie_secure" not in values:
            # Local HTTP on 127.0.0.1 cannot carry a Secure cookie in every browser.
            values["session_cookie_secure"] = False
        values["extra"] = {k: v for k, v in overrides.items() if k not in known}
        settings = cls(**values, unreadable=unreadable)
        if not settings.secret_key and settings.env != "production":
            settings.secret_key = _kept_secret(INSTANCE / "secret_key")
        if not settings.audit_key and settings.env != "production":
            settings.audit_key = _kept_secret(INSTANCE / "audit_key")
        return settings

    def problems(self) -> tuple[list[str], list[str]]:
        """(errors, warnings): what cannot work in any environment, plus in production what is
        missing or unsafe (errors) and what is probably not what was meant (warnings)."""
        errors = [f"{name}: not a valid value." for name in self.unreadable]
        errors += self._sms_problems()
        from referrals.audit import config_problems  # the audit trail's own rules

        errors += config_problems(self)
        if self.log_format not in {"", "json", "text"}:
            errors.append(f"LOG_FORMAT={self.log_format!r}: use json or text.")
        if not 3 <= self.worker_lease_seconds <= 120:
            # A heartbeat every third of a lease: readiness wants one within each minute.
            errors.append("WORKER_LEASE_SECONDS must be from 3 to 120.")
        try:
            self.subscription_allowed_origins()
        except RuntimeError as err:
            errors.append(str(err))
        warnings: list[str] = []
        if self.env != "production":
            return errors, warnings
        if not self.secret_key:
            errors.append(
                "SECRET_KEY is not set. It signs sessions and forms: set the same long random "
                "value on every host (python3 -c 'import secrets; print(secrets.token_hex(32))')."
            )
        elif len(self.secret_key) < 32:
            errors.append("SECRET_KEY is too short: use at least 32 random characters.")
        if not self.session_cookie_secure:
            errors.append(
                "SESSION_COOKIE_SECURE is off: sessions would travel over plain HTTP. "
                "Serve the app over HTTPS and leave it on."
            )
        if not self.public_base_url.startswith("https://"):
            errors.append(
                f"PUBLIC_BASE_URL={self.public_base_url!r}: set the app's public https:// address "
                "(links, FHIR references and Twilio's callbacks use it)."
            )
        if self.database_url.startswith("sqlite"):
            warnings.append(
                "DATABASE_URL is a SQLite file: production runs on PostgreSQL, where any number "
                "of web and worker processes share the database."
            )
        if not self.trusted_proxies:
            warnings.append(
                "TRUSTED_PROXIES is 0: behind a TLS proxy set it to the number of proxies, or "
                "the audit trail records the proxy's address and HSTS is not sent."
            )
        if self.sms_gateway == "console":
            warnings.append("SMS_GATEWAY is console: families get no texts.")
        if not self.exchange_key_file:
            warnings.append("EXCHANGE_KEY_FILE is not set: exchange peers cannot be used.")
        return errors, warnings

    def _sms_problems(self) -> list[str]:
        """SMS settings that cannot work, named."""
        problems: list[str] = []
        if self.sms_gateway not in {"console", "twilio"}:
            problems.append(f"SMS_GATEWAY={self.sms_gateway!r}: use console or twilio.")
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
                problems.append(f"SMS_GATEWAY=twilio needs {', '.join(missing)}.")
        for name in ("sms_quiet_start", "sms_quiet_end"):
            value = getattr(self, name)
            hours, _, minutes = value.partition(":")
            if not (
                hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60
            ):
                problems.append(f"{name.upper()}={value!r}: use HH:MM, e.g. 21:00.")
        if self.sms_rate_per_second <= 0:
            problems.append("SMS_RATE_PER_SECOND must be more than 0.")
        try:
            ZoneInfo(self.sms_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f"SMS_TIME_ZONE={self.sms_time_zone!r} is not a time zone "
                "(e.g. America/Los_Angeles)."
            )
        from referrals.notify.texts import STEPS  # a text for each of them

        unknown = sorted(self.sms_steps - set(STEPS))
        if unknown:
            problems.append(
                f"SMS_NOTIFY_STEPS names {', '.join(unknown)}: use Task statuses among "
                f"{', '.join(STEPS)}."
            )
        if (
            self.sms_gateway == "twilio"
            and self.env == "production"
            and not self.public_base_url.startswith("https://")
        ):
            problems.append(
                "SMS_GATEWAY=twilio needs PUBLIC_BASE_URL: the app's public https:// address, "
                "where Twilio sends delivery statuses and replies."
            )
        return problems

    @property
    def json_logs(self) -> bool:
        """One JSON object per log line: the default in production."""
        return self.log_format == "json" or (not self.log_format and self.env == "production")

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
