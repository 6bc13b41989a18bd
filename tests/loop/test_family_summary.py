"""The printed summary the family takes home."""

from __future__ import annotations

from referrals.directory.service import add_service
from tests.helpers import SYSTEM, make_patient, move, send, years_ago


def text(response) -> str:
    return response.get_data(as_text=True)


def test_the_summary_lists_open_referrals_in_the_readers_language(world, client):
    patient = make_patient(world)  # a 9-year-old; her mother reads Spanish
    send(world, patient, note="Private clinical note")
    declined = send(world, patient, "housing", consent_given_by_name="Ana Lopez")
    move(world, "housing", declined, "decline", reason="at-capacity")
    client.login(world, "clinician")
    html = text(client.get(f"/patients/{patient.id}/summary"))
    assert "Sus referencias" in html and 'lang="es"' in html
    assert "Community Food Bank" in html and "se comunicará con usted" in html
    assert "Housing Help" not in html  # closed referrals are not printed
    assert "Private clinical note" not in html and "Food insecurity" not in html


def test_confidential_referrals_are_never_printed(world, client):
    teen = make_patient(
        world, birth_date=years_ago(15), phone="+15105550177", language="en", guardian_language="en"
    )
    send(
        world,
        teen,
        "youth",
        sensitive="y",
        category="stress",
        consent_given_by="patient",
        consent_given_by_name="Maya Lopez",
    )
    client.login(world, "clinician")
    html = text(client.get(f"/patients/{teen.id}/summary"))
    assert "Youth Counselling" not in html and "No open referrals to print." in html


def test_the_summary_shows_phone_address_and_hours(world, client):
    service = add_service(
        SYSTEM,
        world.orgs["food"],
        name="Weekend pantry",
        categories=["food-insecurity"],
        phone="+15105550111",
        address={"address_1": "1 Main St", "city": "Oakland", "postal_code": "94601"},
    )
    from referrals.db import transaction
    from referrals.directory.models import Schedule, Service

    with transaction() as session:
        session.get(Service, service.id).schedules = [
            Schedule(freq="WEEKLY", byday="SA", opens_at="09:00", closes_at="12:00")
        ]
    patient = make_patient(world, language="en", guardian_language="en")
    from referrals.loop.service import send_referral
    from tests.helpers import referral_form

    form = referral_form(world)
    form["service_id"] = str(service.id)
    send_referral(world.actor("clinician"), patient.id, form)
    client.login(world, "clinician")
    html = text(client.get(f"/patients/{patient.id}/summary"))
    assert "(510) 555-0111" in html and "1 Main St, Oakland 94601" in html
    assert "Sat 9:00 AM–12:00 PM" in html and "Mon Closed" in html


def test_only_the_referring_clinic_prints_it(world, client):
    patient = make_patient(world)
    client.login(world, "other_clinician")
    assert client.get(f"/patients/{patient.id}/summary").status_code == 404
