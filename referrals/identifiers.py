"""Identifiers partners' systems gave our records (FHIR `identifier`: a system and a value),
so that the same create sent twice finds the record it made the first time (conditional create)
and the partner sees its own identifiers on what we serve. Any package may record and look them
up; nothing here depends on the others."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, Relationship, mapped_column, relationship

from referrals.db import Base, utcnow


class PartnerIdentifier(Base):
    """An identifier a partner's system gave one of our records (FHIR `identifier`, system and
    value) when it created it through the API: a retry of the same create finds the record
    instead of making a second one (conditional create), and the partner sees its identifier
    on what we serve. Scoped to the organisation whose client sent it."""

    __tablename__ = "partner_identifiers"
    __table_args__ = (
        Index(
            "uq_partner_identifiers",
            "organization_id",
            "resource_type",
            "system",
            "value",
            unique=True,
        ),
        Index("ix_partner_identifiers_resource", "resource_type", "resource_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    resource_type: Mapped[str] = mapped_column(String(32))  # Patient, Consent, Condition, ...
    resource_id: Mapped[uuid.UUID]
    system: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def identifier_relationship(owner: str, resource_type: str) -> Relationship:
    """A read-only list of a record's partner identifiers, for the FHIR mapping."""
    return relationship(
        "PartnerIdentifier",
        primaryjoin=f"and_({owner}.id == foreign(PartnerIdentifier.resource_id), "
        f"PartnerIdentifier.resource_type == '{resource_type}')",
        viewonly=True,
        lazy="selectin",
        order_by="PartnerIdentifier.created_at",
    )
