"""Test data built through the services, and a test client that signs in and posts forms the
way a browser does (CSRF token included)."""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import event, select
from werkzeug.test import TestResponse

from referrals.auth.actor import Actor
from referrals.auth.models import Membership, Organization, User
from referrals.auth.service import actor_for, create_user
from referrals.db import db
from referrals.directory.models import Service
from referrals.directory.service import add_service, register_organization
from referrals.loop.models import Referral
from referrals.loop.service import change_referral, send_referral
from referrals.patients.models import Patient
from referrals.patients.service import register_patient
from referrals.terminology import california_today

PASSWORD = "correct horse battery"
SYSTEM = Actor.system("tests")


@dataclass
class World:
    orgs: dict[str, Organization] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    # Ids survive what can happen to the objects above (detached, expired) across requests.
    service_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)

    def actor(self, who: str) -> Actor:
        session = db.session()
        user = session.scalar(select(User).where(User.email == self.emails[who]))
        membership = session.scalar(select(Membership).where(Membership.user_id == user.id))
        return actor_for(user, membership, "127.0.0.1")


# who: (organisation key, role)
PEOPLE = {
    "clinician": ("clinic", "clinician"),
    "clinician2": ("clinic", "clinician"),
    "other_clinician": ("clinic2", "clinician"),
    "food": ("food", "cbo_staff"),
    "food_admin": ("food", "org_admin"),
    "housing": ("housing", "cbo_staff"),
    "school": ("school", "school_staff"),
    "youth": ("youth", "cbo_staff"),
    "admin": ("network", "network_admin"),
}

ORGS = {
    "clinic": ("Sunrise Pediatrics", "clinic", True),
    "clinic2": ("Harbor Family Clinic", "clinic", True),
    "food": ("Community Food Bank", "cbo", False),
    "housing": ("Housing Help", "cbo", False),
    "school": ("Valley School Family Center", "school", False),
    "youth": ("Youth Counselling Services", "cbo", True),
    "network": ("Referral Network", "network", False),
}


def build_world() -> World:
    world = World()
    for key, (name, kind, covered) in ORGS.items():
        world.orgs[key] = register_organization(SYSTEM, name=name, kind=kind, hipaa_covered=covered)
    for who, (org, role) in PEOPLE.items():
        email = f"{who}@test.example"
        create_user(
            SYSTEM,
            email=email,
            name=who.replace("_", " ").title(),
            password=PASSWORD,
            org_name=world.orgs[org].name,
            role=role,
        )
        world.emails[who] = email
    world.services["food"] = add_service(
        SYSTEM,
        world.orgs["food"],
        name="Food boxes",
        categories=["food-insecurity"],
        service_code="710925007",
        service_display="Provision of food",
        procedure_codes=[{"code": "710925007", "display": "Provision of food"}],
        languages=["en", "es"],
    )
    world.services["housing"] = add_service(
        SYSTEM,
        world.orgs["housing"],
        name="Housing navigation",
        categories=["housing-instability", "homelessness"],
        service_code="710911006",
        service_display="Referral to housing service",
        procedure_codes=[{"code": "710911006", "display": "Referral to housing service"}],
        languages=["en"],
    )
    world.services["school"] = add_service(
        SYSTEM,
        world.orgs["school"],
        name="Family resource center",
        categories=["food-insecurity", "utility-insecurity"],
        service_code="410606002",
        service_display="Social service procedure",
        procedure_codes=[{"code": "410606002", "display": "Social service procedure"}],
        languages=["en", "es"],
        minimum_age=4,
        maximum_age=18,
    )
    world.services["youth"] = add_service(
        SYSTEM,
        world.orgs["youth"],
        name="Confidential counselling",
        categories=["stress", "intimate-partner-violence"],
        service_code="409063005",
        service_display="Counseling",
        procedure_codes=[{"code": "409063005", "display": "Counseling"}],
        languages=["en"],
        minimum_age=12,
        maximum_age=24,
    )
    world.service_ids = {key: service.id for key, service in world.services.items()}
    return world


def years_ago(years: int) -> str:
    today = california_today()
    return (today.replace(year=today.year - years) - timedelta(days=10)).isoformat()


def make_patient(world: World, who: str = "clinician", **fields: object) -> Patient:
    form = {
        "given_name": "Maya",
        "family_name": "Lopez",
        "birth_date": years_ago(9),
        "language": "es",
        "guardian_name": "Ana Lopez",
        "guardian_relationship": "mother",
        "guardian_phone": "+15105550142",
        "guardian_language": "es",
    }
    form.update({k: str(v) for k, v in fields.items() if v is not None})
    for key in [k for k, v in fields.items() if v is None]:
        form.pop(key, None)
    return register_patient(world.actor(who), form)


def referral_form(world: World, service: str = "food", **fields: object) -> dict[str, str]:
    form = {
        "service_id": str(world.services[service].id),
        "note": "Family ran out of food twice this month.",
        "consent_given_by": "guardian",
        "consent_given_by_name": "Ana Lopez",
        "consent_method": "verbal",
        "consent_date": california_today().isoformat(),
    }
    form.update({k: str(v) for k, v in fields.items()})
    return form


def send(
    world: World, patient: Patient, service: str = "food", who: str = "clinician", **fields: object
) -> Referral:
    return send_referral(world.actor(who), patient.id, referral_form(world, service, **fields))


def move(world: World, who: str, referral: Referral | uuid.UUID, action: str, **fields: object):
    referral_id = referral if isinstance(referral, uuid.UUID) else referral.id
    current = db.session().get(Referral, referral_id)
    db.session().refresh(current.task)
    form = {"action": action, "version": str(current.task.version)}
    form.update({k: str(v) for k, v in fields.items()})
    db.session.remove()
    return change_referral(world.actor(who), referral_id, form)


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class WebClient:
    """A signed-in browser, more or less: it keeps the cookie and the CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token: str | None = None

    def _remember_token(self, response: TestResponse) -> TestResponse:
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self.token = match.group(1)
        return response

    def get(self, url: str, *, htmx: bool = False, target: str | None = None, **kw) -> TestResponse:
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
            if target:
                headers["HX-Target"] = target
        return self._remember_token(self._fresh(self.client.get, url, headers=headers, **kw))

    def post(
        self, url: str, data: dict | None = None, *, htmx: bool = False, csrf: bool = True, **kw
    ) -> TestResponse:
        data = dict(data or {})
        if csrf:
            if self.token is None:
                self.get("/login")
            data.setdefault("csrf_token", self.token)
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self._remember_token(
            self._fresh(self.client.post, url, data=data, headers=headers, **kw)
        )

    @staticmethod
    def _fresh(call, *args, **kw) -> TestResponse:
        # Outside the test's own app context, so that each request gets its own `g`, as it
        # does in a server.
        return contextvars.Context().run(call, *args, **kw)

    def login(self, world: World, who: str) -> TestResponse:
        self.get("/login")
        response = self.post("/login", {"email": world.emails[who], "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)
        self.get(response.headers["Location"])  # a page with the signed-in session's token
        return response


def statements_run(work: Callable[[], object]) -> int:
    """How many SQL statements `work()` sends to the database."""
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        work()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(statements)
