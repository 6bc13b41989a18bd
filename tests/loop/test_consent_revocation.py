"""Withdrawing consent: nothing more is shared, no more notices, the timeline says so."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from referrals.db import db
from referrals.errors import InvalidInput, NotFound
from referrals.jobs import run_due_jobs
from referrals.loop.service import open_referral, revoke_consent
from referrals.notify.models import Message
from referrals.patients.models import Consent
from tests.helpers import make_patient, move, send


def text(response) -> str:
    return response.get_data(as_text=True)


def test_withdrawing_consent_from_the_patient_page_stops_sharing_and_notices(world, client):
    patient = make_patient(world)
    referral = send(world, patient, note="Weekend food, please call after 5pm")
    run_due_jobs()
    consent_id = db.session().scalar(select(Consent.id))
    client.login(world, "clinician")
    page = text(client.get(f"/patients/{patient.id}"))
    assert "Consents to share" in page and "Community Food Bank" in page and "Active" in page
    response = client.post(
        f"/patients/{patient.id}/consents/{consent_id}/revoke",
        {"reason": "Mother asked us to stop"},
    )
    assert response.headers["Location"] == f"/patients/{patient.id}"
    page = text(client.get(response.headers["Location"]))
    assert "Consent to share with Community Food Bank is withdrawn" in page
    assert "Withdrawn" in page and "Mother asked us to stop" in page

    # The recipient sees the withdrawal and no more of the family's details.
    client.login(world, "food")
    html = text(client.get(f"/referrals/{referral.id}"))
    assert "The family withdrew its consent to share" in html
    assert "555-0142" not in html and "Weekend food" not in html
    # The timeline says so.
    events = [e.action for e in open_referral(world.actor("clinician"), referral.id).events]
    assert events == ["send", "consent-revoked"]

    # A later status change sends no text.
    move(world, "food", referral, "decline", reason="family-declined")
    run_due_jobs()
    messages = db.session().scalars(select(Message).order_by(Message.created_at)).all()
    assert [m.status for m in messages] == ["sent", "skipped"]
    assert messages[1].skip_reason == "The family withdrew its consent to share."


def test_consent_is_withdrawn_once_and_only_by_its_clinic(world):
    send(world, make_patient(world))
    consent_id = db.session().scalar(select(Consent.id))
    with pytest.raises(NotFound):
        revoke_consent(world.actor("other_clinician"), consent_id)
    revoke_consent(world.actor("clinician"), consent_id)
    with pytest.raises(InvalidInput):
        revoke_consent(world.actor("clinician2"), consent_id)
