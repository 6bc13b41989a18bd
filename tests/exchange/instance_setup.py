"""Set up one instance of the two-instance test in its own process (its own database):
`python -m tests.exchange.instance_setup a|b <json>` prints what the other side needs."""

from __future__ import annotations

import json
import sys

from referrals import create_app
from referrals.auth.actor import Actor
from referrals.auth.service import create_user
from referrals.directory.service import add_service, register_organization
from referrals.migrate import upgrade

SYSTEM = Actor.system("two-instance test")
PASSWORD = "correct horse battery"
FOOD = {
    "categories": ["food-insecurity"],
    "service_code": "710925007",
    "service_display": "Provision of food",
    "procedure_codes": [{"code": "710925007", "display": "Provision of food"}],
    "languages": ["en", "es"],
}


def instance_b(_: dict) -> dict:
    """The CBO's own system: the CBO and its staff, and the clinic it takes referrals from."""
    cbo = register_organization(
        SYSTEM, name="Bay Community Pantry", kind="cbo", hipaa_covered=False
    )
    add_service(SYSTEM, cbo, name="Pantry boxes", **FOOD)
    clinic = register_organization(
        SYSTEM, name="Sunrise Pediatrics", kind="clinic", hipaa_covered=True
    )
    create_user(
        SYSTEM,
        email="staff@pantry.example",
        name="Pat Pantry",
        password=PASSWORD,
        org_name=cbo.name,
        role="cbo_staff",
    )
    return {"cbo_id": str(cbo.id), "clinic_id": str(clinic.id)}


def register_a(given: dict) -> dict:
    """B registers A's system as a client acting for the clinic."""
    from referrals.fhir.oauth import register_client

    client = register_client(
        SYSTEM,
        name="Sunrise referral platform",
        org_name="Sunrise Pediatrics",
        jwks=given["jwks"],
        scopes="system/*.read system/*.write",
    )
    return {"client_id": client.client_id}


def instance_a(given: dict) -> dict:
    """The clinic's side: the clinic, a clinician, and the pantry in its directory, working on
    instance B."""
    from referrals.exchange.client import public_jwks

    clinic = register_organization(
        SYSTEM, name="Sunrise Pediatrics", kind="clinic", hipaa_covered=True
    )
    cbo = register_organization(
        SYSTEM, name="Bay Community Pantry", kind="cbo", hipaa_covered=False
    )
    service = add_service(SYSTEM, cbo, name="Pantry boxes", **FOOD)
    create_user(
        SYSTEM,
        email="doctor@sunrise.example",
        name="Dr. Rivera",
        password=PASSWORD,
        org_name=clinic.name,
        role="clinician",
    )
    return {"service_id": str(service.id), "jwks": public_jwks()}


def add_peer_a(given: dict) -> dict:
    from referrals.exchange.service import add_peer

    peer = add_peer(
        SYSTEM,
        name="Bay Community Pantry's system",
        base_url=given["b_url"],
        client_id=given["client_id"],
        push=True,
        poll=given.get("mode", "poll") == "poll",
        organizations={"Bay Community Pantry": given["cbo_id"]},
    )
    return {"peer_id": str(peer.id)}


STEPS = {"b": instance_b, "register-a": register_a, "a": instance_a, "peer-a": add_peer_a}

if __name__ == "__main__":
    step, given = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    app = create_app()
    with app.app_context():
        if step in {"a", "b"}:
            upgrade(app.config["SETTINGS"].database_url)
        print(json.dumps(STEPS[step](given)))
