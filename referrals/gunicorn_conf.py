"""gunicorn's settings for this app: `gunicorn --config python:referrals.gunicorn_conf app:app`.

The settings are checked once, before any worker starts: a set-up the app would refuse stops
gunicorn at once with every problem named, instead of workers failing to boot one by one. And
gunicorn's own lines are written like the app's (JSON in production)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from referrals.config import ConfigError, Settings
from referrals.logs import configure, formatter

_settings = Settings.read()

# The app writes one line per request itself (with its request id): no second access log.
accesslog = None
# Requests wait for the database and for partners' FHIR servers, never for long.
timeout = 60
graceful_timeout = 30


def on_starting(server: Any) -> None:
    errors, warnings = Settings.read().problems()
    for warning in warnings:
        server.log.warning("settings: %s", warning)
    if errors:
        raise ConfigError(errors)  # gunicorn prints it and exits with status 1


class AppFormatLogger(Logger):
    """gunicorn's logger, writing its lines in the app's format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure(_settings.log_level, _settings.json_logs)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter(_settings.json_logs))


logger_class = AppFormatLogger
