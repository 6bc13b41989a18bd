"""A patient's ZIP code follows the directory's rule (referrals.directory.geo.check_zip): one
that does not exist is refused on the form and left out, with a warning, from a partner's
referral; one outside California is saved once the clinician confirms it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from referrals.db import db, utcnow
from referrals.errors import InvalidInput
from referrals.loop.intake import (
    ConsentPart,
    IncomingReferral,
    PatientPart,
    ReferralPart,
    receive_referral,
)
from referrals.patients.models import Patient
from referrals.patients.service import register_patient
from tests.fhir.test_transaction import answer_ids, entry, post, referral_bundle, token
from tests.patients.test_patient_pages import VALID, text


def patients() -> int:
    return db.session().scalar(select(func.count(Patient.id)))


def test_a_zip_code_that_does_not_exist_is_refused_on_the_form(world, client):
    client.login(world, "clinician")
    client.get("/patients/new")
    response = client.post("/patients/new", dict(VALID, zip_code="99999"))
    assert response.status_code == 422
    assert "ZIP code 99999 does not exist (or has no location on record)." in text(response)
    assert 'name="confirm_zip"' not in text(response)  # nothing to confirm about it
    assert patients() == 0


def test_a_zip_code_outside_california_is_saved_once_confirmed(world, client):
    client.login(world, "clinician")
    client.get("/patients/new")
    asked = client.post("/patients/new", dict(VALID, zip_code="10001"))
    html = text(asked)
    assert asked.status_code == 422
    assert "10001 is in New York, not California: confirm to save it there." in html
    assert 'id="confirm_zip" name="confirm_zip" value="10001"' in html
    assert 'value="Garcia"' in html  # what was typed stays
    assert patients() == 0

    confirmed = client.post("/patients/new", dict(VALID, zip_code="10001", confirm_zip="10001"))
    assert confirmed.status_code == 302
    assert db.session().scalar(select(Patient.zip_code)) == "10001"


def test_the_service_applies_the_rule_for_every_caller(world):
    clinician = world.actor("clinician")
    with pytest.raises(InvalidInput) as refused:
        register_patient(clinician, dict(VALID, zip_code="99999"))
    assert refused.value.fields == {
        "zip_code": ["ZIP code 99999 does not exist (or has no location on record)."]
    }
    with pytest.raises(InvalidInput) as asked:
        register_patient(clinician, dict(VALID, zip_code="89439"))
    assert asked.value.fields == {
        "confirm_zip": ["89439 is in Nevada, not California: confirm to save it there."]
    }
    # A ZIP+4 is the five-digit ZIP the directory searches from.
    assert register_patient(clinician, dict(VALID, zip_code="94601-2233")).zip_code == "94601"
    # Near the state line, on the California side: nothing to confirm.
    truckee = dict(VALID, zip_code="96161", given_name="Ines")
    assert register_patient(clinician, truckee).zip_code == "96161"


def test_the_zip_mistake_is_told_with_the_other_mistakes(world, client):
    client.login(world, "clinician")
    client.get("/patients/new")
    response = client.post("/patients/new", dict(VALID, given_name="", zip_code="99999"))
    assert "Missing data for required field." in text(response)
    assert "ZIP code 99999 does not exist" in text(response)


def partner_referral(world, zip_code: str) -> IncomingReferral:
    """A referral for a food box as a partner's system sends it, with this ZIP code."""
    return IncomingReferral(
        patient=PatientPart(form=partner_form(zip_code)),
        referral=ReferralPart(service_id=world.service_ids["food"], category=None),
        consent=ConsentPart(
            recipient_org_id=world.orgs["food"].id, given_at=utcnow(), method="verbal"
        ),
    )


def partner_form(zip_code: str) -> dict[str, object]:
    return {
        "given_name": "Lucia",
        "family_name": "Reyes",
        "birth_date": VALID["birth_date"],
        "zip_code": zip_code,
        "guardian_name": "Carmen Reyes",
        "guardian_phone": "+15105550177",
        "confirm_new": "y",
    }


@pytest.mark.parametrize("sent", ["99999", "ABCDE", "0000"])
def test_a_partners_unknown_zip_is_left_out_with_a_warning(world, sent):
    received = receive_referral(world.actor("clinician"), partner_referral(world, sent))
    assert received.patient.zip_code == ""
    [warning] = received.warnings["Patient"]
    assert warning.startswith("Patient.address.postalCode: ")
    assert warning.endswith("; it was not kept.")


def test_a_partners_zip_outside_california_is_its_own_record(world):
    received = receive_referral(world.actor("clinician"), partner_referral(world, "89439"))
    assert received.patient.zip_code == "89439" and received.warnings == {}


def test_a_fhir_referral_with_an_unknown_zip_lands_without_it(app, world):
    bundle = referral_bundle(world)
    entry(bundle, "Patient")["resource"]["address"] = [{"postalCode": "99999"}]
    response = post(app, bundle, token(app, world))
    assert response.status_code == 200, response.get_json()
    patient = db.session().get(Patient, uuid.UUID(answer_ids(response)["Patient"]))
    assert patient.zip_code == ""
    # The partner is told what was left out, on the Patient's entry of the answer.
    [patient_entry] = [
        e for e in response.get_json()["entry"] if e["response"]["location"].startswith("Patient/")
    ]
    [issue] = patient_entry["response"]["outcome"]["issue"]
    assert issue["severity"] == "warning"
    assert "99999" in issue["diagnostics"] and "not kept" in issue["diagnostics"]
