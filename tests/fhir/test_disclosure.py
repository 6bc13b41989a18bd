"""Minimum necessary over the API: a recipient sees of the family what the referral page shows
it, no more."""

from __future__ import annotations

from referrals.db import db
from referrals.loop.service import revoke_consent
from referrals.patients.models import Consent
from tests.fhir.test_api import get, token
from tests.helpers import World, make_patient, send, years_ago


def patient_as(app, world: World, org: str, patient_id) -> dict:
    response = get(app, f"/fhir/Patient/{patient_id}", token(app, world, org))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_recipient_sees_phone_and_guardian_of_an_ordinary_referral(app, world) -> None:
    patient = make_patient(world)
    send(world, patient)
    seen = patient_as(app, world, "food", patient.id)
    assert seen["contact"][0]["name"]["text"] == "Ana Lopez"
    assert seen == patient_as(app, world, "clinic", patient.id)  # the clinic sees the same


def test_do_not_contact_hides_every_number(app, world) -> None:
    patient = make_patient(world, phone="+15105550177")
    send(world, patient, contact_prohibited="y")
    seen = patient_as(app, world, "food", patient.id)
    assert "telecom" not in seen and "contact" not in seen
    assert "telecom" in patient_as(app, world, "clinic", patient.id)


def test_a_confidential_referral_never_shows_the_guardian(app, world) -> None:
    teen = make_patient(world, birth_date=years_ago(15), phone="+15105550177")
    send(
        world,
        teen,
        "youth",
        sensitive="y",
        category="stress",
        consent_given_by="patient",
        consent_given_by_name="Maya Lopez",
    )
    seen = patient_as(app, world, "youth", teen.id)
    assert "contact" not in seen
    assert seen["telecom"][0]["value"] == "+15105550177"


def test_a_withdrawn_consent_hides_contact_and_note(app, world) -> None:
    patient = make_patient(world)
    referral = send(world, patient)
    consent_id = db.session().get(Consent, referral.consent_id).id
    revoke_consent(world.actor("clinician"), consent_id, "Family asked")
    seen = patient_as(app, world, "food", patient.id)
    assert "telecom" not in seen and "contact" not in seen
    request = get(app, f"/fhir/ServiceRequest/{referral.id}", token(app, world, "food")).get_json()
    assert "note" not in request
    mine = get(app, f"/fhir/ServiceRequest/{referral.id}", token(app, world, "clinic")).get_json()
    assert mine["note"][0]["text"] == "Family ran out of food twice this month."


def test_polling_with_include_applies_the_same_rule(app, world) -> None:
    patient = make_patient(world)
    referral = send(world, patient)
    revoke_consent(world.actor("clinician"), referral.consent_id, "")
    bundle = get(app, "/fhir/Task?_include=Task:focus", token(app, world, "food")).get_json()
    [request] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"
    ]
    assert "note" not in request
