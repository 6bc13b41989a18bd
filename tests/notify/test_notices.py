"""Family notices: sent by the worker from the outbox, once, to the right person, without PHI."""

from __future__ import annotations

import logging

from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.jobs import DONE, Job, run_due_jobs
from referrals.notify.models import Message
from referrals.notify.texts import notice_text
from tests.helpers import make_patient, move, send, years_ago


def messages() -> list[Message]:
    db.session.remove()
    return list(db.session().scalars(select(Message).order_by(Message.created_at)))


def test_each_status_change_sends_one_notice_to_a_minors_guardian_in_their_language(world):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    assert run_due_jobs() == {DONE: 2}

    sent = messages()
    assert [(m.status, m.recipient_kind, m.to_phone, m.language) for m in sent] == [
        ("sent", "guardian", "+15105550142", "es"),
        ("sent", "guardian", "+15105550142", "es"),
    ]
    # The first text to the number introduces us and says how to stop; the next one does not.
    assert sent[0].body == (
        "Referrals: mensajes sobre sus referencias. Responda STOP para no recibirlos, HELP para"
        " ayuda. Community Food Bank ha recibido una referencia para usted de parte de Sunrise"
        " Pediatrics. Se van a comunicar con usted."
    )
    assert (
        sent[1].body
        == "Community Food Bank ha aceptado su referencia y se va a comunicar con usted."
    )
    assert all(m.provider_id.startswith("console-") for m in sent)
    assert all("food" not in m.body.lower() or "Food Bank" in m.body for m in sent)


def test_running_the_worker_again_sends_nothing_twice(world):
    send(world, make_patient(world))
    run_due_jobs()
    job = db.session().scalar(select(Job))
    job.status = "queued"  # as if the worker crashed after sending, before finishing the job
    db.session().commit()
    run_due_jobs()
    assert len(messages()) == 1


def test_confidential_referral_notices_reach_only_the_teen_and_name_nothing(world):
    teen = make_patient(world, birth_date=years_ago(15), phone="+15105550177", language="en")
    referral = send(
        world,
        teen,
        "youth",
        sensitive="y",
        category="stress",
        consent_given_by="patient",
        consent_given_by_name="Maya Lopez",
    )
    move(world, "youth", referral, "accept")
    run_due_jobs()
    sent = messages()
    assert len(sent) == 2
    assert {(m.recipient_kind, m.to_phone) for m in sent} == {("patient", "+15105550177")}
    for m in sent:
        assert "Youth Counselling" not in m.body and "Sunrise" not in m.body
        assert "counsel" not in m.body.lower() and "Food" not in m.body
    assert [m.body for m in sent] == [
        "Referrals: texts about your referrals. Reply STOP to opt out, HELP for help."
        " You have an update from your care team. Please call them.",
        "You have an update from your care team. Please call them.",
    ]


def test_no_notice_when_contacting_the_family_is_prohibited(world):
    send(world, make_patient(world), contact_prohibited="y")
    run_due_jobs()
    [message] = messages()
    assert message.status == "skipped" and message.to_phone is None
    assert "must not be contacted" in message.skip_reason


def test_phone_numbers_never_reach_the_logs(world, caplog):
    caplog.set_level(logging.DEBUG)
    send(world, make_patient(world))
    run_due_jobs()
    assert "5105550142" not in caplog.text
    assert "+1••••••••42" in caplog.text


def test_sending_is_audited_without_the_text(world):
    send(world, make_patient(world))
    run_due_jobs()
    entry = db.session().scalar(select(AuditEvent).where(AuditEvent.action == "sms.sent"))
    assert entry.actor_name == "notice sender" and entry.detail["recipient"] == "guardian"
    assert "body" not in entry.detail


def test_a_notice_records_the_language_it_was_actually_written_in(world):
    # No Russian wording yet: the notice goes in English, and the row says so.
    patient = make_patient(world, language="ru", guardian_language="ru")
    send(world, patient)
    run_due_jobs()
    [message] = messages()
    assert message.language == "en"
    assert message.body.startswith("Referrals: texts about your referrals.")
    assert message.body.endswith(
        "Community Food Bank has received a referral for you from Sunrise Pediatrics."
        " They will contact you."
    )


def test_a_notice_in_a_translated_language_records_that_language(world):
    patient = make_patient(world, language="vi", guardian_language="vi")
    send(world, patient)
    run_due_jobs()
    [message] = messages()
    assert message.language == "vi"
    assert message.body == notice_text(
        "requested",
        "vi",
        org="Community Food Bank",
        clinic="Sunrise Pediatrics",
        sensitive=False,
        sender="Referrals",
        first=True,
    )
    assert "has received" not in message.body and "STOP" in message.body


def test_a_referral_to_a_service_the_directory_flags_sensitive_never_texts_the_guardian(world):
    from referrals.directory.service import add_service
    from referrals.loop.models import Referral
    from tests.helpers import SYSTEM

    shelter = add_service(
        SYSTEM,
        world.orgs["youth"],
        name="Family safety program",
        categories=["intimate-partner-violence"],
        sensitive=True,
    )
    child = make_patient(world)  # a 9-year-old: the mother consents, as usual
    form_service = {"service_id": str(shelter.id), "consent_given_by_name": "Ana Lopez"}
    from referrals.loop.service import send_referral
    from tests.helpers import referral_form

    form = referral_form(world, **form_service)
    referral = send_referral(world.actor("clinician"), child.id, form)
    db.session.remove()
    assert db.session().get(Referral, referral.id).sensitive is True
    run_due_jobs()
    [message] = messages()
    assert message.status == "skipped" and message.to_phone is None
