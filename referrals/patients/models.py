"""Patients, their guardians, and the consents they give to disclose to a recipient."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organization, User
from referrals.db import Base, utcnow
from referrals.identifiers import PartnerIdentifier, identifier_relationship
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
    identifiers: Mapped[list[PartnerIdentifier]] = identifier_relationship("Patient", "Patient")

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
    # Who recorded it on our pages; None when the clinic's system sent it over the API.
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Withdrawn: from then on nothing more is shared with the recipient, no notice is sent.
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    revoked_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # What the family agreed to: the kinds of information disclosed (CONSENT_SCOPE keys),
    # whether the recipient's updates may be texted, to which number and in which language,
    # and, when signed on screen, the signature (a PNG data URL).
    scope: Mapped[list] = mapped_column(default=list, server_default="[]")
    sms_allowed: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    sms_phone: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str | None] = mapped_column(String(8))
    signature: Mapped[str | None] = mapped_column(Text)
    screening_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("screenings.id"))

    @property
    def active(self) -> bool:
        return self.status == "active"

    recipient: Mapped[Organization] = relationship()
    recorded_by: Mapped[User | None] = relationship(foreign_keys=[recorded_by_id])
    patient: Mapped[Patient] = relationship(lazy="joined", innerjoin=True)
    identifiers: Mapped[list[PartnerIdentifier]] = identifier_relationship("Consent", "Consent")


class Screening(Base):
    """A social-needs screening: the answers as a QuestionnaireResponse (SDOHCC), its scores,
    who answered it. In progress until finished; only a finished screening is scored."""

    __tablename__ = "screenings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    instrument: Mapped[str] = mapped_column(String(32))  # key in instruments.INSTRUMENTS
    instrument_code: Mapped[str] = mapped_column(String(16))  # LOINC panel
    status: Mapped[str] = mapped_column(String(16), default="in-progress")  # | completed
    language: Mapped[str] = mapped_column(String(8), default="en")  # the form's language
    # Who answered: the patient, a guardian on file, or another caregiver (by name).
    respondent: Mapped[str] = mapped_column(String(16))  # patient | guardian | other
    respondent_guardian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardians.id"))
    respondent_name: Mapped[str] = mapped_column(String(200))
    # {question code: [answer codes] | "skipped"}: QuestionnaireResponse.item
    answers: Mapped[dict] = mapped_column(default=dict)
    # The page (one opening of the form) that saved last: its own saves never conflict.
    last_page: Mapped[str] = mapped_column(String(32), default="")
    # Questions answered by the clinician's "no to the rest", not one by one.
    autofilled: Mapped[list] = mapped_column(default=list)
    # The instrument's own results once finished: [{"code", "value", "positive"}]
    results: Mapped[list] = mapped_column(default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    # Who recorded it on our pages; None when the clinic's system sent it over the API.
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    patient: Mapped[Patient] = relationship()
    recorded_by: Mapped[User] = relationship()
    observations: Mapped[list[ScreeningObservation]] = relationship(
        order_by="ScreeningObservation.position", lazy="selectin"
    )
    needs: Mapped[list[Need]] = relationship(
        back_populates="screening", order_by="Need.position", lazy="selectin"
    )

    @property
    def completed(self) -> bool:
        return self.status == "completed"


class ScreeningObservation(Base):
    """One answered question, or one of the instrument's results (SDOHCC-ObservationScreening
    Response): its LOINC code, the answer, whether it is positive and for which domains."""

    __tablename__ = "screening_observations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    screening_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("screenings.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    position: Mapped[int]
    code: Mapped[str] = mapped_column(String(16))  # LOINC question or result code
    display: Mapped[str] = mapped_column(Text)
    answer_codes: Mapped[list] = mapped_column(default=list)  # LA codes; [] for a numeric score
    answer_display: Mapped[str] = mapped_column(Text)
    value_integer: Mapped[int | None]  # a summed score (AHC safety 95614-4)
    derived: Mapped[bool] = mapped_column(default=False)  # a result computed from other items
    positive: Mapped[bool] = mapped_column(default=False)
    domains: Mapped[list] = mapped_column(default=list)  # SDOH categories it is positive for
    effective_at: Mapped[datetime]


class Need(Base):
    """A health concern found by a screening (SDOHCC-Condition): unconfirmed until the
    clinician confirms or dismisses it; the family says whether they want help with it now."""

    __tablename__ = "needs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    screening_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("screenings.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    domain: Mapped[str] = mapped_column(String(64))  # SDOH category
    display: Mapped[str] = mapped_column(String(200))
    snomed_code: Mapped[str | None] = mapped_column(String(32))
    snomed_display: Mapped[str | None] = mapped_column(String(200))
    icd10_code: Mapped[str | None] = mapped_column(String(16))
    icd10_display: Mapped[str | None] = mapped_column(String(200))
    # Condition.verificationStatus: unconfirmed | confirmed | refuted (dismissed)
    verification: Mapped[str] = mapped_column(String(16), default="unconfirmed")
    clinical_status: Mapped[str] = mapped_column(String(16), default="active")
    family_priority: Mapped[bool] = mapped_column(default=False)  # wants help with it now
    evidence: Mapped[list] = mapped_column(default=list)  # the question codes behind it
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    screening: Mapped[Screening | None] = relationship(back_populates="needs")
    identifiers: Mapped[list[PartnerIdentifier]] = identifier_relationship("Need", "Condition")

    @property
    def open(self) -> bool:
        return self.verification != "refuted"
