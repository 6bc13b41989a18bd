"""Reading the directory: services by need, language and age."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.models import Organization
from referrals.auth.roles import OrgKind
from referrals.db import transaction
from referrals.directory.models import Service
from referrals.errors import InvalidInput
from referrals.terminology import SDOH_CATEGORIES


def find_services(
    category: str | None = None, language: str | None = None, age: int | None = None
) -> list[Service]:
    """Active services, optionally for one need, one language and one age, by name."""
    with transaction() as session:
        services = list(
            session.scalars(select(Service).where(Service.active).order_by(Service.name))
        )
    # Categories and languages are JSON lists: filtered here, the directory is small.
    # (A later change moves this to indexed columns for the HSDS-sized directory.)
    return [
        s
        for s in services
        if (not category or category in s.categories)
        and (not language or language in s.languages)
        and (age is None or s.serves_age(age))
    ]


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


def add_service(actor: Actor, organization: Organization, **fields: object) -> Service:
    """Add a service an organisation offers to the directory."""
    unknown = [c for c in fields.get("categories", []) if c not in SDOH_CATEGORIES]  # type: ignore[union-attr]
    if unknown or not fields.get("categories"):
        raise InvalidInput("Unknown need.", {"categories": [f"Not SDOH categories: {unknown}"]})
    with transaction() as session:
        service = Service(id=uuid.uuid4(), organization_id=organization.id, **fields)
        session.add(service)
        session.flush()
        audit.record(session, actor, "service.create", "Service", service.id)
    return service
