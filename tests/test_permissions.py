"""Every route × every role: who gets the page, who is refused, who is told it does not exist.
A new route fails this test until it is added to the matrix."""

from __future__ import annotations

import re
import uuid

import pytest

from referrals.patients.screening import start_screening
from tests.helpers import WebClient, make_patient, referral_form, send

ROLES = ["anonymous", "clinician", "other_clinician", "food", "food_admin", "school", "admin"]

# route -> expected status per role (anonymous is always sent to sign in: 302 or 401)
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/"): dict(
        clinician=302, other_clinician=302, food=302, food_admin=302, school=302, admin=302
    ),
    ("GET", "/login"): dict(
        anonymous=200,
        clinician=302,
        other_clinician=302,
        food=302,
        food_admin=302,
        school=302,
        admin=302,
    ),
    ("POST", "/login"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("POST", "/patients/new"): dict(
        clinician=422, other_clinician=422, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/logout"): dict(
        clinician=302, other_clinician=302, food=302, food_admin=302, school=302, admin=302
    ),
    ("POST", "/organisation"): dict(
        clinician=302, other_clinician=302, food=302, food_admin=302, school=302, admin=302
    ),
    ("GET", "/patients"): dict(
        clinician=200, other_clinician=200, food=403, food_admin=403, school=403, admin=403
    ),
    ("GET", "/patients/new"): dict(
        clinician=200, other_clinician=200, food=403, food_admin=403, school=403, admin=403
    ),
    ("GET", "/patients/{patient}"): dict(
        clinician=200, other_clinician=404, food=404, food_admin=404, school=404, admin=404
    ),
    ("GET", "/patients/{patient}/referrals/new"): dict(
        clinician=200, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/patients/{patient}/referrals"): dict(
        clinician=302, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("GET", "/patients/{patient}/summary"): dict(
        clinician=200, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/patients/{patient}/consents/{consent}/revoke"): dict(
        clinician=404, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/patients/{patient}/screenings"): dict(
        clinician=302, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("GET", "/screenings/{screening}"): dict(
        clinician=200, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/screenings/{screening}/answers"): dict(
        clinician=302, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/screenings/{screening}/complete"): dict(
        clinician=422, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("POST", "/screenings/{screening}/referrals"): dict(
        clinician=422, other_clinician=404, food=403, food_admin=403, school=403, admin=403
    ),
    ("GET", "/referrals"): dict(
        clinician=200, other_clinician=200, food=403, food_admin=403, school=403, admin=403
    ),
    ("GET", "/referrals/{referral}"): dict(
        clinician=200, other_clinician=404, food=200, food_admin=200, school=404, admin=404
    ),
    ("POST", "/referrals/{referral}/status"): dict(
        clinician=302, other_clinician=404, food=302, food_admin=302, school=404, admin=404
    ),
    ("GET", "/directory"): dict(
        clinician=200, other_clinician=200, food=200, food_admin=200, school=200, admin=200
    ),
    ("GET", "/inbox"): dict(
        clinician=403, other_clinician=403, food=200, food_admin=200, school=200, admin=403
    ),
    ("GET", "/admin/messages"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=200
    ),
    ("GET", "/admin/audit"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=200
    ),
    ("GET", "/admin/jobs"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=200
    ),
    ("POST", "/admin/jobs/{job}/retry"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    ("GET", "/admin/exchange"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=200
    ),
    ("POST", "/admin/exchange/pushes/{job}/retry"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    # Peers: an empty form is refused (422); a peer that does not exist is not found.
    ("POST", "/admin/exchange/peers"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=422
    ),
    ("GET", "/admin/exchange/peers/{peer}"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    ("POST", "/admin/exchange/peers/{peer}"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    ("POST", "/admin/exchange/peers/{peer}/subscribe"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    ("POST", "/admin/exchange/peers/{peer}/organizations/{organization}/remove"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    ("GET", "/listings"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=200, school=403, admin=403
    ),
    ("GET", "/listings/{service}/edit"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=200, school=403, admin=403
    ),
    ("POST", "/listings/{service}/edit"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=422, school=403, admin=403
    ),
    ("POST", "/listings/{service}/capacity"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=422, school=403, admin=403
    ),
    ("GET", "/admin/taxonomy-map"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=200
    ),
    ("POST", "/admin/taxonomy-map"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=422
    ),
    ("POST", "/admin/taxonomy-map/{row}/delete"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=404
    ),
    ("GET", "/listings/stale"): dict(
        clinician=403, other_clinician=403, food=403, food_admin=403, school=403, admin=200
    ),
    # Twilio's webhooks: no session, a signature (none here, so refused for everyone).
    ("POST", "/sms/status"): dict(
        anonymous=403,
        clinician=403,
        other_clinician=403,
        food=403,
        food_admin=403,
        school=403,
        admin=403,
    ),
    ("POST", "/sms/inbound"): dict(
        anonymous=403,
        clinician=403,
        other_clinician=403,
        food=403,
        food_admin=403,
        school=403,
        admin=403,
    ),
    # SMART Backend Services: no session; an empty form is invalid_request for everyone.
    ("POST", "/oauth/token"): dict(
        anonymous=400,
        clinician=400,
        other_clinician=400,
        food=400,
        food_admin=400,
        school=400,
        admin=400,
    ),
    ("GET", "/.well-known/smart-configuration"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/fhir/.well-known/smart-configuration"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    # A peer's notifications: its own secret, never a session (401 without it).
    ("POST", "/exchange/peers/{peer}/notifications"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    # The FHIR API: a bearer token, never a session.
    ("GET", "/fhir/metadata"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/fhir/{resource_type}/{resource}"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("GET", "/fhir/{resource_type}"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("PUT", "/fhir/Task/{task}"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("POST", "/fhir/Procedure"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("POST", "/fhir"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("POST", "/fhir/"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("POST", "/fhir/Subscription"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("GET", "/fhir/Subscription/{subscription}"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("DELETE", "/fhir/Subscription/{subscription}"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    ("GET", "/fhir/Subscription/{subscription}/$status"): dict(
        anonymous=401,
        clinician=401,
        other_clinician=401,
        food=401,
        food_admin=401,
        school=401,
        admin=401,
    ),
    # Health checks for machines: the same for everyone (no worker runs here: not ready).
    ("GET", "/healthz"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/readyz"): dict(
        anonymous=503,
        clinician=503,
        other_clinician=503,
        food=503,
        food_admin=503,
        school=503,
        admin=503,
    ),
    # The public HSDS API: the same for everyone, signed in or not (no taxonomy exists).
    ("GET", "/hsds/"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/services"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/services/{service}"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/organizations"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/organizations/{organization}"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/taxonomies"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/taxonomies/{taxonomy}"): dict(
        anonymous=404,
        clinician=404,
        other_clinician=404,
        food=404,
        food_admin=404,
        school=404,
        admin=404,
    ),
    ("GET", "/hsds/taxonomy_terms"): dict(
        anonymous=200,
        clinician=200,
        other_clinician=200,
        food=200,
        food_admin=200,
        school=200,
        admin=200,
    ),
    ("GET", "/hsds/taxonomy_terms/{term}"): dict(
        anonymous=404,
        clinician=404,
        other_clinician=404,
        food=404,
        food_admin=404,
        school=404,
        admin=404,
    ),
}


def test_the_matrix_covers_every_route(app):
    routes = {
        (
            method,
            # <uuid:patient_id> -> {patient}
            re.sub(r"<(?:\w+:)?(\w+?)(?:_id)?>", r"{\1}", rule.rule),
        )
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == set(MATRIX)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_it_may(world, app, role):
    patient = make_patient(world)
    referral = send(world, patient)
    screening = start_screening(
        world.actor("clinician"), patient.id, {"respondent": f"guardian:{patient.guardians[0].id}"}
    )
    client = WebClient(app.test_client())
    if role != "anonymous":
        client.login(world, role)
    else:
        client.get("/login")
    ids = {
        "patient": patient.id,
        "referral": referral.id,
        "screening": screening.id,
        "job": uuid.uuid4(),
        "row": uuid.uuid4(),
        "consent": uuid.uuid4(),
        "service": world.services["food"].id,
        "organization": world.orgs["food"].id,
        "taxonomy": uuid.uuid4(),
        "resource_type": "Task",
        "resource": referral.task.id,
        "task": referral.task.id,
        "subscription": uuid.uuid4(),
        "term": uuid.uuid4(),
        "peer": uuid.uuid4(),
    }
    forms = {
        "/patients/{patient}/referrals": referral_form(world),
        "/referrals/{referral}/status": {"action": "note", "version": "1", "note": "Called"},
    }
    seen = {}
    for (method, route), expected in MATRIX.items():
        url = route.format(**ids)
        if method == "GET":
            response = client.get(url)
        elif method == "PUT":
            response = client._fresh(client.client.put, url, json={})
        elif method == "DELETE":
            response = client._fresh(client.client.delete, url)
        else:
            response = client.post(url, forms.get(route, {}))
        want = expected.get(role, 302)
        seen[(method, route)] = (response.status_code, want)
        if role != "anonymous" and route == "/logout":
            client.login(world, role)
    wrong = {k: v for k, v in seen.items() if v[0] != v[1]}
    assert wrong == {}, f"(got, expected) for {role}"
