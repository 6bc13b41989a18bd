"""Screening pages as a browser gets them: start from the patient page, answer (HTMX saves),
finish, decide on the needs and refer, with the errors a clinician can run into."""

from __future__ import annotations

import re
import uuid
from html import unescape

from sqlalchemy import select

from referrals.db import db
from referrals.loop.models import Referral
from referrals.patients.instruments import AHC_HRSN
from referrals.patients.models import Consent, Need, Screening
from tests.helpers import WebClient, World, make_patient

FOOD_AND_HOUSING = {"q-71802-3": "LA31994-9", "q-88122-7": "LA28397-0", "q-88123-5": "LA6729-3"}


def text(response) -> str:
    return response.get_data(as_text=True)


def start(client: WebClient, patient, **form) -> str:
    fields = {"instrument": "ahc-hrsn", "respondent": f"guardian:{patient.guardians[0].id}"}
    fields.update(form)
    response = client.post(f"/patients/{patient.id}/screenings", fields)
    assert response.status_code == 302, text(response)
    return response.headers["Location"]


def finished(client: WebClient, patient) -> str:
    url = start(client, patient)
    client.post(f"{url}/answers", {**FOOD_AND_HOUSING, "rest": "negative"})
    response = client.post(f"{url}/complete", {})
    assert response.status_code == 302 and response.headers["Location"] == url
    return url


def needs(url: str) -> dict[str, uuid.UUID]:
    db.session.remove()
    screening_id = uuid.UUID(url.rsplit("/", 1)[1])
    rows = db.session().scalars(select(Need).where(Need.screening_id == screening_id))
    return {need.domain: need.id for need in rows}


def test_patient_page_offers_a_screening_with_the_lone_guardian_preselected(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    html = text(client.get(f"/patients/{patient.id}"))
    assert "Start screening" in html and "No screenings yet." in html
    guardian_value = f"guardian:{patient.guardians[0].id}"
    checked = re.findall(r'name="respondent" value="([^"]+)" checked', html)
    assert checked == [guardian_value]
    assert "Ana Lopez (mother)" in html
    assert 'value="patient"' not in html  # a 9-year-old does not answer for themselves
    assert 'value="other"' in html


def test_start_redirects_to_the_spanish_form(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = start(client, patient)
    screening_id = uuid.UUID(url.rsplit("/", 1)[1])
    assert url == f"/screenings/{screening_id}"
    assert db.session().get(Screening, screening_id).language == "es"

    html = text(client.get(url))
    assert "<html" in html
    for question in AHC_HRSN.questions:
        assert question.text.es in html
    assert "¿Cuál es su situación de vivienda hoy?" in html
    assert "What is your living situation today?" not in html
    assert "0 de 10 respondidas" in html

    english = text(client.get(f"{url}?lang=en"))
    assert "What is your living situation today?" in english
    assert "¿Cuál es su situación de vivienda hoy?" not in english


def test_start_refusal_goes_back_to_the_patient_page_with_the_message(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    response = client.post(
        f"/patients/{patient.id}/screenings", {"instrument": "ahc-hrsn", "respondent": "patient"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/patients/{patient.id}#screenings"
    html = text(client.get(f"/patients/{patient.id}"))
    assert "A child under 12 does not answer for themselves" in html
    assert db.session().scalar(select(Screening)) is None


def test_htmx_save_returns_the_progress(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = start(client, patient)
    response = client.post(f"{url}/answers", FOOD_AND_HOUSING, htmx=True)
    assert response.status_code == 200
    assert "3 de 10 respondidas" in text(response)
    screening = db.session().get(Screening, uuid.UUID(url.rsplit("/", 1)[1]))
    assert screening.answers == {k[2:]: [v] for k, v in FOOD_AND_HOUSING.items()}


def test_rest_negative_then_complete_shows_the_needs_with_codes_and_services(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = start(client, patient)
    response = client.post(f"{url}/answers", {**FOOD_AND_HOUSING, "rest": "negative"})
    assert response.status_code == 302 and response.headers["Location"] == url
    assert "10 de 10 respondidas" in text(client.get(url))

    response = client.post(f"{url}/complete", {})
    assert response.status_code == 302 and response.headers["Location"] == url
    html = text(client.get(url))
    assert "Screening finished: positive for housing instability, food insecurity." in html
    assert "Food insecurity" in html and "Housing instability" in html
    assert html.count("Unconfirmed") == 2
    for code in ("SNOMED CT 733423003", "ICD-10-CM Z59.41", "SNOMED CT 1156191002", "Z59.811"):
        assert code in html
    assert "Food boxes" in html and "Housing navigation" in html
    assert "Confidential counselling" not in html


def test_completing_again_is_a_conflict(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = finished(client, patient)
    response = client.post(f"{url}/complete", {})
    assert response.status_code == 409
    assert "submitted already" in text(response)
    response = client.post(f"{url}/answers", {"q-93030-5": "LA33-6"}, htmx=True)
    assert response.status_code == 409


def test_incomplete_finish_is_422_and_keeps_what_was_given(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = start(client, patient)
    response = client.post(f"{url}/complete", FOOD_AND_HOUSING)
    assert response.status_code == 422
    html = text(response)
    assert "7 questions still need an answer" in html
    assert html.count("Conteste esta pregunta o márquela como omitida.") == 7
    assert "3 de 10 respondidas" in html
    screening = db.session().get(Screening, uuid.UUID(url.rsplit("/", 1)[1]))
    assert screening.status == "in-progress" and len(screening.answers) == 3


def test_impossible_answer_is_422_with_the_message(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = start(client, patient)
    response = client.post(f"{url}/answers", {"q-88122-7": "LA33-6"}, htmx=True)
    assert response.status_code == 422
    assert "'LA33-6' is not an answer to question 88122-7" in unescape(text(response))
    assert db.session().get(Screening, uuid.UUID(url.rsplit("/", 1)[1])).answers == {}


def test_referring_from_the_needs_page(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = finished(client, patient)
    found = needs(url)
    guardian = f"guardian:{patient.guardians[0].id}"
    response = client.post(
        f"{url}/referrals",
        {
            f"need-{found['food-insecurity']}": "help-now",
            f"need-{found['housing-instability']}": "confirmed",
            f"service-{found['food-insecurity']}": str(world.service_ids["food"]),
            f"service-{found['housing-instability']}": str(world.service_ids["housing"]),
            "consent_by": guardian,
            "consent_method": "verbal",
            "sms_to": guardian,
            "consent_language": "es",
            "priority": "routine",
        },
    )
    assert response.status_code == 302, text(response)
    assert response.headers["Location"] == f"/patients/{patient.id}"
    html = text(client.get(response.headers["Location"]))
    assert "2 referrals sent: " in html
    assert "Community Food Bank" in html and "Housing Help" in html
    consents = html.split("Consents to share", 1)[1].split("<h2>Referrals</h2>", 1)
    assert "Community Food Bank" in consents[0] and "Housing Help" in consents[0]
    assert "Ana Lopez" in consents[0] and consents[0].count("Active") == 2
    assert "Food insecurity" in consents[1] and "Housing instability" in consents[1]
    assert "Food insecurity: confirmed, wants help now" in html
    assert "Housing instability: confirmed" in html
    assert len(db.session().scalars(select(Referral)).all()) == 2

    # The needs page now says where each need was referred.
    page = text(client.get(url))
    assert "Referred to" in page


def test_a_refused_referral_keeps_the_ticks_and_shows_the_error(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = finished(client, patient)
    found = needs(url)
    food_need = found["food-insecurity"]
    food_service = str(world.service_ids["food"])
    response = client.post(
        f"{url}/referrals",
        {
            f"need-{food_need}": "help-now",
            f"service-{food_need}": food_service,
            "consent_by": "",
            "sms_to": "none",
        },
    )
    assert response.status_code == 422
    html = text(response)
    assert "The referrals cannot be sent yet." in html
    assert "Community Food Bank is not a HIPAA-covered entity" in html
    assert re.search(rf'name="service-{food_need}" value="{food_service}" checked', html)
    assert re.search(rf'name="need-{food_need}" value="help-now" checked', html)
    housing_service = str(world.service_ids["housing"])
    assert not re.search(rf'value="{housing_service}" checked', html)
    db.session.remove()
    assert db.session().scalar(select(Referral)) is None
    assert db.session().scalar(select(Consent)) is None
    assert db.session().get(Need, food_need).verification == "unconfirmed"


def test_another_clinic_gets_404(world, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = finished(client, patient)
    other = WebClient(client.client.application.test_client())
    other.login(world, "other_clinician")
    assert other.get(url).status_code == 404
    assert other.post(f"{url}/referrals", {}).status_code == 404


def test_another_clinic_cannot_start_a_screening(world, client):
    patient = make_patient(world)
    client.login(world, "other_clinician")
    response = client.post(
        f"/patients/{patient.id}/screenings",
        {"instrument": "ahc-hrsn", "respondent": f"guardian:{patient.guardians[0].id}"},
    )
    assert response.status_code == 404
    assert db.session().scalar(select(Screening)) is None


def test_cbo_staff_get_403(world: World, client):
    patient = make_patient(world)
    client.login(world, "clinician")
    url = finished(client, patient)
    cbo = WebClient(client.client.application.test_client())
    cbo.login(world, "food")
    assert cbo.get(url).status_code == 403
    assert cbo.post(f"{url}/answers", {}).status_code == 403
    assert cbo.post(f"{url}/complete", {}).status_code == 403
    assert cbo.post(f"{url}/referrals", {}).status_code == 403
    assert cbo.post(f"/patients/{patient.id}/screenings", {}).status_code == 403
