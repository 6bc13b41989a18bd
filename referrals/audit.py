"""The audit trail: append-only and hash-chained, so that a removed or edited entry shows.
`record` is called by the services inside the transaction of the change it describes."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from referrals.auth.actor import Actor
from referrals.db import Base, utcnow

# Any 64-bit number of our own: the PostgreSQL advisory lock that orders the chain.
_CHAIN_LOCK = 0x52454641554449


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_at", "actor_user_id", "at"),
        Index("ix_audit_events_patient_at", "patient_id", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[uuid.UUID | None]
    org_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[uuid.UUID | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="success")  # success | denied | failed
    detail: Mapped[dict] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


def _digest(prev_hash: str, entry: dict) -> str:
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _entry(event: AuditEvent) -> dict:
    return {
        "at": event.at.isoformat(),
        "actor_user_id": str(event.actor_user_id or ""),
        "actor_name": event.actor_name,
        "org_id": str(event.org_id or ""),
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "patient_id": str(event.patient_id or ""),
        "ip": event.ip or "",
        "outcome": event.outcome,
        "detail": event.detail,
    }


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object = "",
    *,
    patient_id: uuid.UUID | None = None,
    outcome: str = "success",
    detail: dict | None = None,
) -> AuditEvent:
    """Append one entry to the trail, chained to the one before it. Never log PHI in `detail`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    event = AuditEvent(
        at=utcnow(),
        actor_user_id=actor.user_id,
        actor_name=actor.user_name,
        org_id=actor.org_id,
        org_name=actor.org_name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        patient_id=patient_id,
        ip=actor.ip,
        outcome=outcome,
        detail=detail or {},
        prev_hash=prev or "",
    )
    event.hash = _digest(event.prev_hash, _entry(event))
    session.add(event)
    session.flush()
    return event


def verify_chain(session: Session, *, last: int | None = None) -> int | None:
    """The id of the first entry whose hash does not hold, or None when the trail is intact.

    With `last`, only the newest entries are checked (a page can afford that; the
    `audit-verify` command checks the whole trail)."""
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    prev: str | None = ""
    if last is not None:
        first_id = session.scalar(
            select(AuditEvent.id).order_by(AuditEvent.id.desc()).offset(last - 1).limit(1)
        )
        if first_id is not None:
            stmt = stmt.where(AuditEvent.id >= first_id)
            prev = None  # the first entry's predecessor is outside the window
    for event in session.scalars(stmt):
        if prev is not None and event.prev_hash != prev:
            return event.id
        if event.hash != _digest(event.prev_hash, _entry(event)):
            return event.id
        prev = event.hash
    return None


def deny(session: Session, actor: Actor, action: str, target_type: str, target_id: object) -> None:
    """Keep a refused access on the trail even though the caller is about to fail."""
    record(session, actor, action, target_type, target_id, outcome="denied")
    session.commit()
