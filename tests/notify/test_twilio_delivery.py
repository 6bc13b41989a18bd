"""Family notices through the real twilio client, against a fake Twilio API on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import select

from referrals.db import db
from referrals.jobs import DONE, Job, run_due_jobs
from referrals.loop.models import ReferralEvent
from referrals.notify.models import Message, SmsNumber
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import World, make_patient, move, send
from tests.notify.conftest import SERVICE_SID
from tests.notify.test_sms_pipeline import make_due

GUARDIAN = "+15105550142"


def messages() -> list[Message]:
    db.session.remove()
    return list(db.session().scalars(select(Message).order_by(Message.created_at)))


def timeline(referral_id) -> list[tuple[str, str]]:
    db.session.remove()
    return [
        (e.action, e.note)
        for e in db.session().scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral_id)
            .order_by(ReferralEvent.at)
        )
    ]


def test_a_notice_goes_through_twilio_once(world: World, twilio: FakeTwilio) -> None:
    patient = make_patient(world)
    send(world, patient)
    assert run_due_jobs() == {DONE: 1}
    [sent] = twilio.messages
    assert sent["form"]["To"] == GUARDIAN
    assert sent["form"]["MessagingServiceSid"] == SERVICE_SID
    [message] = messages()
    assert sent["form"]["StatusCallback"] == (
        f"https://referrals.example.org/sms/status?message={message.id}"
    )
    assert sent["form"]["ValidityPeriod"] == "3600"
    assert sent["form"]["Body"].startswith("Referrals: ")  # the first text introduces us
    [message] = messages()
    assert (message.status, message.provider_id) == ("sent", sent["sid"])
    assert message.segments >= 1 and message.encoding == "GSM-7"
    assert db.session().get(SmsNumber, GUARDIAN).introduced_at is not None
    assert run_due_jobs() == {}
    assert len(twilio.messages) == 1


def test_the_second_text_to_a_number_has_no_introduction(world, twilio) -> None:
    patient = make_patient(world)
    referral = send(world, patient)
    run_due_jobs()
    move(world, "food", referral, "accept")
    run_due_jobs()
    first, second = (m["form"]["Body"] for m in twilio.messages)
    assert "STOP" in first and "STOP" not in second
    assert second.startswith("Community Food Bank")


def test_an_ambiguous_timeout_is_looked_up_not_sent_again(world, twilio) -> None:
    patient = make_patient(world)
    send(world, patient)
    twilio.script("slow")  # Twilio takes the message but answers after our timeout
    outcome = run_due_jobs()
    assert outcome == {"queued": 1}
    [message] = messages()
    assert message.status == "sending"
    db.session().execute(Job.__table__.update().values(run_after=message.created_at))
    db.session().commit()
    # Not looked up before Twilio would surely list what it took: three timeouts on.
    assert run_due_jobs() == {"deferred": 1}
    assert twilio.requests[-1]["method"] == "POST"  # no look-up yet
    make_due()
    assert run_due_jobs() == {DONE: 1}
    assert len(twilio.messages) == 1
    [message] = messages()
    assert (message.status, message.provider_id) == ("sent", twilio.messages[0]["sid"])


def test_a_landline_fails_at_once_and_the_timeline_says_so(world, twilio) -> None:
    patient = make_patient(world)
    referral = send(world, patient)
    twilio.script("21614")
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert (message.status, message.error_code) == ("failed", "21614")
    assert (
        "text-not-delivered",
        "Text to the parent or guardian not delivered: the number is not a mobile number.",
    ) in timeline(referral.id)


def _worker(database_url: str, fake: FakeTwilio, *, rate: str = "1000") -> subprocess.Popen:
    """`flask worker --once` in its own process, sending through the fake Twilio."""
    env = {
        **os.environ,
        "REFERRALS_ENV": "development",
        "SECRET_KEY": "crash-test",
        "DATABASE_URL": database_url,
        "SMS_GATEWAY": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TWILIO_API_BASE_URL": fake.url,
        "PUBLIC_BASE_URL": "https://referrals.example.org",
        "SMS_QUIET_START": "00:00",
        "SMS_QUIET_END": "00:00",
        "SMS_RATE_PER_SECOND": rate,
        "LOG_LEVEL": "WARNING",
    }
    flask = Path(sys.executable).with_name("flask")
    return subprocess.Popen(
        [str(flask), "--app", "app", "worker", "--once"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_worker_killed_after_twilio_took_the_text_sends_it_once(
    world: World, twilio: FakeTwilio, database_url: str
) -> None:
    """The worker dies after Twilio accepted the message and before our database heard of it.
    The next worker finds the message at Twilio instead of sending it again."""
    patient = make_patient(world)
    send(world, patient)
    db.session.remove()  # hold nothing open while the worker runs
    worker = _worker(database_url, twilio)
    twilio.on_create = lambda _message: os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL
    assert len(twilio.messages) == 1
    [message] = messages()
    assert message.status == "sending" and message.provider_id is None

    # Restart once the dead worker's lease has run out (its clock moved on).
    twilio.on_create = None
    db.session().execute(
        Job.__table__.update().values(locked_until=message.created_at - timedelta(minutes=1))
    )
    db.session().commit()
    make_due()  # and Twilio had time to list what it took
    db.session.remove()
    again = _worker(database_url, twilio)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "done: 1" in out
    posts = [r for r in twilio.requests if r["method"] == "POST"]
    lookups = [r for r in twilio.requests if r["method"] == "GET"]
    assert len(posts) == 1 and len(lookups) == 1
    assert len(twilio.messages) == 1
    [message] = messages()
    assert (message.status, message.provider_id) == ("sent", twilio.messages[0]["sid"])


def test_our_own_twilio_credentials_failing_is_not_the_familys_fault(world, twilio) -> None:
    """A wrong auth token is ours to mend: the notice waits, it is not failed."""
    patient = make_patient(world)
    send(world, patient)
    settings = current_app.config["SETTINGS"]
    good = settings.twilio_auth_token
    settings.twilio_auth_token = "wrong-token"
    try:
        assert run_due_jobs() == {"queued": 1}
    finally:
        settings.twilio_auth_token = good
    [message] = messages()
    assert message.status == "queued" and message.error_code is None
    assert twilio.messages == []


def test_a_notice_follows_a_new_number_given_while_it_waited(world, twilio) -> None:
    from referrals.patients.models import Guardian

    patient = make_patient(world)
    send(world, patient)
    db.session.remove()
    session = db.session()
    # The mother gives a new number before the notice goes.
    session.get(Guardian, patient.guardians[0].id).phone = "+15105550199"
    session.commit()
    assert run_due_jobs() == {DONE: 1}
    [sent] = twilio.messages
    assert sent["to"] == "+15105550199"
    [message] = messages()
    assert message.to_phone == "+15105550199"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SMS_TIME_ZONE", "Mars/Olympus", "is not a time zone"),
        ("SMS_NOTIFY_STEPS", "requested,declined", "SMS_NOTIFY_STEPS names declined"),
        ("SMS_QUIET_START", "9pm", "use HH:MM"),
        ("SMS_RATE_PER_SECOND", "0", "more than 0"),
    ],
)
def test_sms_settings_that_cannot_work_stop_the_start(monkeypatch, setting, value, message):
    from referrals.config import Settings

    monkeypatch.setenv("REFERRALS_ENV", "development")
    monkeypatch.setenv(setting, value)
    with pytest.raises(RuntimeError, match=message):
        Settings.from_env()


def test_twilio_in_production_needs_a_public_https_address(monkeypatch):
    from referrals.config import Settings

    for name, value in {
        "REFERRALS_ENV": "production",
        "SMS_GATEWAY": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_FROM_NUMBER": "+15105550100",
    }.items():
        monkeypatch.setenv(name, value)
    keys = {"secret_key": "x" * 32, "audit_key": "y" * 32}
    with pytest.raises(RuntimeError, match="PUBLIC_BASE_URL"):
        Settings.from_env(keys)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://referrals.example.org")
    settings = Settings.from_env(keys)
    assert settings.public_base_url == "https://referrals.example.org"
