"""Writing the directory by hand: organisations and the services they offer (imports go through
hsds/importer.py, edits by organisations through listing.py)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.models import Organization
from referrals.auth.roles import OrgKind
from referrals.db import transaction
from referrals.directory.models import (
    Address,
    Language,
    Location,
    Phone,
    Service,
    ServiceAtLocation,
)
from referrals.directory.search import refresh_search_rows
from referrals.errors import InvalidInput
from referrals.terminology import LANGUAGES, SDOH_CATEGORIES


def register_organization(
    actor: Actor, *, name: str, kind: str, hipaa_covered: bool, phone: str | None = None
) -> Organization:
    """Add an organisation to the network."""
    if kind not in {k.value for k in OrgKind}:
        raise InvalidInput("Unknown kind of organisation.", {"kind": [", ".join(OrgKind)]})
    with transaction() as session:
        if session.scalar(select(Organization).where(Organization.name == name)):
            raise InvalidInput("That organisation exists.", {"name": ["Already registered."]})
        org = Organization(
            id=uuid.uuid4(), name=name, kind=kind, hipaa_covered=hipaa_covered, phone=phone
        )
        session.add(org)
        session.flush()
        audit.record(session, actor, "organization.create", "Organization", org.id)
    return org


def add_service(
    actor: Actor,
    organization: Organization,
    *,
    languages: tuple[str, ...] | list[str] = (),
    address: dict | None = None,
    phone: str | None = None,
    **fields: object,
) -> Service:
    """Add a service an organisation offers to the directory, with the languages it is offered
    in, the address it is delivered at (an HSDS location) and its phone."""
    categories = fields.get("categories") or []
    unknown = [c for c in categories if c not in SDOH_CATEGORIES]  # type: ignore[union-attr]
    if unknown or not categories:
        raise InvalidInput("Unknown need.", {"categories": [f"Not SDOH categories: {unknown}"]})
    with transaction() as session:
        service = Service(id=uuid.uuid4(), organization_id=organization.id, **fields)
        service.languages = [Language(code=code, name=language_name(code)) for code in languages]
        service.language_codes = list(languages)
        if phone:
            service.phones = [Phone(number=phone, type="voice")]
        if address:
            location = Location(
                organization_id=organization.id,
                location_type="physical",
                addresses=[
                    Address(address_type="physical", country="US", state_province="CA", **address)
                ],
            )
            service.service_at_locations = [ServiceAtLocation(location=location)]
        session.add(service)
        session.flush()
        refresh_search_rows(session, service)
        audit.record(session, actor, "service.create", "Service", service.id)
    return service


def language_name(code: str) -> str:
    return LANGUAGES.get(code, (code, code))[0]
