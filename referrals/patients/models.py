"""Patients, their guardians, and the consents they give to disclose to a recipient."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organization, User
from referrals.db import Base, utcnow
from referrals.patients.consent_rules import age_on


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The organisation that registered the patient holds the record.
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    mrn: Mapped[str | None] = mapped_column(String(64))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100), index=True)
    birth_date: Mapped[date] = mapped_column(Date)
    gender: Mapped[str] = mapped_column(String(16), default="unknown")
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    language: Mapped[str] = mapped_column(String(8), default="en")
    zip_code: Mapped[str] = mapped_column(String(10), default="")
    sms_opt_in: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    organization: Mapped[Organization] = relationship()
    guardians: Mapped[list[Guardian]] = relationship(
        back_populates="patient", lazy="selectin", order_by="Guardian.created_at"
    )

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def age(self, today: date) -> int:
        return age_on(self.birth_date, today)


class Guardian(Base):
    __tablename__ = "guardians"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    relationship_code: Mapped[str] = mapped_column("relationship", String(32))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="guardians")


class Consent(Base):
    """Permission to disclose to one recipient organisation (SDOHCC-Consent, v3 ActCode IDSCL)."""

    __tablename__ = "consents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    recipient_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    granted_by: Mapped[str] = mapped_column(String(16))  # patient | guardian
    granted_by_name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))  # verbal | written | electronic
    granted_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | inactive
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Withdrawn: from then on nothing more is shared with the recipient, no notice is sent.
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    revoked_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    @property
    def active(self) -> bool:
        return self.status == "active"

    recipient: Mapped[Organization] = relationship()
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
