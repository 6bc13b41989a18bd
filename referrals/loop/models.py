"""A referral is a ServiceRequest (what is asked) and a Task (the work, owned by the recipient).
Every change to either is an append-only ReferralEvent; the timeline is read from events."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organization, User
from referrals.db import Base, utcnow
from referrals.directory.models import Service
from referrals.identifiers import PartnerIdentifier, identifier_relationship
from referrals.patients.models import Consent, Need, Patient


class Referral(Base):
    """SDOHCC-ServiceRequest."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_requester_created", "requester_org_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    requester_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    # The clinician who sent it from our pages; None when a partner's system sent it over the
    # API, which names the person in `requester_name` instead (ServiceRequest.requester).
    requester_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    requester_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # An intermediary's copy of another system's referral: the original ServiceRequest
    # (ServiceRequest.basedOn), as the intermediary named it.
    based_on: Mapped[str] = mapped_column(String(500), default="", server_default="")
    performer_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id"))
    consent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consents.id"))
    # The need (SDOHCC-Condition) the referral addresses, when it came from a screening.
    need_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("needs.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    intent: Mapped[str] = mapped_column(String(20), default="order")
    category: Mapped[str] = mapped_column(String(64))  # SDOH domain
    code: Mapped[str] = mapped_column(String(32))  # SNOMED CT service
    code_display: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(10), default="routine")
    note: Mapped[str] = mapped_column(Text, default="")
    # Adolescent minor-consent services: never disclosed to a guardian.
    sensitive: Mapped[bool] = mapped_column(default=False)
    # orderDetail contacting-subject-prohibited: the recipient must not contact the family.
    contact_prohibited: Mapped[bool] = mapped_column(default=False)
    # The family's choice of text updates for this referral: none, or to which number and in
    # which language (None: the family's number on file, in its language).
    sms_allowed: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    sms_phone: Mapped[str | None] = mapped_column(String(20))
    sms_language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(lazy="joined")
    requester_org: Mapped[Organization] = relationship(foreign_keys=[requester_org_id])
    requester_user: Mapped[User | None] = relationship()
    performer_org: Mapped[Organization] = relationship(foreign_keys=[performer_org_id])
    service: Mapped[Service] = relationship()
    consent: Mapped[Consent | None] = relationship()
    need: Mapped[Need | None] = relationship()
    task: Mapped[Task] = relationship(back_populates="referral", uselist=False, lazy="joined")
    identifiers: Mapped[list[PartnerIdentifier]] = identifier_relationship(
        "Referral", "ServiceRequest"
    )

    @property
    def referred_by(self) -> str:
        """Who sent it: the clinician, or the person the sending system named."""
        if self.requester_user is not None:
            return self.requester_user.name
        return self.requester_name or "sent by their system"


class Task(Base):
    """SDOHCC-TaskForReferralManagement."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_owner_status_authored", "owner_org_id", "status", "authored_on"),
        # FHIR polling: GET /fhir/Task?owner=...&_lastUpdated=gt... (and the referrer's side)
        Index("ix_tasks_owner_updated", "owner_org_id", "updated_at"),
        Index("ix_tasks_requester_updated", "requester_org_id", "updated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), unique=True)
    owner_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    requester_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_reason_code: Mapped[str | None] = mapped_column(String(32))
    status_action: Mapped[str | None] = mapped_column(String(20))  # the move that set it
    business_status: Mapped[str] = mapped_column(String(32), default="")
    output_code: Mapped[str | None] = mapped_column(String(32))  # SNOMED procedure
    output_display: Mapped[str | None] = mapped_column(String(200))
    outcome_note: Mapped[str] = mapped_column(Text, default="")
    authored_on: Mapped[datetime] = mapped_column(default=utcnow)
    responded_at: Mapped[datetime | None]  # first accept or decline
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
    # The intermediary's Task this one fulfils part of (Task.partOf), as it named it.
    part_of: Mapped[str] = mapped_column(String(500), default="", server_default="")

    referral: Mapped[Referral] = relationship(back_populates="task")
    owner_org: Mapped[Organization] = relationship(foreign_keys=[owner_org_id], lazy="joined")
    identifiers: Mapped[list[PartnerIdentifier]] = identifier_relationship("Task", "Task")

    __mapper_args__ = {"version_id_col": version}


class ReferralEvent(Base):
    __tablename__ = "referral_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_org_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    actor_org_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_code: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    business_status: Mapped[str | None] = mapped_column(String(32))
