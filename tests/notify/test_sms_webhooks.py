"""What Twilio tells us: delivery statuses (POST /sms/status) and families' replies
(POST /sms/inbound). Each request must carry X-Twilio-Signature computed over PUBLIC_BASE_URL
plus the path and the form; no session and no CSRF token."""

from __future__ import annotations

import contextvars
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from referrals.db import db
from referrals.directory.service import add_service
from referrals.jobs import DONE, Job, run_due_jobs
from referrals.loop.lifecycle import FAMILY_REPLIED, TEXT_NOT_DELIVERED
from referrals.loop.models import Referral, ReferralEvent
from referrals.loop.service import send_referral
from referrals.notify.models import InboundMessage, Message, SmsNumber
from tests.helpers import (
    SYSTEM,
    WebClient,
    World,
    make_patient,
    referral_form,
    send,
    years_ago,
)

PUBLIC = "https://referrals.example.org"
TOKEN = "0123456789abcdef0123456789abcdef"
GUARDIAN = "+15105550142"
TEEN = "+15105550177"
LANDLINE = (
    "Text to the parent or guardian not delivered:"
    " the number is a landline or cannot receive texts."
)
HELP_ES = (
    "Referrals: avisos de su equipo de salud sobre sus referencias. Si tiene preguntas, llame a"
    " su equipo de salud. Responda STOP para no recibir mensajes."
)


@pytest.fixture
def signed(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twilio's auth token and our public URL, as production sets them."""
    settings = app.config["SETTINGS"]
    monkeypatch.setattr(settings, "twilio_auth_token", TOKEN)
    monkeypatch.setattr(settings, "public_base_url", PUBLIC)


def signature(app: Flask, url: str, form: dict[str, str], token: str | None = None) -> str:
    token = token or app.config["SETTINGS"].twilio_auth_token
    return RequestValidator(token).compute_signature(url, form)


def post(
    app: Flask,
    path: str,
    form: dict[str, str],
    *,
    sign: str | None = "public",
    base_url: str = "http://localhost",
) -> TestResponse:
    """POST a form as Twilio does. `sign`: "public" (over PUBLIC_BASE_URL + path, the right
    way), a URL to sign over instead, a ready signature ("sig:..."), or None (no header)."""
    headers = {}
    if sign == "public":
        headers["X-Twilio-Signature"] = signature(app, PUBLIC + path, form)
    elif sign is not None and sign.startswith("sig:"):
        headers["X-Twilio-Signature"] = sign[4:]
    elif sign is not None:
        headers["X-Twilio-Signature"] = signature(app, sign, form)
    db.session.remove()
    client = app.test_client()
    response = contextvars.Context().run(
        client.post, path, data=form, headers=headers, base_url=base_url
    )
    db.session.remove()
    return response


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "1" * 32,
        "To": GUARDIAN,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def inbound_form(body: str, *, sid: str | None = None, sender: str = GUARDIAN) -> dict[str, str]:
    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "To": "+15105550100",
        "Body": body,
        "NumMedia": "0",
    }


def the_message() -> Message:
    db.session.remove()
    [message] = db.session().scalars(select(Message))
    return message


def snapshot(message_id: uuid.UUID) -> tuple:
    db.session.remove()
    m = db.session().get(Message, message_id)
    return (m.status, m.status_at, m.error_code, m.error, m.provider_id)


def events(referral_id: uuid.UUID, action: str | None = None) -> list[str]:
    db.session.remove()
    query = select(ReferralEvent).where(ReferralEvent.referral_id == referral_id)
    if action:
        query = query.where(ReferralEvent.action == action)
    return [e.note for e in db.session().scalars(query.order_by(ReferralEvent.at))]


def all_events() -> int:
    db.session.remove()
    return db.session().scalar(select(func.count()).select_from(ReferralEvent))


def sent_notice(world: World) -> tuple[Referral, Message]:
    """A referral whose first notice went out (console gateway), status "sent"."""
    referral = send(world, make_patient(world))
    assert run_due_jobs() == {DONE: 1}
    message = the_message()
    assert message.status == "sent" and message.provider_id
    return referral, message


def number(phone: str) -> SmsNumber | None:
    db.session.remove()
    return db.session().get(SmsNumber, phone)


def twiml_messages(response: TestResponse) -> list[str]:
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return [m.text or "" for m in root.iter("Message")]


# --- /sms/status ----------------------------------------------------------------------------


def test_a_signed_delivered_callback_marks_the_message_delivered(world, app, signed):
    _, message = sent_notice(world)
    response = post(app, "/sms/status", status_form(message.provider_id, "delivered"))
    assert response.status_code == 204
    assert response.get_data() == b""
    status, status_at, error_code, _, _ = snapshot(message.id)
    assert (status, error_code) == ("delivered", None)
    assert status_at is not None


def test_a_late_sent_after_delivered_changes_nothing(world, app, signed):
    _, message = sent_notice(world)
    assert (
        post(app, "/sms/status", status_form(message.provider_id, "delivered")).status_code == 204
    )
    before = snapshot(message.id)
    for late in ("sent", "sending", "queued"):
        response = post(app, "/sms/status", status_form(message.provider_id, late))
        assert response.status_code == 204
    assert snapshot(message.id) == before
    assert before[0] == "delivered"


def test_the_same_callback_twice_is_idempotent(world, app, signed):
    _, message = sent_notice(world)
    form = status_form(message.provider_id, "delivered")
    assert post(app, "/sms/status", form).status_code == 204
    first = snapshot(message.id)
    count = all_events()
    assert post(app, "/sms/status", form).status_code == 204
    assert snapshot(message.id) == first
    assert all_events() == count


def test_undelivered_to_a_landline_records_the_code_and_tells_staff_once(world, app, signed):
    referral, message = sent_notice(world)
    form = status_form(message.provider_id, "undelivered", ErrorCode="30006")
    assert post(app, "/sms/status", form).status_code == 204
    status, _, error_code, _, _ = snapshot(message.id)
    assert (status, error_code) == ("undelivered", "30006")
    assert events(referral.id, TEXT_NOT_DELIVERED) == [LANDLINE]

    assert post(app, "/sms/status", form).status_code == 204  # Twilio retried
    assert events(referral.id, TEXT_NOT_DELIVERED) == [LANDLINE]
    # A failed after undelivered is no news either.
    failed = status_form(message.provider_id, "failed", ErrorCode="30008")
    assert post(app, "/sms/status", failed).status_code == 204
    assert snapshot(message.id)[:3:2] == ("undelivered", "30006")
    assert events(referral.id, TEXT_NOT_DELIVERED) == [LANDLINE]


def test_the_timeline_note_for_an_undelivered_text_shows_on_the_referral(world, app, signed):
    referral, message = sent_notice(world)
    form = status_form(message.provider_id, "undelivered", ErrorCode="30006")
    post(app, "/sms/status", form)
    page = WebClient(app.test_client())
    page.login(world, "clinician")
    html = page.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Text to the family not delivered" in html
    assert "the number is a landline or cannot receive texts" in html


def test_an_unknown_message_sid_is_answered_and_changes_nothing(world, app, signed):
    _, message = sent_notice(world)
    before, count = snapshot(message.id), all_events()
    form = status_form("SM" + "f" * 32, "undelivered", ErrorCode="30006")
    response = post(app, "/sms/status", form)
    assert response.status_code == 204
    assert snapshot(message.id) == before
    assert all_events() == count


@pytest.mark.parametrize(
    "sign",
    [
        pytest.param("sig:" + "A" * 27 + "=", id="forged"),
        pytest.param(None, id="missing"),
        pytest.param("http://localhost/sms/status", id="over-request-url"),
        pytest.param(PUBLIC + "/sms/inbound", id="over-another-path"),
        pytest.param("https://evil.example/sms/status", id="over-another-host"),
    ],
)
def test_a_status_callback_without_a_good_signature_is_refused(world, app, signed, sign):
    _, message = sent_notice(world)
    before, count = snapshot(message.id), all_events()
    form = status_form(message.provider_id, "undelivered", ErrorCode="30006")
    assert post(app, "/sms/status", form, sign=sign).status_code == 403
    assert snapshot(message.id) == before
    assert all_events() == count


def test_behind_a_proxy_the_internal_url_signature_is_refused(world, app, signed):
    """Twilio signs the public URL; a signature over the URL the app sees behind a proxy
    (another host and port) proves nothing."""
    _, message = sent_notice(world)
    before = snapshot(message.id)
    inside = "http://10.0.0.7:8000"
    form = status_form(message.provider_id, "delivered")
    response = post(app, "/sms/status", form, sign=inside + "/sms/status", base_url=inside)
    assert response.status_code == 403
    assert snapshot(message.id) == before
    # The same request signed over the public URL passes, whatever host it came to.
    assert post(app, "/sms/status", form, base_url=inside).status_code == 204
    assert snapshot(message.id)[0] == "delivered"


def test_a_signature_over_the_public_url_passes_on_localhost(world, app, signed):
    _, message = sent_notice(world)
    form = status_form(message.provider_id, "delivered")
    response = post(app, "/sms/status", form, base_url="http://localhost")
    assert response.status_code == 204
    assert snapshot(message.id)[0] == "delivered"


def test_a_signature_made_with_another_token_is_refused(world, app, signed):
    _, message = sent_notice(world)
    form = status_form(message.provider_id, "delivered")
    forged = signature(app, PUBLIC + "/sms/status", form, token="f" * 32)
    assert post(app, "/sms/status", form, sign="sig:" + forged).status_code == 403
    assert snapshot(message.id)[0] == "sent"


def test_a_changed_form_breaks_the_signature(world, app, signed):
    _, message = sent_notice(world)
    form = status_form(message.provider_id, "delivered")
    good = signature(app, PUBLIC + "/sms/status", form)
    tampered = {**form, "MessageStatus": "undelivered", "ErrorCode": "30006"}
    assert post(app, "/sms/status", tampered, sign="sig:" + good).status_code == 403
    assert snapshot(message.id)[0] == "sent"


def test_without_an_auth_token_every_callback_is_refused(world, app, monkeypatch):
    monkeypatch.setattr(app.config["SETTINGS"], "public_base_url", PUBLIC)
    monkeypatch.setattr(app.config["SETTINGS"], "twilio_auth_token", "")
    _, message = sent_notice(world)
    form = status_form(message.provider_id, "delivered")
    made = RequestValidator("").compute_signature(PUBLIC + "/sms/status", form)
    assert post(app, "/sms/status", form, sign="sig:" + made).status_code == 403
    assert post(app, "/sms/inbound", inbound_form("STOP"), sign="sig:" + made).status_code == 403
    assert snapshot(message.id)[0] == "sent"
    assert number(GUARDIAN).opted_out is False


# --- /sms/inbound ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["STOP", " stop ", "Stop.", "PARAR", "unsubscribe", "StopAll"])
def test_stop_opts_the_number_out_and_answers_with_empty_twiml(world, app, signed, word):
    make_patient(world)
    response = post(app, "/sms/inbound", inbound_form(word))
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    body = response.get_data(as_text=True)
    assert body.endswith("<Response />")
    assert twiml_messages(response) == []
    row = number(GUARDIAN)
    assert row is not None and row.opted_out is True and row.changed_at is not None
    db.session.remove()
    [inbound] = db.session().scalars(select(InboundMessage))
    assert (inbound.keyword, inbound.from_phone, inbound.referral_id) == ("stop", GUARDIAN, None)


@pytest.mark.parametrize("word", ["START", "unstop", "Yes!"])
def test_start_words_opt_the_number_back_in(world, app, signed, word):
    make_patient(world)
    post(app, "/sms/inbound", inbound_form("STOP"))
    assert number(GUARDIAN).opted_out is True
    response = post(app, "/sms/inbound", inbound_form(word))
    assert response.status_code == 200
    assert twiml_messages(response) == []
    assert number(GUARDIAN).opted_out is False


def test_a_number_formatted_otherwise_is_the_same_number(world, app, signed):
    make_patient(world)
    post(app, "/sms/inbound", inbound_form("STOP", sender="(510) 555-0142"))
    assert number(GUARDIAN).opted_out is True


@pytest.mark.parametrize("word", ["HELP", "help", "Ayuda", "INFO"])
def test_help_answers_in_the_familys_language(world, app, signed, word):
    make_patient(world)  # the guardian speaks Spanish
    response = post(app, "/sms/inbound", inbound_form(word))
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert twiml_messages(response) == [HELP_ES]
    # HELP changes nothing about texting the number.
    assert number(GUARDIAN) is None or number(GUARDIAN).opted_out is False


def test_help_from_an_unknown_number_answers_in_english(world, app, signed):
    response = post(app, "/sms/inbound", inbound_form("HELP", sender="+14155550199"))
    [answer] = twiml_messages(response)
    assert answer.startswith("Referrals: updates about referrals from your care team.")
    assert "Reply STOP to opt out." in answer


def test_a_reply_lands_on_the_familys_latest_open_referral_for_both_sides(world, app, signed):
    patient = make_patient(world)
    older = send(world, patient, "housing")
    referral = send(world, patient)  # the latest open one
    reply = "Can we come Tuesday after 3pm? <3"
    response = post(app, "/sms/inbound", inbound_form(reply))
    assert response.status_code == 200
    assert twiml_messages(response) == []  # no automatic answer
    assert events(referral.id, FAMILY_REPLIED) == [reply]
    assert events(older.id, FAMILY_REPLIED) == []
    db.session.remove()
    [inbound] = db.session().scalars(select(InboundMessage))
    assert (inbound.referral_id, inbound.keyword, inbound.body) == (referral.id, "", reply)

    for who in ("clinician", "food"):
        page = WebClient(app.test_client())
        page.login(world, who)
        html = page.get(f"/referrals/{referral.id}").get_data(as_text=True)
        assert "The family replied by text" in html, who
        assert "Can we come Tuesday after 3pm? &lt;3" in html, who
        assert "<3" not in html.split('class="timeline"', 1)[1], who  # escaped


def test_a_reply_is_not_a_notice(world, app, signed):
    """A reply on the timeline sends the family nothing back."""
    patient = make_patient(world)
    send(world, patient)
    assert run_due_jobs() == {DONE: 1}
    post(app, "/sms/inbound", inbound_form("Thank you"))
    assert run_due_jobs() == {}
    db.session.remove()
    assert db.session().scalar(select(func.count()).select_from(Message)) == 1


def test_a_guardians_reply_never_lands_on_a_confidential_referral(world, app, signed):
    shelter = add_service(
        SYSTEM,
        world.orgs["youth"],
        name="Family safety program",
        categories=["intimate-partner-violence"],
        sensitive=True,
    )
    child = make_patient(world)
    food = send(world, child)
    form = referral_form(world, service_id=str(shelter.id), consent_given_by_name="Ana Lopez")
    confidential = send_referral(world.actor("clinician"), child.id, form)
    db.session.remove()
    assert db.session().get(Referral, confidential.id).sensitive is True
    post(app, "/sms/inbound", inbound_form("Who is this?"))
    # The newest open referral is the confidential one: the reply goes to the other.
    assert events(confidential.id, FAMILY_REPLIED) == []
    assert events(food.id, FAMILY_REPLIED) == ["Who is this?"]


def test_a_guardians_reply_with_only_a_confidential_referral_open_lands_nowhere(world, app, signed):
    teen = make_patient(world, birth_date=years_ago(15), phone=TEEN, language="en")
    confidential = send(
        world,
        teen,
        "youth",
        sensitive="y",
        category="stress",
        consent_given_by="patient",
        consent_given_by_name="Maya Lopez",
    )
    count = all_events()
    response = post(app, "/sms/inbound", inbound_form("What is this about?"))
    assert response.status_code == 200
    assert all_events() == count
    db.session.remove()
    [inbound] = db.session().scalars(select(InboundMessage))
    assert inbound.referral_id is None and inbound.from_phone == GUARDIAN
    # The teen's own number may reply on it.
    post(app, "/sms/inbound", inbound_form("ok thanks", sender=TEEN))
    assert events(confidential.id, FAMILY_REPLIED) == ["ok thanks"]


def test_a_reply_from_an_unknown_number_is_kept_but_attached_to_nothing(world, app, signed):
    make_patient(world)
    count = all_events()
    response = post(app, "/sms/inbound", inbound_form("hello", sender="+14155550199"))
    assert response.status_code == 200
    assert all_events() == count
    db.session.remove()
    [inbound] = db.session().scalars(select(InboundMessage))
    assert inbound.referral_id is None


def test_the_same_inbound_message_twice_is_kept_once(world, app, signed):
    referral = send(world, make_patient(world))
    form = inbound_form("See you Monday")
    assert post(app, "/sms/inbound", form).status_code == 200
    assert post(app, "/sms/inbound", form).status_code == 200
    db.session.remove()
    assert db.session().scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert events(referral.id, FAMILY_REPLIED) == ["See you Monday"]


def test_inbound_needs_no_csrf_token_but_a_signature(world, app, signed):
    assert app.config.get("WTF_CSRF_ENABLED", True) is not False  # CSRF is on for the rest
    referral = send(world, make_patient(world))
    form = inbound_form("Hello")
    assert post(app, "/sms/inbound", form, sign=None).status_code == 403
    assert post(app, "/sms/inbound", form, sign="sig:" + "B" * 27 + "=").status_code == 403
    assert post(app, "/sms/inbound", form, sign="http://localhost/sms/inbound").status_code == 403
    assert events(referral.id, FAMILY_REPLIED) == []
    db.session.remove()
    assert db.session().scalar(select(func.count()).select_from(InboundMessage)) == 0
    # Signed, and still without a CSRF token or a session: accepted.
    assert post(app, "/sms/inbound", form).status_code == 200
    assert events(referral.id, FAMILY_REPLIED) == ["Hello"]


def test_a_forged_stop_opts_nobody_out(world, app, signed):
    make_patient(world)
    response = post(app, "/sms/inbound", inbound_form("STOP"), sign="sig:" + "C" * 27 + "=")
    assert response.status_code == 403
    assert number(GUARDIAN) is None


def test_after_stop_a_new_notice_is_skipped_and_twilio_hears_nothing(world, app, twilio):
    patient = make_patient(world)
    response = post(app, "/sms/inbound", inbound_form("STOP"))
    assert response.status_code == 200 and twiml_messages(response) == []
    send(world, patient)
    assert run_due_jobs() == {DONE: 1}
    message = the_message()
    assert (message.status, message.skip_reason) == ("skipped", "The number replied STOP.")
    assert message.provider_id is None and message.sent_at is None
    assert twilio.requests == []

    # START: the next notice goes.
    post(app, "/sms/inbound", inbound_form("START"))
    send(world, patient, "housing")
    assert run_due_jobs() == {DONE: 1}
    assert [m["form"]["To"] for m in twilio.messages] == [GUARDIAN]


def test_an_undelivered_callback_that_beats_our_record_of_the_send_is_not_lost(world, app, twilio):
    referral = send(world, make_patient(world))
    twilio.script("slow")  # Twilio takes the text, we time out before its answer
    assert run_due_jobs() == {"queued": 1}
    [at_twilio] = twilio.messages
    assert the_message().status == "sending"
    # Twilio tries the number meanwhile, and calls back at the URL it was given.
    callback = urlsplit(at_twilio["form"]["StatusCallback"])
    form = status_form(at_twilio["sid"], "undelivered", ErrorCode="30006")
    assert post(app, f"{callback.path}?{callback.query}", form).status_code == 204
    created_at = the_message().created_at
    db.session.remove()
    db.session().execute(Job.__table__.update().values(run_after=created_at))
    db.session().commit()
    assert run_due_jobs() == {DONE: 1}
    assert len(twilio.messages) == 1
    message = the_message()
    assert message.provider_id == at_twilio["sid"]
    assert (message.status, message.error_code) == ("undelivered", "30006")
    assert events(referral.id, TEXT_NOT_DELIVERED) == [LANDLINE]


def test_a_reply_from_a_number_two_families_share_goes_where_we_last_texted(world, app, twilio):
    """Ana's number is also an unrelated adult's own number. Ana got our text about Maya's
    referral: her reply belongs there, not on the newer referral of the other family."""
    maya = make_patient(world)
    maya_referral = send(world, maya)
    assert run_due_jobs() == {DONE: 1}
    other = make_patient(
        world,
        given_name="Rosa",
        family_name="Diaz",
        birth_date=years_ago(40),
        phone=GUARDIAN,
        guardian_name=None,
        guardian_relationship=None,
        guardian_phone=None,
        guardian_language=None,
    )
    other_referral = send(
        world, other, "housing", consent_given_by="patient", consent_given_by_name="Rosa Diaz"
    )
    db.session.remove()
    with db.session() as session:  # the other family's notice is not sent yet
        session.execute(Job.__table__.delete())
        session.commit()
    form = inbound_form("Thanks, she is doing better", sid="SM" + "a" * 32)
    assert post(app, "/sms/inbound", form).status_code == 200
    assert events(maya_referral.id, FAMILY_REPLIED) == ["Thanks, she is doing better"]
    assert events(other_referral.id, FAMILY_REPLIED) == []


def test_a_shared_number_we_never_texted_attaches_to_nobody(world, app, signed):
    make_patient(world)
    make_patient(world, given_name="Leo", birth_date=years_ago(6))  # same guardian phone
    form = inbound_form("Who is this?", sid="SM" + "b" * 32)
    assert post(app, "/sms/inbound", form).status_code == 200
    db.session.remove()
    [inbound] = db.session().scalars(select(InboundMessage))
    assert inbound.referral_id is None
