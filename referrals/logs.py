"""Logging, set up once per process: readable lines on a laptop, one JSON object per line in
production (`LOG_FORMAT`), every line of a request carrying its request id (also sent back in
the `X-Request-ID` header) and every line of a job its job id. Nothing that leaves here holds
patient data: messages and tracebacks go through `redact`, and request lines keep the path
without its query string (a search can be a patient's name)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, Response, g, request

from referrals.redact import RedactingFormatter, redact

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
JOB_ID: ContextVar[str | None] = ContextVar("job_id", default=None)
# What a proxy in front of us may hand on as the request id: short, and nothing else.
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_QUERY = re.compile(r"\?[^\s\"]*")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
access = logging.getLogger("referrals.access")


def _with_context(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Each record takes the request or job id current where it is made (`context` for text
    lines)."""

    def make(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        record.job_id = JOB_ID.get()
        ids = [f"request={record.request_id}"] if record.request_id else []
        ids += [f"job={record.job_id}"] if record.job_id else []
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return record

    make.referrals = True  # type: ignore[attr-defined]
    return make


class TextFormatter(RedactingFormatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, defaults={"context": ""})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request or job id, the
    request's method, path, status and duration for access lines, and the error if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in ("request_id", "job_id"):
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            entry["http"] = http
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class _NoQueryStrings(logging.Filter):
    """Request logs keep the path but not the query: a search string can be a patient's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        return True

    def _clean(self, value: object) -> object:
        return _QUERY.sub("?…", value) if isinstance(value, str) else value


def formatter(json_lines: bool) -> logging.Formatter:
    return JsonFormatter() if json_lines else TextFormatter()


def configure(level: str, json_lines: bool) -> None:
    """Send every logger's lines to standard error in the chosen format (once per process;
    a second app in the same process, as in tests, changes the format and level only)."""
    if not getattr(logging.getLogRecordFactory(), "referrals", False):
        logging.setLogRecordFactory(_with_context(logging.getLogRecordFactory()))
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "referrals", False)]
    if not ours:
        handler = logging.StreamHandler()
        handler.referrals = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        ours = [handler]
    for handler in ours:
        handler.setFormatter(formatter(json_lines))
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoQueryStrings) for f in logger.filters):
            logger.addFilter(_NoQueryStrings())


def init_app(app: Flask, *, access_lines: bool) -> None:
    """A request id for every request (a trusted proxy's own, or a new one), sent back in
    `X-Request-ID`; with `access_lines`, one line per request (method, path without the
    query, status, milliseconds)."""
    trust_given = bool(app.config["SETTINGS"].trusted_proxies)

    @app.before_request
    def _start() -> None:
        given = request.headers.get("X-Request-ID", "") if trust_given else ""
        g.request_id = given if _GIVEN_ID.match(given) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        g.request_id_token = REQUEST_ID.set(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
            if access_lines:
                took = (time.perf_counter() - g.request_started) * 1000
                access.info(
                    "%s %s %d %.1f ms",
                    request.method,
                    request.path,
                    response.status_code,
                    took,
                    extra={
                        "http": {
                            "method": request.method,
                            "path": request.path,
                            "status": response.status_code,
                            "duration_ms": round(took, 1),
                        }
                    },
                )
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
