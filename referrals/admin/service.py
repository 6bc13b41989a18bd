"""What network administrators read and do: messages sent, the audit trail, the outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from referrals import audit
from referrals.audit import AuditEvent
from referrals.auth.actor import Actor
from referrals.auth.models import User
from referrals.auth.roles import Permission
from referrals.db import transaction, utcnow
from referrals.directory.models import TaxonomySdohMap, max_length
from referrals.errors import Forbidden, InvalidInput, NotFound
from referrals.jobs import DEAD, QUEUED, RUNNING, Job, Worker
from referrals.notify.models import Message
from referrals.terminology import SDOH_CATEGORIES

LIMIT = 200
CHAIN_WINDOW = 1000  # entries the audit page re-checks; `flask audit-verify` checks them all


def _require_network(actor: Actor) -> None:
    if not actor.can(Permission.VIEW_NETWORK):
        raise Forbidden("Only network administrators can see this.")


def recent_messages(actor: Actor) -> list[Message]:
    _require_network(actor)
    with transaction() as session:
        messages = list(
            session.scalars(select(Message).order_by(Message.created_at.desc()).limit(LIMIT))
        )
        audit.record(session, actor, "message.list", "Message", detail={"rows": len(messages)})
    return messages


def audit_trail(
    actor: Actor, *, user_email: str = "", patient_id: str = ""
) -> tuple[list[AuditEvent], int | None]:
    """Recent audit entries, filtered by a user's email or a patient id, and where the chain
    breaks if it does."""
    _require_network(actor)
    with transaction() as session:
        stmt = select(AuditEvent)
        if user_email:
            user = session.scalar(select(User).where(func.lower(User.email) == user_email.lower()))
            if user is None:
                raise InvalidInput("No such user.", {"user": [f"No user with email {user_email}."]})
            stmt = stmt.where(AuditEvent.actor_user_id == user.id)
        if patient_id:
            try:
                stmt = stmt.where(AuditEvent.patient_id == uuid.UUID(patient_id))
            except ValueError:
                raise InvalidInput(
                    "Not a patient id.", {"patient": ["A patient id looks like 8-4-4-4-12 hex."]}
                ) from None
        events = list(session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(LIMIT)))
        broken = audit.verify_chain(session, last=CHAIN_WINDOW)
        audit.record(
            session,
            actor,
            "audit.view",
            "AuditEvent",
            detail={"by_user": bool(user_email), "by_patient": bool(patient_id)},
        )
    return events, broken


def jobs_overview(actor: Actor) -> tuple[dict[str, int], list[Job]]:
    _require_network(actor)
    with transaction() as session:
        counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        dead = list(
            session.scalars(
                select(Job).where(Job.status == DEAD).order_by(Job.finished_at.desc()).limit(LIMIT)
            )
        )
    return counts, dead


@dataclass(frozen=True)
class WorkerState:
    name: str  # host:pid
    started_at: datetime
    heartbeat_at: datetime
    state: str  # running | idle | stopped | silent (no heartbeat for a minute: probably dead)
    job_kind: str | None  # what it runs now


def workers_overview(actor: Actor) -> list[WorkerState]:
    """The workers seen in the last day, newest first, and what each is doing."""
    _require_network(actor)
    now = utcnow()
    with transaction() as session:
        workers = list(
            session.scalars(
                select(Worker)
                .where(Worker.heartbeat_at > now - timedelta(days=1))
                .order_by(Worker.started_at.desc())
                .limit(LIMIT)
            )
        )
        running = dict(
            session.execute(
                select(Job.locked_by, Job.kind).where(
                    Job.status == RUNNING, Job.locked_by.in_([w.name for w in workers])
                )
            ).all()
        )
    states = []
    for worker in workers:
        if worker.stopped_at is not None:
            state = "stopped"
        elif now - worker.heartbeat_at > timedelta(minutes=1):
            state = "silent"
        else:
            state = "running" if worker.name in running else "idle"
        states.append(
            WorkerState(
                worker.name, worker.started_at, worker.heartbeat_at, state, running.get(worker.name)
            )
        )
    return states


def retry_job(actor: Actor, job_id: uuid.UUID) -> Job:
    """Give a dead job a fresh set of attempts."""
    _require_network(actor)
    with transaction() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound("No such job.")
        if job.status != DEAD:
            raise InvalidInput("Only a dead job can be retried.")
        job.status, job.attempts, job.run_after, job.finished_at = QUEUED, 0, utcnow(), None
        audit.record(session, actor, "job.retry", "Job", job.id, detail={"kind": job.kind})
    return job


def taxonomy_map(actor: Actor) -> list[TaxonomySdohMap]:
    """The mapping from directory taxonomy terms to SDOH domains, by taxonomy and code."""
    _require_network(actor)
    with transaction() as session:
        return list(
            session.scalars(
                select(TaxonomySdohMap).order_by(
                    TaxonomySdohMap.taxonomy, TaxonomySdohMap.term_code, TaxonomySdohMap.term_name
                )
            )
        )


def add_taxonomy_mapping(actor: Actor, form: dict) -> TaxonomySdohMap:
    """Map one more taxonomy term (by code, or by name when it has none) to an SDOH domain."""
    _require_network(actor)
    taxonomy = (form.get("taxonomy") or "").strip()
    code = (form.get("term_code") or "").strip() or None
    name = (form.get("term_name") or "").strip() or None
    category = form.get("sdoh_category") or ""
    problems: dict[str, list[str]] = {}
    for field, column, value in (
        ("taxonomy", "taxonomy", taxonomy),
        ("term_code", "term_code", code),
        ("term_name", "term_name", name),
    ):
        limit = max_length(TaxonomySdohMap, column)
        if value and limit and len(value) > limit:
            problems[field] = [f"At most {limit} characters ({len(value)} given)."]
    if not taxonomy:
        problems["taxonomy"] = ["Which taxonomy the term comes from, e.g. AIRS/211 LA."]
    if not code and not name:
        problems["term_code"] = ["Give the term's code, or its name when it has no code."]
    if category not in SDOH_CATEGORIES:
        problems["sdoh_category"] = ["Pick an SDOH domain."]
    if problems:
        raise InvalidInput("The mapping cannot be added.", problems)
    with transaction() as session:
        duplicate = session.scalar(
            select(TaxonomySdohMap).where(
                TaxonomySdohMap.taxonomy == taxonomy,
                TaxonomySdohMap.term_code == code if code else TaxonomySdohMap.term_name == name,
            )
        )
        if duplicate is not None:
            raise InvalidInput(
                "That term is mapped already.",
                {"term_code": [f"Already mapped to {SDOH_CATEGORIES[duplicate.sdoh_category]}."]},
            )
        row = TaxonomySdohMap(
            id=uuid.uuid4(),
            taxonomy=taxonomy,
            term_code=code,
            term_name=name,
            sdoh_category=category,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor,
            "taxonomy_map.add",
            "TaxonomySdohMap",
            row.id,
            detail={"category": category},
        )
    return row


def remove_taxonomy_mapping(actor: Actor, row_id: uuid.UUID) -> None:
    _require_network(actor)
    with transaction() as session:
        row = session.get(TaxonomySdohMap, row_id)
        if row is None:
            raise NotFound("No such mapping.")
        session.delete(row)
        audit.record(session, actor, "taxonomy_map.remove", "TaxonomySdohMap", row_id)
