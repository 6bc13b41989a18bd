"""Settings read once from the environment, with safe defaults for a laptop."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

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
    sms_gateway: str = "console"
    public_base_url: str = "http://127.0.0.1:5000"
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
        return settings
