"""The directory, after Open Referral HSDS 3.1: organizations (in auth), services, locations and
their addresses, where each service is delivered, phones, schedules, languages, service areas,
cost options, contacts, taxonomies and the attributes that tag records with taxonomy terms.

HSDS ids are UUIDs and are kept as our primary keys, so that re-importing a file updates the
same rows. What referrals need beyond HSDS sits on the service: the SDOH domains it addresses,
the SNOMED CT codes it performs, whether it takes electronic referrals, whether it is
sensitive, whom referrals go to, and its capacity (SDOHCC STU3 codes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, Date, Float, ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organization
from referrals.db import Base, utcnow

SERVICE_STATUSES = ("active", "inactive", "defunct", "temporarily closed")
LOCATION_TYPES = ("physical", "postal", "virtual")
# SDOHCC (STU3) HealthcareService capacity codes
CAPACITY_STATUSES = {
    "capacity": "Accepting referrals",
    "no-capacity": "Not accepting referrals",
    "waitlist": "Waiting list",
    "additional-assessment-required": "Additional assessment required",
}
STALE_AFTER_DAYS = 180

# The longest text each column takes, whatever writes it (the HSDS import, the listing form):
# a String column's own length; a Text column, which has none, its entry here or LONG_TEXT.
LONG_TEXT = 10_000
TEXT_LIMITS = {
    "service_areas.extent": 1_000_000,  # a boundary, as GeoJSON or WKT
    "services.capacity_note": 2_000,
}
# The HSDS fields kept without a column of ours (hsds_extra), as JSON, on one record.
KEPT_FIELDS_LIMIT = 100_000


def text_limit(column: Column) -> int | None:
    """The most characters a text column takes (see TEXT_LIMITS); None for other columns."""
    if not isinstance(column.type, String):  # Text is a String without a length
        return None
    return column.type.length or TEXT_LIMITS.get(f"{column.table.name}.{column.name}", LONG_TEXT)


def max_length(model: type, name: str) -> int | None:
    """The most characters the model's column `name` takes; None if it is not text."""
    column = model.__table__.c.get(name)  # type: ignore[attr-defined]
    return None if column is None else text_limit(column)


def _fk(table: str) -> Mapped[uuid.UUID | None]:
    return mapped_column(ForeignKey(f"{table}.id", ondelete="CASCADE"), index=True)


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (Index("ix_services_status_name", "status", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    program_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20), default="active")
    interpretation_services: Mapped[str | None] = mapped_column(Text)
    application_process: Mapped[str | None] = mapped_column(Text)
    fees_description: Mapped[str | None] = mapped_column(Text)
    accreditations: Mapped[str | None] = mapped_column(Text)
    eligibility_description: Mapped[str | None] = mapped_column(Text)
    minimum_age: Mapped[int | None]
    maximum_age: Mapped[int | None]
    assured_date: Mapped[date | None] = mapped_column(Date)
    assurer_email: Mapped[str | None] = mapped_column(String(254))
    alert: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    # What referrals need beyond HSDS
    categories: Mapped[list] = mapped_column(default=list)  # SDOH domain codes
    service_code: Mapped[str] = mapped_column(String(32), default="410606002")  # SNOMED CT
    service_display: Mapped[str] = mapped_column(String(200), default="Social service procedure")
    procedure_codes: Mapped[list] = mapped_column(default=list)  # [{"code", "display"}]
    accepts_electronic_referrals: Mapped[bool] = mapped_column(default=True)
    sensitive: Mapped[bool] = mapped_column(default=False)
    referral_contact_name: Mapped[str | None] = mapped_column(String(200))
    referral_contact_phone: Mapped[str | None] = mapped_column(String(32))
    referral_contact_email: Mapped[str | None] = mapped_column(String(254))
    capacity_status: Mapped[str | None] = mapped_column(String(40))
    capacity_note: Mapped[str | None] = mapped_column(Text)
    capacity_updated_at: Mapped[datetime | None]
    # Derived at every write from the languages and cost options, for search.
    language_codes: Mapped[list] = mapped_column(default=list)
    free_of_charge: Mapped[bool | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # HSDS fields we have no column for (funding, required_documents, deprecated fields…),
    # kept verbatim so that an export gives back what was imported.
    hsds_extra: Mapped[dict] = mapped_column(default=dict)

    organization: Mapped[Organization] = relationship(lazy="joined")
    languages: Mapped[list[Language]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Language.service_id"
    )
    phones: Mapped[list[Phone]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Phone.service_id"
    )
    schedules: Mapped[list[Schedule]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Schedule.service_id"
    )
    service_areas: Mapped[list[ServiceArea]] = relationship(
        cascade="all, delete-orphan", foreign_keys="ServiceArea.service_id"
    )
    cost_options: Mapped[list[CostOption]] = relationship(cascade="all, delete-orphan")
    contacts: Mapped[list[Contact]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Contact.service_id"
    )
    service_at_locations: Mapped[list[ServiceAtLocation]] = relationship(
        cascade="all, delete-orphan", back_populates="service"
    )

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def primary_address(self) -> Address | None:
        """The first physical address the service is delivered at, if any."""
        for link in self.service_at_locations:
            for address in link.location.addresses:
                if address.address_type == "physical":
                    return address
        return None

    def serves_age(self, age: int) -> bool:
        return (self.minimum_age is None or age >= self.minimum_age) and (
            self.maximum_age is None or age <= self.maximum_age
        )


class Location(Base):
    __tablename__ = "locations"
    __table_args__ = (Index("ix_locations_lat_lon", "latitude", "longitude"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id"), index=True
    )
    location_type: Mapped[str] = mapped_column(String(10), default="physical")
    url: Mapped[str | None] = mapped_column(String(500))
    name: Mapped[str | None] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    transportation: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    external_identifier: Mapped[str | None] = mapped_column(String(200))
    external_identifier_type: Mapped[str | None] = mapped_column(String(100))
    # HSDS fields we have no column for (funding, required_documents, deprecated fields…),
    # kept verbatim so that an export gives back what was imported.
    hsds_extra: Mapped[dict] = mapped_column(default=dict)

    addresses: Mapped[list[Address]] = relationship(cascade="all, delete-orphan")
    phones: Mapped[list[Phone]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Phone.location_id"
    )
    schedules: Mapped[list[Schedule]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Schedule.location_id"
    )
    languages: Mapped[list[Language]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Language.location_id"
    )


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    location_id: Mapped[uuid.UUID | None] = _fk("locations")
    attention: Mapped[str | None] = mapped_column(String(200))
    address_1: Mapped[str] = mapped_column(String(300))
    address_2: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    state_province: Mapped[str] = mapped_column(String(100))
    postal_code: Mapped[str] = mapped_column(String(20), index=True)
    country: Mapped[str] = mapped_column(String(2), default="US")
    address_type: Mapped[str] = mapped_column(String(10), default="physical")


class ServiceAtLocation(Base):
    __tablename__ = "service_at_locations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str | None] = mapped_column(Text)
    # HSDS fields we have no column for (funding, required_documents, deprecated fields…),
    # kept verbatim so that an export gives back what was imported.
    hsds_extra: Mapped[dict] = mapped_column(default=dict)

    service: Mapped[Service] = relationship(back_populates="service_at_locations")
    location: Mapped[Location] = relationship(lazy="joined")
    schedules: Mapped[list[Schedule]] = relationship(
        cascade="all, delete-orphan", foreign_keys="Schedule.service_at_location_id"
    )


class Phone(Base):
    __tablename__ = "phones"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID | None] = _fk("organizations")
    service_id: Mapped[uuid.UUID | None] = _fk("services")
    location_id: Mapped[uuid.UUID | None] = _fk("locations")
    contact_id: Mapped[uuid.UUID | None] = _fk("contacts")
    service_at_location_id: Mapped[uuid.UUID | None] = _fk("service_at_locations")
    number: Mapped[str] = mapped_column(String(64))
    extension: Mapped[str | None] = mapped_column(String(20))
    type: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID | None] = _fk("organizations")
    service_id: Mapped[uuid.UUID | None] = _fk("services")
    service_at_location_id: Mapped[uuid.UUID | None] = _fk("service_at_locations")
    location_id: Mapped[uuid.UUID | None] = _fk("locations")
    name: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    service_id: Mapped[uuid.UUID | None] = _fk("services")
    location_id: Mapped[uuid.UUID | None] = _fk("locations")
    service_at_location_id: Mapped[uuid.UUID | None] = _fk("service_at_locations")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    dtstart: Mapped[date | None] = mapped_column(Date)
    timezone: Mapped[float | None] = mapped_column(Float)  # UTC offset in hours
    until: Mapped[date | None] = mapped_column(Date)
    count: Mapped[int | None]
    wkst: Mapped[str | None] = mapped_column(String(2))
    freq: Mapped[str | None] = mapped_column(String(10))
    interval: Mapped[int | None]
    byday: Mapped[str | None] = mapped_column(String(100))
    byweekno: Mapped[str | None] = mapped_column(String(100))
    bymonthday: Mapped[str | None] = mapped_column(String(100))
    byyearday: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    opens_at: Mapped[str | None] = mapped_column(String(16))  # HH:MM[offset], as HSDS has it
    closes_at: Mapped[str | None] = mapped_column(String(16))
    schedule_link: Mapped[str | None] = mapped_column(String(500))
    attending_type: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)


class Language(Base):
    __tablename__ = "languages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    service_id: Mapped[uuid.UUID | None] = _fk("services")
    location_id: Mapped[uuid.UUID | None] = _fk("locations")
    phone_id: Mapped[uuid.UUID | None] = _fk("phones")
    name: Mapped[str | None] = mapped_column(String(100))
    code: Mapped[str | None] = mapped_column(String(16))  # ISO 639-1 or 639-3
    note: Mapped[str | None] = mapped_column(Text)


class ServiceArea(Base):
    __tablename__ = "service_areas"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    service_id: Mapped[uuid.UUID | None] = _fk("services")
    service_at_location_id: Mapped[uuid.UUID | None] = _fk("service_at_locations")
    name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    extent: Mapped[str | None] = mapped_column(Text)
    extent_type: Mapped[str | None] = mapped_column(String(20))
    uri: Mapped[str | None] = mapped_column(String(500))


class CostOption(Base):
    __tablename__ = "cost_options"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    option: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[float | None] = mapped_column(Numeric(12, 2, asdecimal=False))
    amount_description: Mapped[str | None] = mapped_column(Text)


class Taxonomy(Base):
    __tablename__ = "taxonomies"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    uri: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[str | None] = mapped_column(String(50))


class TaxonomyTerm(Base):
    __tablename__ = "taxonomy_terms"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str | None] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("taxonomy_terms.id"))
    taxonomy: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(16))
    taxonomy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("taxonomies.id"), index=True)
    term_uri: Mapped[str | None] = mapped_column(String(500))


class Attribute(Base):
    """Tags a record (service, location, organization…) with a taxonomy term."""

    __tablename__ = "attributes"
    __table_args__ = (Index("ix_attributes_link", "link_entity", "link_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    link_id: Mapped[uuid.UUID] = mapped_column()
    taxonomy_term_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("taxonomy_terms.id"), index=True)
    link_type: Mapped[str | None] = mapped_column(String(100))
    link_entity: Mapped[str] = mapped_column(String(40))
    value: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(300))

    taxonomy_term: Mapped[TaxonomyTerm] = relationship(lazy="joined")


class TaxonomySdohMap(Base):
    """One editable table: which SDOH domain a taxonomy term (211/AIRS, Open Eligibility…)
    means. Matched on the term's code, or its name when it has no code."""

    __tablename__ = "taxonomy_sdoh_map"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    taxonomy: Mapped[str] = mapped_column(String(100))  # e.g. "AIRS/211 LA", "Open Eligibility"
    term_code: Mapped[str | None] = mapped_column(String(100), index=True)
    term_name: Mapped[str | None] = mapped_column(String(300), index=True)
    sdoh_category: Mapped[str] = mapped_column(String(64))
