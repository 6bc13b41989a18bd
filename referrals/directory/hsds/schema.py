"""The HSDS 3.1 tables we store, field by field, after the spec's `schema/simple/schema.csv`:
one place that import (validation, flattening), export (tabular columns) and the serializer
read. The records in `KEEPS_EXTRA` hold every other field they are given verbatim (`EXTRA`);
on the other tables, what we have no column for is reported instead of dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field

HSDS_VERSION = "3.1"
PROFILE_URL = "https://openreferral.org/"
EXTENSION = "x_referrals"
# Fields without a column of ours (funding, required_documents, accessibility, deprecated
# fields…) are kept verbatim in this JSON column of these tables, and exported as given.
EXTRA = "hsds_extra"
KEEPS_EXTRA = frozenset({"organization", "service", "location", "service_at_location"})


@dataclass(frozen=True)
class Field:
    """One HSDS field: its type as we check it, whether HSDS requires it, and its codes."""

    name: str
    # str | uuid | int | number | date | datetime | time | email | currency | extension
    # (a phone extension: a number in HSDS, text for us) | list (RRULE parts) | language
    type: str = "str"
    required: bool = False
    tabular_required: bool = False  # required only in the tabular form (implied when nested)
    enum: tuple[str, ...] = ()
    ref: str | None = None  # table the uuid points at
    soft_ref: bool = False  # an optional hierarchy link: dangling only warns (see importer)
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Table:
    """One HSDS table, its tabular file and its fields in the spec's order."""

    name: str
    path: str
    fields: tuple[Field, ...]
    nested: dict[str, str] = field(default_factory=dict)  # JSON array key -> table

    def get(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]


def _id() -> Field:
    return Field("id", "uuid", required=True)


def _link(name: str, table: str, **kw: object) -> Field:
    return Field(name, "uuid", ref=table, **kw)  # type: ignore[arg-type]


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "organization",
            "organizations.csv",
            (
                _id(),
                Field("name", required=True),
                Field("alternate_name"),
                Field("description", required=True),
                Field("email", "email"),
                Field("website"),
                Field("year_incorporated", "int", minimum=1000, maximum=9999),
                Field("legal_status"),
                Field("logo"),
                Field("uri"),
                _link("parent_organization_id", "organization", soft_ref=True),
            ),
            {
                "phones": "phone",
                "contacts": "contact",
                "locations": "location",
                "programs": "program",
                "attributes": "attribute",
            },
        ),
        Table(
            "program",
            "programs.csv",
            (
                _id(),
                _link("organization_id", "organization", tabular_required=True),
                Field("name", required=True),
                Field("alternate_name"),
                Field("description", required=True),
            ),
            {"attributes": "attribute"},
        ),
        Table(
            "service",
            "services.csv",
            (
                _id(),
                _link("organization_id", "organization", tabular_required=True),
                _link("program_id", "program"),
                Field("name", required=True),
                Field("alternate_name"),
                Field("description"),
                Field("url"),
                Field("email", "email"),
                Field(
                    "status",
                    required=True,
                    enum=("active", "inactive", "defunct", "temporarily closed"),
                ),
                Field("interpretation_services"),
                Field("application_process"),
                Field("fees_description"),
                Field("accreditations"),
                Field("eligibility_description"),
                Field("minimum_age", "int", minimum=0, maximum=150),
                Field("maximum_age", "int", minimum=0, maximum=150),
                Field("assured_date", "date"),
                Field("assurer_email", "email"),
                Field("alert"),
                Field("last_modified", "datetime"),
            ),
            {
                "phones": "phone",
                "schedules": "schedule",
                "service_areas": "service_area",
                "service_at_locations": "service_at_location",
                "languages": "language",
                "cost_options": "cost_option",
                "contacts": "contact",
                "attributes": "attribute",
            },
        ),
        Table(
            "location",
            "locations.csv",
            (
                _id(),
                Field("location_type", required=True, enum=("physical", "postal", "virtual")),
                Field("url"),
                _link("organization_id", "organization"),
                Field("name"),
                Field("alternate_name"),
                Field("description"),
                Field("transportation"),
                # WGS84 ranges are checked by the importer (a warning unless --strict)
                Field("latitude", "number"),
                Field("longitude", "number"),
                Field("external_identifier"),
                Field("external_identifier_type"),
            ),
            {
                "languages": "language",
                "addresses": "address",
                "contacts": "contact",
                "phones": "phone",
                "schedules": "schedule",
                "attributes": "attribute",
            },
        ),
        Table(
            "service_at_location",
            "service_at_locations.csv",
            (
                _id(),
                _link("service_id", "service", tabular_required=True),
                _link("location_id", "location", tabular_required=True),
                Field("description"),
            ),
            {
                "service_areas": "service_area",
                "contacts": "contact",
                "phones": "phone",
                "schedules": "schedule",
                "attributes": "attribute",
            },
        ),
        Table(
            "address",
            "addresses.csv",
            (
                _id(),
                _link("location_id", "location", tabular_required=True),
                Field("attention"),
                Field("address_1", required=True),
                Field("address_2"),
                Field("city", required=True),
                Field("region"),
                Field("state_province", required=True),
                Field("postal_code", required=True),
                Field("country", required=True),
                Field("address_type", required=True, enum=("physical", "postal", "virtual")),
            ),
            {"attributes": "attribute"},
        ),
        Table(
            "phone",
            "phones.csv",
            (
                _id(),
                _link("location_id", "location"),
                _link("service_id", "service"),
                _link("organization_id", "organization"),
                _link("contact_id", "contact"),
                _link("service_at_location_id", "service_at_location"),
                Field("number", required=True),
                Field("extension", "extension"),
                Field("type"),
                Field("description"),
            ),
            {"languages": "language", "attributes": "attribute"},
        ),
        Table(
            "contact",
            "contacts.csv",
            (
                _id(),
                _link("organization_id", "organization"),
                _link("service_id", "service"),
                _link("service_at_location_id", "service_at_location"),
                _link("location_id", "location"),
                Field("name"),
                Field("title"),
                Field("department"),
                Field("email", "email"),
            ),
            {"phones": "phone", "attributes": "attribute"},
        ),
        Table(
            "schedule",
            "schedules.csv",
            (
                _id(),
                _link("service_id", "service"),
                _link("location_id", "location"),
                _link("service_at_location_id", "service_at_location"),
                Field("valid_from", "date"),
                Field("valid_to", "date"),
                Field("dtstart", "date"),
                Field("timezone", "number", minimum=-14, maximum=14),
                Field("until", "date"),
                Field("count", "int", minimum=0, maximum=100_000),
                Field("wkst", enum=("MO", "TU", "WE", "TH", "FR", "SA", "SU")),
                Field("freq", enum=("WEEKLY", "MONTHLY")),
                Field("interval", "int", minimum=1, maximum=10_000),
                Field("byday", "list"),
                Field("byweekno", "list"),
                Field("bymonthday", "list"),
                Field("byyearday", "list"),
                Field("description"),
                Field("opens_at", "time"),
                Field("closes_at", "time"),
                Field("schedule_link"),
                Field("attending_type"),
                Field("notes"),
            ),
            {"attributes": "attribute"},
        ),
        Table(
            "language",
            "languages.csv",
            (
                _id(),
                _link("service_id", "service"),
                _link("location_id", "location"),
                _link("phone_id", "phone"),
                Field("name"),
                Field("code", "language"),
                Field("note"),
            ),
            {"attributes": "attribute"},
        ),
        Table(
            "service_area",
            "service_areas.csv",
            (
                _id(),
                _link("service_id", "service"),
                _link("service_at_location_id", "service_at_location"),
                Field("name"),
                Field("description"),
                Field("extent"),
                Field("extent_type"),
                Field("uri"),
            ),
            {"attributes": "attribute"},
        ),
        Table(
            "cost_option",
            "cost_options.csv",
            (
                _id(),
                _link("service_id", "service", tabular_required=True),
                Field("valid_from", "date"),
                Field("valid_to", "date"),
                Field("option"),
                Field("currency", "currency"),
                Field("amount", "number", minimum=0, maximum=9_999_999_999.99),
                Field("amount_description"),
            ),
            {"attributes": "attribute"},
        ),
        Table(
            "taxonomy",
            "taxonomies.csv",
            (
                _id(),
                Field("name", required=True),
                Field("description", required=True),
                Field("uri"),
                Field("version"),
            ),
        ),
        Table(
            "taxonomy_term",
            "taxonomy_terms.csv",
            (
                _id(),
                Field("code"),
                Field("name", required=True),
                Field("description", required=True),
                _link("parent_id", "taxonomy_term", soft_ref=True),
                Field("taxonomy"),
                Field("language"),
                _link("taxonomy_id", "taxonomy"),
                Field("term_uri"),
            ),
        ),
        Table(
            "attribute",
            "attributes.csv",
            (
                _id(),
                Field("link_id", "uuid", tabular_required=True),
                _link("taxonomy_term_id", "taxonomy_term", tabular_required=True),
                Field("link_type"),
                Field("link_entity", tabular_required=True),
                Field("value"),
                Field("label"),
            ),
        ),
    )
}

# Tables in an order where every table comes after the tables it points at (for writing).
WRITE_ORDER = (
    "taxonomy",
    "taxonomy_term",
    "organization",
    "program",
    "service",
    "location",
    "service_at_location",
    "address",
    "contact",
    "phone",
    "schedule",
    "language",
    "service_area",
    "cost_option",
    "attribute",
)

# HSDS tables we have no table for: their rows are kept only as arrays inside the records
# that carry them (KEEPS_EXTRA); attributes that describe them, and their own CSV files in a
# data package, are reported and not stored.
NOT_STORED = frozenset(
    {
        "accessibility",
        "funding",
        "meta_table_description",
        "metadata",
        "organization_identifier",
        "required_document",
        "service_capacity",
        "unit",
        "url",
    }
)

# The one-to-one objects a nested record may embed, and the id field they fill in.
NESTED_ONE = {
    "service": {
        "organization": ("organization", "organization_id"),
        "program": ("program", "program_id"),
    },
    "service_at_location": {"location": ("location", "location_id")},
    "attribute": {"taxonomy_term": ("taxonomy_term", "taxonomy_term_id")},
    "taxonomy_term": {"taxonomy_detail": ("taxonomy", "taxonomy_id")},
}
