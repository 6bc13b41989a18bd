"""Registering and finding patients."""

from __future__ import annotations

from sqlalchemy import func, select

from referrals.db import db
from referrals.patients.models import Guardian, Patient
from tests.helpers import make_patient, years_ago

VALID = {
    "given_name": "Leo",
    "family_name": "Garcia",
    "birth_date": years_ago(7),
    "gender": "male",
    "language": "es",
    "zip_code": "94601",
    "guardian_name": "Rosa Garcia",
    "guardian_relationship": "mother",
    "guardian_phone": "(510) 555-0166",
}


def text(response) -> str:
    return response.get_data(as_text=True)


def test_registering_a_child_with_a_guardian(world, client):
    client.login(world, "clinician")
    client.get("/patients/new")
    response = client.post("/patients/new", VALID)
    patient = db.session().scalar(select(Patient))
    assert response.headers["Location"] == f"/patients/{patient.id}"
    guardian = db.session().scalar(select(Guardian))
    assert (guardian.name, guardian.phone, guardian.language) == (
        "Rosa Garcia",
        "+15105550166",
        "es",
    )
    html = text(client.get(f"/patients/{patient.id}"))
    assert "Leo Garcia was added." in html and "Rosa Garcia, (510) 555-0166" in html
    assert "New referral" in html


def test_bad_input_is_explained_field_by_field_and_nothing_is_saved(world, client):
    client.login(world, "clinician")
    client.get("/patients/new")
    bad = dict(
        VALID,
        given_name="",
        birth_date="2999-01-01",
        guardian_phone="555",
        zip_code="9460",
        language="xx",
    )
    response = client.post("/patients/new", bad)
    html = text(response)
    assert response.status_code == 422
    for message in (
        "Missing data for required field.",
        "The birth date is in the future.",
        "“555” is not a",
        "“9460” is not a ZIP code: use five digits, like 94110.",
        "Must be one of",
    ):
        assert message in html
    assert 'value="Garcia"' in html  # what was typed stays
    assert db.session().scalar(select(func.count(Patient.id))) == 0


def test_oversized_names_are_refused(world, client):
    client.login(world, "clinician")
    client.get("/patients/new")
    response = client.post("/patients/new", dict(VALID, family_name="x" * 101))
    assert response.status_code == 422 and "Between 1 and 100 characters." in text(response)


def test_search_as_you_type_returns_only_the_results(world, client):
    make_patient(world, given_name="Maya", family_name="Lopez", mrn="A-1")
    make_patient(world, given_name="Noah", family_name="Kim", mrn="B-2")
    make_patient(world, who="other_clinician", given_name="Maya", family_name="Lozano")
    client.login(world, "clinician")
    fragment = text(client.get("/patients?q=lo", htmx=True))
    assert fragment.lstrip().startswith('<div id="patient-results"')
    assert "Lopez, Maya" in fragment and "Kim" not in fragment
    assert "Lozano" not in fragment  # another clinic's patient
    assert "Kim, Noah" in text(client.get("/patients?q=b-2"))


def test_cbo_staff_cannot_browse_patients(world, client):
    patient = make_patient(world)
    client.login(world, "food")
    assert client.get("/patients").status_code == 403
    response = client.get(f"/patients/{patient.id}")
    assert response.status_code == 404 and "Maya" not in text(response)


def test_a_likely_duplicate_is_flagged_with_a_link_to_the_existing_record(world, client):
    existing = make_patient(
        world, given_name="Leo", family_name="Garcia", birth_date=VALID["birth_date"], mrn="SP-1"
    )
    client.login(world, "clinician")
    client.get("/patients/new")
    response = client.post("/patients/new", dict(VALID, given_name="leo"))
    html = text(response)
    assert response.status_code == 409
    assert "This patient may be registered already" in html
    assert f"/patients/{existing.id}" in html and "record SP-1" in html
    assert db.session().scalar(select(func.count(Patient.id))) == 1
    confirmed = client.post("/patients/new", dict(VALID, confirm_new="y"))
    assert confirmed.status_code == 302
    assert db.session().scalar(select(func.count(Patient.id))) == 2


def test_another_clinics_patient_is_not_a_duplicate(world, client):
    make_patient(
        world,
        who="other_clinician",
        given_name="Leo",
        family_name="Garcia",
        birth_date=VALID["birth_date"],
    )
    client.login(world, "clinician")
    client.get("/patients/new")
    assert client.post("/patients/new", VALID).status_code == 302
