"""Organisations keep their own directory listings current: edit a service, set its capacity.
Stale listings (not updated for 180 days) are flagged to their admins, network admins and in
search results."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import func, or_, select

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import transaction, utcnow
from referrals.directory.geo import check_zip, lookup_zip
from referrals.directory.models import (
    CAPACITY_STATUSES,
    SERVICE_STATUSES,
    STALE_AFTER_DAYS,
    Address,
    Language,
    Location,
    Schedule,
    Service,
    ServiceAtLocation,
    max_length,
)
from referrals.directory.search import refresh_search_rows
from referrals.errors import Forbidden, InvalidInput, NotFound
from referrals.forms import FormSchema, Phone, load
from referrals.terminology import LANGUAGES, SDOH_CATEGORIES


def text_of(model: type, name: str, *, required: bool = False) -> validate.Length:
    """The length a form field may have: its column's limit (models.TEXT_LIMITS)."""
    limit = max_length(model, name)
    if required:
        return validate.Length(min=1, max=limit, error=f"Between 1 and {limit} characters.")
    return validate.Length(max=limit, error=f"At most {limit} characters.")


WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


def is_stale(service: Service, now: datetime | None = None) -> bool:
    """Neither the listing nor its capacity was touched for STALE_AFTER_DAYS."""
    now = now or utcnow()
    touched = max(service.last_modified, service.capacity_updated_at or service.last_modified)
    return now - touched > timedelta(days=STALE_AFTER_DAYS)


class ListingSchema(FormSchema):
    """An organisation admin's edit of a listing. `zip_on_record` is the listing's ZIP code as
    saved: keeping it needs no confirmation again."""

    def __init__(self, *, zip_on_record: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.zip_on_record = zip_on_record

    name = fields.String(required=True, validate=text_of(Service, "name", required=True))
    description = fields.String(load_default="", validate=text_of(Service, "description"))
    status = fields.String(load_default="active", validate=validate.OneOf(SERVICE_STATUSES))
    eligibility_description = fields.String(
        load_default=None, validate=text_of(Service, "eligibility_description")
    )
    application_process = fields.String(
        load_default=None, validate=text_of(Service, "application_process")
    )
    fees_description = fields.String(
        load_default=None, validate=text_of(Service, "fees_description")
    )
    minimum_age = fields.Integer(
        load_default=None, validate=validate.Range(0, 120, error="An age from 0 to 120.")
    )
    maximum_age = fields.Integer(
        load_default=None, validate=validate.Range(0, 120, error="An age from 0 to 120.")
    )
    categories = fields.List(
        fields.String(validate=validate.OneOf(list(SDOH_CATEGORIES))),
        required=True,
        validate=validate.Length(min=1, error="Pick at least one need the service addresses."),
        error_messages={"required": "Pick at least one need the service addresses."},
    )
    languages = fields.List(
        fields.String(validate=validate.OneOf(list(LANGUAGES))), load_default=list
    )
    accepts_electronic_referrals = fields.Boolean(load_default=False)
    free_of_charge = fields.Boolean(load_default=False)
    referral_contact_name = fields.String(
        load_default=None, validate=text_of(Service, "referral_contact_name")
    )
    referral_contact_phone = Phone(load_default=None)
    referral_contact_email = fields.Email(
        load_default=None,
        validate=text_of(Service, "referral_contact_email"),
        error_messages={"invalid": "A valid email address."},
    )
    # Where and when: the primary address and one weekly opening pattern.
    address_1 = fields.String(load_default=None, validate=text_of(Address, "address_1"))
    city = fields.String(load_default=None, validate=text_of(Address, "city"))
    postal_code = fields.String(load_default=None, validate=text_of(Address, "postal_code"))
    # The ZIP code the admin confirmed after being told it lies outside California.
    confirm_zip = fields.String(load_default="", validate=text_of(Address, "postal_code"))
    days = fields.List(fields.String(validate=validate.OneOf(WEEKDAYS)), load_default=list)
    opens_at = fields.String(
        load_default=None, validate=validate.Regexp(HHMM, error="A time like 09:00.")
    )
    closes_at = fields.String(
        load_default=None, validate=validate.Regexp(HHMM, error="A time like 17:30.")
    )

    @validates_schema(skip_on_field_errors=False)  # said together with the other mistakes
    def known_zip(self, data: dict, **_: object) -> None:
        """Unknown ZIP codes are refused; one outside California is confirmed first."""
        if data.get("postal_code"):
            found = check_zip(
                data["postal_code"], (data.get("confirm_zip", ""), self.zip_on_record)
            )
            if found.refusal:
                raise ValidationError(found.refusal, "postal_code")
            if found.question:
                raise ValidationError(found.question, "confirm_zip")

    @validates_schema
    def check(self, data: dict, **_: object) -> None:
        low, high = data.get("minimum_age"), data.get("maximum_age")
        if low is not None and high is not None and low > high:
            raise ValidationError("The maximum age is below the minimum age.", "maximum_age")
        place = [data.get(k) for k in ("address_1", "city", "postal_code")]
        if any(place) and not all(place):
            raise ValidationError("Give the street, city and ZIP code together.", "address_1")
        hours = [data.get("days"), data.get("opens_at"), data.get("closes_at")]
        if any(hours) and not all(hours):
            raise ValidationError(
                "Give the days, the opening and the closing time together.", "opens_at"
            )
        if data.get("opens_at") and data.get("opens_at") == data.get("closes_at"):
            raise ValidationError("Opening and closing times are the same.", "closes_at")


def _own_service(session, actor: Actor, service_id: uuid.UUID, action: str) -> Service:
    if not actor.can(Permission.MANAGE_LISTINGS):
        raise Forbidden("Only your organisation's administrators maintain its listings.")
    service = session.get(Service, service_id)
    if service is None or service.organization_id != actor.org_id:
        audit.deny(session, actor, action, "Service", service_id)
        raise NotFound("No such service among your organisation's listings.")
    return service


def own_listings(actor: Actor) -> list[Service]:
    """The services the actor's organisation lists, by name."""
    if not actor.can(Permission.MANAGE_LISTINGS):
        raise Forbidden("Only your organisation's administrators maintain its listings.")
    with transaction() as session:
        return list(
            session.scalars(
                select(Service)
                .where(Service.organization_id == actor.org_id)
                .order_by(Service.name)
            )
        )


def get_listing(actor: Actor, service_id: uuid.UUID) -> Service:
    with transaction() as session:
        return _own_service(session, actor, service_id, "service.view")


def update_listing(actor: Actor, service_id: uuid.UUID, form: Mapping[str, object]) -> Service:
    """Save an organisation's edit of one of its services."""
    raw = dict(form)
    for many in ("categories", "languages", "days"):
        value = form.getlist(many) if hasattr(form, "getlist") else form.get(many, [])
        raw[many] = list(value) if value else []
    if not raw["categories"]:
        raw.pop("categories")
    with transaction() as session:
        service = _own_service(session, actor, service_id, "service.update")
        address = service.primary_address
        data = load(ListingSchema(zip_on_record=address.postal_code if address else ""), raw)
        for key in (
            "name",
            "description",
            "status",
            "eligibility_description",
            "application_process",
            "fees_description",
            "minimum_age",
            "maximum_age",
            "categories",
            "accepts_electronic_referrals",
            "free_of_charge",
            "referral_contact_name",
            "referral_contact_phone",
            "referral_contact_email",
        ):
            setattr(service, key, data[key])
        wanted = list(dict.fromkeys(data["languages"]))
        kept = [lang for lang in service.languages if lang.code in wanted]
        known = {lang.code for lang in kept}
        service.languages = kept + [
            Language(code=code, name=LANGUAGES[code][0]) for code in wanted if code not in known
        ]
        service.language_codes = wanted
        _set_place(service, data)
        _set_hours(service, data)
        service.last_modified = utcnow()
        session.flush()
        refresh_search_rows(session, service)
        audit.record(session, actor, "service.update", "Service", service.id)
    return service


def _set_place(service: Service, data: dict) -> None:
    """The service's primary physical address, created or changed as the form says."""
    if not data.get("address_1"):
        return
    address = service.primary_address
    if address is None:
        location = Location(organization_id=service.organization_id, location_type="physical")
        address = Address(address_type="physical", country="US", state_province="CA")
        location.addresses.append(address)
        service.service_at_locations.append(ServiceAtLocation(location=location))
    place = lookup_zip(data["postal_code"])  # the schema took it: it exists
    address.address_1 = data["address_1"]
    address.city = data["city"]
    address.postal_code = place.code
    address.state_province = place.state  # outside California only when confirmed
    # The place moved: it is placed at its ZIP's centroid until a geocoder says better.
    for link in service.service_at_locations:
        if address in link.location.addresses:
            link.location.latitude = link.location.longitude = None


def _set_hours(service: Service, data: dict) -> None:
    """One weekly pattern in place of the service's own schedules (imports can carry more)."""
    if not data.get("days"):
        return
    days = [d for d in WEEKDAYS if d in data["days"]]
    service.schedules = [
        Schedule(
            freq="WEEKLY",
            byday=",".join(days),
            opens_at=data["opens_at"],
            closes_at=data["closes_at"],
        )
    ]


def weekly_pattern(service: Service) -> tuple[list[str], str, str]:
    """(days, opens, closes) of the service's first weekly schedule, for the edit form."""
    for schedule in service.schedules:
        if (schedule.freq or "WEEKLY") == "WEEKLY" and schedule.byday:
            days = [d.strip()[-2:] for d in schedule.byday.split(",")]
            return days, (schedule.opens_at or "")[:5], (schedule.closes_at or "")[:5]
    return [], "", ""


def set_capacity(actor: Actor, service_id: uuid.UUID, status: str, note: str = "") -> Service:
    """Say in one click whether a service takes referrals now (SDOHCC capacity codes)."""
    if status not in CAPACITY_STATUSES:
        raise InvalidInput(
            "Unknown capacity.",
            {"capacity_status": [f"One of: {', '.join(CAPACITY_STATUSES.values())}."]},
        )
    limit = max_length(Service, "capacity_note")
    if limit is not None and len(note) > limit:
        raise InvalidInput("Note too long.", {"capacity_note": [f"At most {limit} characters."]})
    with transaction() as session:
        service = _own_service(session, actor, service_id, "service.capacity")
        service.capacity_status = status
        service.capacity_note = note.strip() or None
        # HSDS: a service's last_modified covers its related data; feeds polling with
        # modified_after must see capacity changes.
        service.capacity_updated_at = service.last_modified = utcnow()
        session.flush()
        refresh_search_rows(session, service)
        audit.record(
            session, actor, "service.capacity", "Service", service.id, detail={"status": status}
        )
    return service


def stale_listings(actor: Actor, now: datetime | None = None) -> list[Service]:
    """Active services nobody has updated for STALE_AFTER_DAYS, oldest first (network admins)."""
    if not actor.can(Permission.VIEW_NETWORK):
        raise Forbidden("Only network administrators see the whole directory's upkeep.")
    cutoff = (now or utcnow()) - timedelta(days=STALE_AFTER_DAYS)
    with transaction() as session:
        touched = func.coalesce(Service.capacity_updated_at, Service.last_modified)
        return list(
            session.scalars(
                select(Service)
                .where(
                    Service.status == "active",
                    Service.last_modified < cutoff,
                    or_(Service.capacity_updated_at.is_(None), touched < cutoff),
                )
                .order_by(Service.last_modified)
                .limit(500)
            )
        )
