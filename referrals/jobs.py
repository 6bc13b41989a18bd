"""The outbox. A change enqueues its jobs in its own transaction; the worker claims due jobs,
runs them, retries failures with exponential backoff and jitter, and dead-letters the rest."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Index, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from referrals.db import Base, db, transaction, utcnow
from referrals.redact import redact

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"
LEASE = timedelta(minutes=5)  # a running job not finished by then is taken up again

Handler = Callable[[Session, dict], None]
HANDLERS: dict[str, Handler] = {}


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class PermanentJobError(Exception):
    """A failure that retrying cannot mend: the job goes straight to dead."""


class Defer(Exception):
    """Not now: run the job again at `until`, without counting an attempt (quiet hours,
    pacing)."""

    def __init__(self, until: datetime, reason: str = "") -> None:
        super().__init__(reason or f"deferred until {until.isoformat()}")
        self.until = until


StartHook = Callable[[Session], None]
START_HOOKS: list[StartHook] = []


def on_worker_start(fn: StartHook) -> StartHook:
    """Register a function run in one transaction whenever a worker starts (for instance, to
    make sure a job that reschedules itself has its first run queued)."""
    if fn not in START_HOOKS:
        START_HOOKS.append(fn)
    return fn


def run_start_hooks() -> None:
    with transaction() as session:
        for hook in START_HOOKS:
            hook(session)


DeadHandler = Callable[[Session, dict, str], None]
DEAD_HANDLERS: dict[str, DeadHandler] = {}


def handler(kind: str, *, on_dead: DeadHandler | None = None) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of a kind; `on_dead(session, payload, error)` runs
    in the same transaction that gives such a job up (to record that what it did never will)."""

    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        if on_dead is not None:
            DEAD_HANDLERS[kind] = on_dead
        return fn

    return register


def enqueue(
    session: Session, kind: str, payload: dict, dedupe_key: str, *, max_attempts: int = 8
) -> Job:
    """Add a job to the caller's transaction, unless one with this key was ever enqueued."""
    existing = session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    job = Job(kind=kind, payload=payload, dedupe_key=dedupe_key, max_attempts=max_attempts)
    session.add(job)
    session.flush()
    return job


def backoff(attempts: int, *, base: float = 10.0, cap: float = 3600.0) -> timedelta:
    """Full-jitter exponential backoff: up to base·2^(n-1) seconds, never more than cap."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def describe_error(exc: BaseException) -> str:
    """What a failed job keeps of its error (admins read it): the kind and the message, with
    patient data taken out."""
    return redact(f"{type(exc).__name__}: {exc}")[:2000]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(session: Session, limit: int, name: str) -> list[uuid.UUID]:
    """Take up to `limit` due jobs for this worker. PostgreSQL workers skip each other's rows."""
    now = utcnow()
    due = (
        select(Job.id)
        .where(
            or_(
                (Job.status == QUEUED) & (Job.run_after <= now),
                (Job.status == RUNNING) & (Job.locked_until < now),
            )
        )
        .order_by(Job.run_after)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    # A job whose lease ran out on its last attempt took its worker down with it (a crash,
    # not an exception): it is dead, not tried forever.
    exhausted = list(
        session.scalars(select(Job.id).where(Job.id.in_(ids), Job.attempts >= Job.max_attempts))
    )
    if exhausted:
        for job in session.scalars(select(Job).where(Job.id.in_(exhausted))):
            _gave_up(
                session, job, "The worker stopped while running this job, on its last attempt."
            )
        session.execute(
            update(Job)
            .where(Job.id.in_(exhausted))
            .values(
                status=DEAD,
                finished_at=now,
                locked_by=None,
                locked_until=None,
                last_error="The worker stopped while running this job, on its last attempt.",
            )
        )
        log.error("%d job(s) dead after their worker stopped mid-run", len(exhausted))
        ids = [i for i in ids if i not in exhausted]
    if ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(
                status=RUNNING,
                locked_by=name,
                locked_until=now + LEASE,
                attempts=Job.attempts + 1,
            )
        )
    session.commit()
    return ids


def run_job(job_id: uuid.UUID, name: str) -> str:
    """Run one job this worker claimed to its outcome and return its new status."""
    session = db.session()
    job = session.get(Job, job_id)
    if job is None or job.status != RUNNING or job.locked_by != name:
        session.rollback()
        return "missing"
    fn = HANDLERS.get(job.kind)
    try:
        if fn is None:
            raise PermanentJobError(f"no handler for job kind {job.kind!r}")
        fn(session, dict(job.payload))
        # Finish only while still holding the lease: a worker whose lease ran out and was
        # taken over leaves the outcome to the worker that holds it now.
        finished = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.locked_by == name, Job.status == RUNNING)
            .values(
                status=DONE, finished_at=utcnow(), last_error="", locked_by=None, locked_until=None
            )
            .execution_options(synchronize_session=False)
        )
        if finished.rowcount != 1:
            session.rollback()
            log.warning("job %s lost its lease while running; its work was rolled back", job_id)
            return "lost"
        session.commit()
        return DONE
    except Defer as later:
        session.rollback()
        job = session.get(Job, job_id)
        if job is None or job.locked_by != name:
            session.rollback()
            return "lost"
        job.status, job.run_after = QUEUED, later.until
        job.attempts = max(0, job.attempts - 1)  # waiting is not failing
        job.locked_by = job.locked_until = None
        job.last_error = ""
        session.commit()
        log.info("job %s (%s) deferred: %s", job.id, job.kind, later)
        return "deferred"
    except Exception as exc:  # every failure is recorded; none stops the worker
        session.rollback()
        job = session.get(Job, job_id)
        if job is None or job.locked_by != name:
            session.rollback()
            return "lost"
        job.last_error = describe_error(exc)
        job.locked_by = job.locked_until = None
        if isinstance(exc, PermanentJobError) or job.attempts >= job.max_attempts:
            job.status, job.finished_at = DEAD, utcnow()
            _gave_up(session, job, job.last_error)
            log.error(
                "job %s (%s) is dead after %d attempts: %s",
                job.id,
                job.kind,
                job.attempts,
                type(exc).__name__,
            )
        else:
            job.status, job.run_after = QUEUED, utcnow() + backoff(job.attempts)
            log.warning(
                "job %s (%s) failed, attempt %d: %s",
                job.id,
                job.kind,
                job.attempts,
                type(exc).__name__,
            )
        session.commit()
        return job.status
    finally:
        db.session.remove()


def _gave_up(session: Session, job: Job, error: str) -> None:
    hook = DEAD_HANDLERS.get(job.kind)
    if hook is None:
        return
    try:
        with session.begin_nested():
            hook(session, dict(job.payload), error)
    except Exception:  # the job is dead either way; say why the hook failed
        log.exception("job %s (%s): recording that it was given up failed", job.id, job.kind)


def run_due_jobs(*, limit: int = 20, name: str | None = None) -> dict[str, int]:
    """Claim and run due jobs until none are left; the counts of outcomes. `worker --once`."""
    name = name or worker_name()
    counts: dict[str, int] = {}
    while True:
        ids = claim(db.session(), limit, name)
        db.session.remove()
        if not ids:
            return counts
        for job_id in ids:
            outcome = run_job(job_id, name)
            counts[outcome] = counts.get(outcome, 0) + 1


def run_worker(poll_seconds: float, stop: Callable[[], bool] = lambda: False) -> None:
    """Run jobs as they fall due, until `stop()` says so."""
    name = worker_name()
    run_start_hooks()
    log.info("worker %s started", name)
    while not stop():
        try:
            counts = run_due_jobs(name=name)
        except Exception:
            log.exception("worker %s could not claim jobs; retrying", name)
            db.session.remove()
            counts = {}
        if not counts:
            time.sleep(poll_seconds)
    log.info("worker %s stopped", name)
