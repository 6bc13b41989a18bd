"""The outbox. A change enqueues its jobs in its own transaction; the worker claims due jobs,
runs them, retries failures with exponential backoff and jitter, and dead-letters the rest."""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Index, String, Text, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from referrals.db import Base, db, transaction, utcnow
from referrals.logs import JOB_ID
from referrals.redact import redact

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"

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
    """Add a job to the caller's transaction, unless one with this key was ever enqueued (also
    by another process at the same moment: the key is unique, and the second insert yields)."""
    existing = session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    dialect = session.get_bind().dialect.name
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(Job)
    session.execute(
        insert.values(
            id=uuid.uuid4(),
            kind=kind,
            payload=payload,
            dedupe_key=dedupe_key,
            status=QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            run_after=utcnow(),
            last_error="",
            created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    job = session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
    assert job is not None, f"job {dedupe_key} neither made nor found"
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
    """host:pid and a few random characters: containers may share a host name and a pid."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{_INSTANCE}"


_INSTANCE = secrets.token_hex(3)


class Worker(Base):
    """A worker process, as it last said it was alive: readiness checks and the Jobs page read
    it, and a job leased to a worker that stopped beating is taken up by another."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)  # host:pid:random
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]


class LeaseLost(Exception):
    """This worker no longer holds the job it is running: another one took it up."""


@dataclass(frozen=True)
class Claim:
    """The job a worker is running now and the worker's name: what a handler checks before a
    step that must not happen twice."""

    job_id: uuid.UUID
    worker: str
    lease: timedelta


_CURRENT: ContextVar[Claim | None] = ContextVar("current_job", default=None)


def current_job_id() -> uuid.UUID | None:
    claim = _CURRENT.get()
    return claim.job_id if claim else None


def hold_lease(session: Session) -> None:
    """In the caller's transaction: lock the running job's row, check that this worker still
    holds it, and extend its lease. A handler calls this in the same transaction as a step
    that must happen once (handing a text to the provider), so that a worker which lost its
    job to another cannot take that step too. Outside a worker (tests, the command line)
    there is nothing to hold."""
    claim = _CURRENT.get()
    if claim is None:
        return
    job = session.get(Job, claim.job_id, with_for_update=True, populate_existing=True)
    if job is None or job.status != RUNNING or job.locked_by != claim.worker:
        raise LeaseLost(f"job {claim.job_id} is no longer leased to {claim.worker}")
    job.locked_until = max(job.locked_until or utcnow(), utcnow() + claim.lease)


def _due():
    now = utcnow()
    return or_(
        (Job.status == QUEUED) & (Job.run_after <= now),
        (Job.status == RUNNING) & (Job.locked_until < now),
    )


def claim_next(session: Session, name: str, lease: timedelta) -> uuid.UUID | None:
    """Take the next due job for this worker and lease it for `lease`; None when nothing is
    due. One job at a time: a worker that dies holds up only the job it was running.
    PostgreSQL workers skip each other's rows. A job is charged an attempt here, when it
    starts; a job whose lease ran out on its last attempt is dead (its worker died with it)."""
    while True:
        now = utcnow()
        job = session.scalar(
            select(Job)
            .where(_due())
            .order_by(Job.run_after)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job is None:
            session.commit()
            return None
        if job.status == RUNNING and job.attempts >= job.max_attempts:
            error = "The worker stopped while running this job, on its last attempt."
            job.status, job.finished_at, job.last_error = DEAD, now, error
            job.locked_by = job.locked_until = None
            _gave_up(session, job, error)
            session.commit()
            log.error("job %s (%s) dead after its worker stopped mid-run", job.id, job.kind)
            continue
        if job.status == RUNNING:
            log.warning("job %s (%s) taken over from %s", job.id, job.kind, job.locked_by)
        job.status, job.locked_by, job.locked_until = RUNNING, name, now + lease
        job.attempts += 1
        session.commit()
        return job.id


def run_job(job_id: uuid.UUID, name: str, lease: timedelta = timedelta(seconds=30)) -> str:
    """Run one job this worker claimed to its outcome and return its new status."""
    token = _CURRENT.set(Claim(job_id, name, lease))
    logged = JOB_ID.set(str(job_id))
    try:
        return _run(job_id, name)
    finally:
        JOB_ID.reset(logged)
        _CURRENT.reset(token)


def _run(job_id: uuid.UUID, name: str) -> str:
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
    except LeaseLost:
        session.rollback()
        log.warning("job %s was taken up by another worker; this one stopped it", job_id)
        return "lost"
    except Defer as later:
        session.rollback()
        job = _still_mine(session, job_id, name)
        if job is None:
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
        job = _still_mine(session, job_id, name)
        if job is None:
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
            job.status = QUEUED
            job.run_after = utcnow() + backoff(job.attempts, base=_retry_seconds())
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


def _still_mine(session: Session, job_id: uuid.UUID, name: str) -> Job | None:
    """The job, locked until the caller commits its outcome, if this worker still holds it;
    else None (and nothing is held): another worker took it up and owns its outcome now."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.status != RUNNING or job.locked_by != name:
        session.rollback()
        return None
    return job


def _gave_up(session: Session, job: Job, error: str) -> None:
    hook = DEAD_HANDLERS.get(job.kind)
    if hook is None:
        return
    try:
        with session.begin_nested():
            hook(session, dict(job.payload), error)
    except Exception:  # the job is dead either way; say why the hook failed
        log.exception("job %s (%s): recording that it was given up failed", job.id, job.kind)


def _retry_seconds() -> float:
    try:
        return float(current_app.config["SETTINGS"].job_retry_seconds)
    except RuntimeError:  # no app: the default
        return 10.0


def run_due_jobs(*, name: str | None = None, lease: timedelta | None = None) -> dict[str, int]:
    """Run due jobs one after the other until none is left; the counts of outcomes. This is
    `worker --once`, and what tests call."""
    name = name or worker_name()
    lease = lease or timedelta(seconds=30)
    counts: dict[str, int] = {}
    while True:
        job_id = claim_next(db.session(), name, lease)
        db.session.remove()
        if job_id is None:
            return counts
        outcome = run_job(job_id, name, lease)
        counts[outcome] = counts.get(outcome, 0) + 1


class Heartbeat(threading.Thread):
    """Beside the worker's loop: every third of a lease, says the worker is alive and renews
    the lease of the job it is running, so a long job keeps its lease and a dead worker's job
    is taken up within one lease."""

    def __init__(self, name: str, lease: timedelta) -> None:
        super().__init__(name=f"heartbeat {name}", daemon=True)
        self.worker, self.lease = name, lease
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.lease.total_seconds() / 3):
            try:
                beat(self.worker, self.lease)
            except Exception:  # the database away for a moment: the next beat tries again
                log.warning("worker %s could not record its heartbeat", self.worker, exc_info=True)
            finally:
                db.session.remove()


def beat(name: str, lease: timedelta) -> None:
    """Record that the worker is alive, and renew the lease of the job it is running."""
    now = utcnow()
    with transaction() as session:
        session.execute(update(Worker).where(Worker.name == name).values(heartbeat_at=now))
        session.execute(
            update(Job)
            .where(Job.locked_by == name, Job.status == RUNNING)
            .values(locked_until=now + lease)
            .execution_options(synchronize_session=False)
        )


def _register(name: str) -> None:
    now = utcnow()
    with transaction() as session:
        # Workers gone for a day are forgotten; a restarted process with a reused pid starts anew.
        session.execute(delete(Worker).where(Worker.heartbeat_at < now - timedelta(days=1)))
        session.execute(delete(Worker).where(Worker.name == name))
        session.add(Worker(name=name, started_at=now, heartbeat_at=now))


def _unregister(name: str) -> None:
    with transaction() as session:
        session.execute(update(Worker).where(Worker.name == name).values(stopped_at=utcnow()))


def run_worker(
    poll_seconds: float, stop: threading.Event, *, lease: timedelta = timedelta(seconds=30)
) -> None:
    """Run jobs as they fall due until `stop` is set; the job running then is finished first."""
    name = worker_name()
    _register(name)
    heartbeat = Heartbeat(name, lease)
    heartbeat.start()
    log.info("worker %s started", name)
    try:
        try:
            run_start_hooks()
        except Exception:  # e.g. the database away for a moment: the jobs still run
            log.exception("worker %s: a start hook failed", name)
            db.session.remove()
        while not stop.is_set():
            try:
                job_id = claim_next(db.session(), name, lease)
            except Exception:
                log.exception("worker %s could not claim a job; retrying", name)
                job_id = None
            finally:
                db.session.remove()
            if job_id is None:
                stop.wait(poll_seconds)
                continue
            try:
                run_job(job_id, name, lease)
            except Exception:  # its outcome could not be recorded: the lease runs out
                log.exception("worker %s could not record the outcome of job %s", name, job_id)
                db.session.remove()
                stop.wait(poll_seconds)
    finally:
        heartbeat.stopping.set()
        heartbeat.join(timeout=10)
        _unregister(name)
        db.session.remove()
        log.info("worker %s stopped", name)
