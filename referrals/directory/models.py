"""The directory: services that organisations offer, and whom and where they serve."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organization
from referrals.db import Base, utcnow


class Service(Base):
    __tablename__ = "services"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # SDOH domain codes (SDOHCC-ValueSetSDOHCategory)
    categories: Mapped[list] = mapped_column(default=list)
    # What the service can record as done: [{"code": SNOMED, "display": ...}]
    procedure_codes: Mapped[list] = mapped_column(default=list)
    # SNOMED CT code of the service requested (ServiceRequest.code)
    service_code: Mapped[str] = mapped_column(String(32))
    service_display: Mapped[str] = mapped_column(String(200))
    languages: Mapped[list] = mapped_column(default=list)  # BCP-47 codes
    age_min: Mapped[int | None]
    age_max: Mapped[int | None]
    address: Mapped[str] = mapped_column(String(300), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    zip_code: Mapped[str] = mapped_column(String(10), default="", index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(lazy="joined")

    def serves_age(self, age: int) -> bool:
        return (self.age_min is None or age >= self.age_min) and (
            self.age_max is None or age <= self.age_max
        )
