"""Our directory rows as HSDS 3.1 JSON: the nested service of `schema/compiled/service.json`,
organizations, taxonomies and taxonomy terms.

What referrals need beyond HSDS travels in one extension object on each service, `x_referrals`
(HSDS objects accept extra properties; the `x_` prefix keeps it clear of future HSDS fields):

    "x_referrals": {
      "categories": ["food-insecurity"],          # SDOHCC SDOH category codes
      "service_code": "710925007", "service_display": "Provision of food",   # SNOMED CT
      "procedure_codes": [{"code": "...", "display": "..."}],
      "accepts_electronic_referrals": true, "sensitive": false,
      "free_of_charge": true,
      "referral_contact": {"name": ..., "phone": ..., "email": ...},
      "capacity": {"status": "capacity", "note": ..., "updated_at": "2026-01-01T00:00:00.000Z"}
    }

and organizations carry `x_referrals: {"kind", "hipaa_covered", "phone", "timezone"}`. The
importer reads both back, so export and import again loses nothing. HSDS fields we have no
column for (`hsds_extra` on organizations, services, locations and service_at_locations:
funding, required_documents, accessibility, deprecated fields…) are written back as they were
given. Directory data is public: nothing here comes from patients or referrals."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referrals.auth.models import Organization
from referrals.db import Base
from referrals.directory.hsds.schema import EXTENSION, TABLES
from referrals.directory.models import (
    Address,
    Attribute,
    Contact,
    CostOption,
    Language,
    Location,
    Phone,
    Program,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    Taxonomy,
    TaxonomyTerm,
)

MODELS: dict[str, type[Base]] = {
    "organization": Organization,
    "program": Program,
    "service": Service,
    "location": Location,
    "service_at_location": ServiceAtLocation,
    "address": Address,
    "phone": Phone,
    "contact": Contact,
    "schedule": Schedule,
    "language": Language,
    "service_area": ServiceArea,
    "cost_option": CostOption,
    "taxonomy": Taxonomy,
    "taxonomy_term": TaxonomyTerm,
    "attribute": Attribute,
}


def hsds_datetime(value: datetime) -> str:
    """UTC with millisecond accuracy and a Z, as HSDS asks of last_modified."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hsds_value(field_type: str, value: Any) -> Any:
    """A column value as HSDS JSON writes it."""
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return hsds_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if field_type == "extension" and isinstance(value, str) and value.isdigit():
        return int(value)  # HSDS types the extension as a number
    return value


def columns(table: str, row: Base) -> dict[str, Any]:
    """The row's own HSDS fields (no nested objects), in the spec's order."""
    return {f.name: hsds_value(f.type, getattr(row, f.name)) for f in TABLES[table].fields}


def with_extra(item: dict, row: Any, *, minimal: bool = False) -> dict:
    """`item` with the fields kept verbatim from the import (never over one of ours);
    `minimal` leaves out the kept arrays, as it leaves out our nested ones."""
    for key, value in (row.hsds_extra or {}).items():
        if not (minimal and isinstance(value, list)):
            item.setdefault(key, value)
    return item


class Related:
    """Loads the rows that hang off a set of records in a few IN queries, so that a page of
    services serializes in a fixed number of queries rather than one per child."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[tuple[str, str], dict[uuid.UUID, list[Base]]] = {}
        self._loaded: dict[tuple[str, str], set[uuid.UUID]] = defaultdict(set)

    def prefetch(self, table: str, fk: str, ids: Iterable[uuid.UUID]) -> None:
        key = (table, fk)
        wanted = {i for i in ids if i is not None} - self._loaded[key]
        if not wanted:
            return
        model = MODELS[table]
        column = getattr(model, fk)
        found = self._rows.setdefault(key, defaultdict(list))
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            for row in self.session.scalars(select(model).where(column.in_(chunk))):
                found[getattr(row, fk)].append(row)
        self._loaded[key] |= wanted

    def loaded(self, table: str) -> list[Any]:
        """Every row of `table` loaded so far, whichever link it was loaded through."""
        return [
            row
            for (name, _fk), by_parent in self._rows.items()
            if name == table
            for rows in by_parent.values()
            for row in rows
        ]

    def of(self, table: str, fk: str, parent_id: uuid.UUID) -> list[Any]:
        """The rows of `table` whose `fk` is `parent_id`, ordered by id for stable output."""
        self.prefetch(table, fk, [parent_id])
        rows = self._rows[(table, fk)].get(parent_id, [])
        return sorted(rows, key=lambda r: r.id)


class Serializer:
    """Turns rows into HSDS dicts; one instance per request or export, sharing its cache."""

    stamp = staticmethod(hsds_datetime)

    def __init__(self, session: Session) -> None:
        self.session = session
        self.related = Related(session)

    # ----- prefetching for a page of services -------------------------------------------
    def prefetch_services(self, services: Sequence[Service]) -> None:
        """Load everything the nested form of these services shows, table by table."""
        ids = [s.id for s in services]
        r = self.related
        for table in ("phone", "schedule", "service_area", "language", "contact"):
            r.prefetch(table, "service_id", ids)
        r.prefetch("cost_option", "service_id", ids)
        r.prefetch("service_at_location", "service_id", ids)
        links = [x for s in ids for x in r.of("service_at_location", "service_id", s)]
        sal_ids = [x.id for x in links]
        for table in ("phone", "schedule", "service_area", "contact"):
            r.prefetch(table, "service_at_location_id", sal_ids)
        location_ids = [x.location_id for x in links]
        r.prefetch("location", "id", location_ids)
        for table in ("address", "phone", "schedule", "language", "contact"):
            r.prefetch(table, "location_id", location_ids)
        r.prefetch("phone", "contact_id", [c.id for c in r.loaded("contact")])
        r.prefetch("language", "phone_id", [p.id for p in r.loaded("phone")])
        r.prefetch("program", "id", [s.program_id for s in services if s.program_id])
        every_row = [row.id for table in MODELS for row in r.loaded(table)]
        r.prefetch("attribute", "link_id", ids + every_row + [s.organization_id for s in services])

    def prefetch_organizations(self, organizations: Sequence[Organization]) -> None:
        """Load everything the nested form of these organizations shows, table by table."""
        ids = [o.id for o in organizations]
        r = self.related
        for table in ("contact", "phone", "location", "program"):
            r.prefetch(table, "organization_id", ids)
        location_ids = [x.id for x in r.loaded("location")]
        for table in ("address", "phone", "schedule", "language", "contact"):
            r.prefetch(table, "location_id", location_ids)
        r.prefetch("phone", "contact_id", [c.id for c in r.loaded("contact")])
        r.prefetch("language", "phone_id", [p.id for p in r.loaded("phone")])
        every_row = [row.id for table in MODELS for row in r.loaded(table)]
        r.prefetch("attribute", "link_id", ids + every_row)

    # ----- records ----------------------------------------------------------------------
    def attributes(self, link_id: uuid.UUID) -> list[dict]:
        out = []
        for attribute in self.related.of("attribute", "link_id", link_id):
            item = columns("attribute", attribute)
            item["taxonomy_term"] = self.taxonomy_term(attribute.taxonomy_term)
            out.append(item)
        return out

    def many(self, table: str, fk: str, parent_id: uuid.UUID) -> list[dict]:
        """The HSDS dicts of the `table` rows hanging off `parent_id` through `fk`."""
        render = {
            "language": self.language,
            "phone": self.phone,
            "contact": self.contact,
            "location": self.location,
            "service_at_location": self.service_at_location,
            "program": self.program,
        }.get(table)
        rows = self.related.of(table, fk, parent_id)
        if render is None:
            return [self.simple(table, row) for row in rows]
        return [render(row) for row in rows]

    def _with_attributes(self, item: dict, row_id: uuid.UUID) -> dict:
        item["attributes"] = self.attributes(row_id)
        return item

    def language(self, row: Language) -> dict:
        return self._with_attributes(columns("language", row), row.id)

    def phone(self, row: Phone) -> dict:
        item = columns("phone", row)
        item["languages"] = self.many("language", "phone_id", row.id)
        return self._with_attributes(item, row.id)

    def contact(self, row: Contact) -> dict:
        item = columns("contact", row)
        item["phones"] = self.many("phone", "contact_id", row.id)
        return self._with_attributes(item, row.id)

    def simple(self, table: str, row: Base) -> dict:
        return self._with_attributes(columns(table, row), row.id)  # type: ignore[attr-defined]

    def location(self, row: Location) -> dict:
        item = with_extra(columns("location", row), row)
        item["languages"] = self.many("language", "location_id", row.id)
        item["addresses"] = self.many("address", "location_id", row.id)
        item["contacts"] = self.many("contact", "location_id", row.id)
        item["phones"] = self.many("phone", "location_id", row.id)
        item["schedules"] = self.many("schedule", "location_id", row.id)
        return self._with_attributes(item, row.id)

    def service_at_location(self, row: ServiceAtLocation) -> dict:
        item = with_extra(columns("service_at_location", row), row)
        of = self.related.of
        fk = "service_at_location_id"
        item["service_areas"] = self.many("service_area", fk, row.id)
        item["contacts"] = self.many("contact", fk, row.id)
        item["phones"] = self.many("phone", fk, row.id)
        item["schedules"] = self.many("schedule", fk, row.id)
        location = of("location", "id", row.location_id)
        item["location"] = self.location(location[0]) if location else None
        return self._with_attributes(item, row.id)

    def program(self, row: Program) -> dict:
        return self.simple("program", row)

    def organization(self, row: Organization, *, minimal: bool = False) -> dict:
        """An organization; `minimal` leaves out its nested arrays."""
        item = columns("organization", row)
        item[EXTENSION] = {
            "kind": row.kind,
            "hipaa_covered": row.hipaa_covered,
            "phone": row.phone,
            "timezone": row.timezone,
        }
        with_extra(item, row, minimal=minimal)
        if minimal:
            return item
        item["contacts"] = self.many("contact", "organization_id", row.id)
        item["phones"] = self.many("phone", "organization_id", row.id)
        item["locations"] = self.many("location", "organization_id", row.id)
        item["programs"] = self.many("program", "organization_id", row.id)
        return self._with_attributes(item, row.id)

    def taxonomy(self, row: Taxonomy) -> dict:
        return columns("taxonomy", row)

    def taxonomy_term(self, row: TaxonomyTerm) -> dict:
        item = columns("taxonomy_term", row)
        if row.taxonomy_id is not None:
            found = self.related.of("taxonomy", "id", row.taxonomy_id)
            if found:
                item["taxonomy_detail"] = self.taxonomy(found[0])
        return item

    def service(self, row: Service, *, minimal: bool = False) -> dict:
        """The fully nested service; `minimal` gives the one-to-one fields only (the shape of
        the spec's service list): the service's own fields, its organization and program."""
        item = columns("service", row)
        item[EXTENSION] = service_extension(row)
        with_extra(item, row, minimal=minimal)
        program = self.related.of("program", "id", row.program_id) if row.program_id else []
        if minimal:
            item["organization"] = self.organization(row.organization, minimal=True)
            item["program"] = columns("program", program[0]) if program else None
            return item
        item["phones"] = self.many("phone", "service_id", row.id)
        item["schedules"] = self.many("schedule", "service_id", row.id)
        item["service_areas"] = self.many("service_area", "service_id", row.id)
        item["service_at_locations"] = self.many("service_at_location", "service_id", row.id)
        item["languages"] = self.many("language", "service_id", row.id)
        item["organization"] = self.organization(row.organization, minimal=True)
        item["cost_options"] = self.many("cost_option", "service_id", row.id)
        item["program"] = self.program(program[0]) if program else None
        item["contacts"] = self.many("contact", "service_id", row.id)
        return self._with_attributes(item, row.id)


def service_extension(row: Service) -> dict:
    """What referrals need beyond HSDS, as the `x_referrals` object on a service."""
    return {
        "categories": list(row.categories or []),
        "service_code": row.service_code,
        "service_display": row.service_display,
        "procedure_codes": list(row.procedure_codes or []),
        "accepts_electronic_referrals": row.accepts_electronic_referrals,
        "sensitive": row.sensitive,
        "free_of_charge": row.free_of_charge,
        "referral_contact": {
            "name": row.referral_contact_name,
            "phone": row.referral_contact_phone,
            "email": row.referral_contact_email,
        },
        "capacity": {
            "status": row.capacity_status,
            "note": row.capacity_note,
            "updated_at": hsds_value("datetime", row.capacity_updated_at),
        },
    }


def serialize_services(
    session: Session, services: Sequence[Service], *, minimal: bool = False
) -> list[dict]:
    """Many services at once, loading their related rows in a fixed number of queries."""
    serializer = Serializer(session)
    if not minimal:
        serializer.prefetch_services(services)
    else:
        serializer.related.prefetch("program", "id", [s.program_id for s in services])
    return [serializer.service(s, minimal=minimal) for s in services]
