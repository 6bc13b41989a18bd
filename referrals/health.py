"""What a load balancer and an orchestrator ask: `/healthz` (the process answers) and
`/readyz` (the database answers, its schema is at the migrations' head, and a worker said it was
alive within the last minute). JSON, no patient data, no session."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import func, select, text

from referrals.db import db, utcnow
from referrals.jobs import Worker

bp = Blueprint("health", __name__)
HEARTBEAT_MAX_AGE = timedelta(minutes=1)


@cache
def migrations_head() -> str:
    """The newest migration shipped with this code."""
    from alembic.script import ScriptDirectory

    from referrals.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    return head or ""


def _answer(body: dict, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return _answer({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz() -> Response:
    checks = readiness()
    ready = all(check["ok"] for check in checks.values())
    return _answer(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


def readiness() -> dict[str, dict]:
    """Each check: ok or not, and what was found (never anything about patients)."""
    head = migrations_head()
    session = db.session()
    try:
        session.execute(text("SELECT 1"))
        at = session.scalar(text("SELECT version_num FROM alembic_version"))
        heartbeat = session.scalar(
            select(func.max(Worker.heartbeat_at)).where(Worker.stopped_at.is_(None))
        )
    except Exception as err:  # unreachable, or no schema at all
        session.rollback()
        current_app.logger.warning("readiness: the database did not answer: %s", type(err).__name__)
        return {
            "database": {"ok": False, "error": "the database did not answer"},
            "migrations": {"ok": False, "head": head},
            "worker": {"ok": False},
        }
    finally:
        db.session.remove()
    worker: dict[str, object] = {"ok": False, "error": "no worker has started"}
    if heartbeat is not None:
        age = utcnow() - heartbeat
        worker = {"ok": age < HEARTBEAT_MAX_AGE, "last_heartbeat_seconds": int(age.total_seconds())}
        if not worker["ok"]:
            worker["error"] = "no worker said it was alive in the last minute"
    migrations: dict[str, object] = {"ok": at == head, "at": at, "head": head}
    if at != head:
        migrations["error"] = "the database is not at the latest migration: run db-upgrade"
    return {"database": {"ok": True}, "migrations": migrations, "worker": worker}
