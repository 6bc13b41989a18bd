"""The `sms.notice` job through a fake Twilio: quiet hours, the sender's pace, retries,
permanent refusals, the dead letter, expiry, which steps text, and who is never texted. Plus
`quiet_until` and `take_slot` on their own."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, update

from referrals.db import db, utcnow
from referrals.jobs import DEAD, DONE, Job, run_due_jobs
from referrals.loop.lifecycle import TEXT_NOT_DELIVERED
from referrals.loop.models import ReferralEvent
from referrals.notify.models import Message, SmsNumber, SmsSender
from referrals.notify.schedule import quiet_until, take_slot
from referrals.patients.models import Patient
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import make_patient, move, send
from tests.notify.conftest import SERVICE_SID
from tests.notify.test_consent_texts import guardian, refer

GUARDIAN = "+15105550142"
LA = ZoneInfo("America/Los_Angeles")
NOT_DELIVERED = "Text to the parent or guardian not delivered: "


@pytest.fixture
def settings(app: Flask, monkeypatch: pytest.MonkeyPatch):
    """Set a setting for this test: settings(name=value, ...)."""

    def change(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setattr(app.config["SETTINGS"], name, value)

    return change


def messages() -> list[Message]:
    db.session.remove()
    return list(db.session().scalars(select(Message).order_by(Message.created_at)))


def jobs() -> list[Job]:
    db.session.remove()
    return list(db.session().scalars(select(Job).order_by(Job.created_at)))


def timeline(referral_id, action: str = TEXT_NOT_DELIVERED) -> list[str]:
    db.session.remove()
    return [
        e.note
        for e in db.session().scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral_id, ReferralEvent.action == action)
            .order_by(ReferralEvent.at)
        )
    ]


def make_due() -> None:
    """Every queued job is due now (as if its time had come), and a text whose hand-over got no
    answer was handed over long enough ago to be looked up."""
    db.session.remove()
    db.session().execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
    for message in db.session().scalars(select(Message).where(Message.status == "sending")):
        message.sending_at -= timedelta(minutes=1)
    db.session().commit()
    db.session.remove()


def posts(fake: FakeTwilio) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST"]


def hhmm(moment: datetime) -> str:
    return f"{moment:%H:%M}"


# --- quiet hours ----------------------------------------------------------------------------


def test_quiet_hours_defer_the_notice_until_they_end_then_it_goes(world, twilio, settings):
    local = datetime.now(LA)
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)  # now is inside
    settings(sms_time_zone="America/Los_Angeles", sms_quiet_start=hhmm(start))
    settings(sms_quiet_end=hhmm(end))
    # Quiet hours end at `end`'s minute, on `end`'s local day (today, or tomorrow after 22:00).
    ends = datetime.combine(end.date(), time(end.hour, end.minute), tzinfo=LA).astimezone(UTC)

    send(world, make_patient(world))
    assert run_due_jobs() == {"deferred": 1}
    [message] = messages()
    assert message.status == "queued" and message.attempts == 0
    assert message.not_before == ends
    [job] = jobs()
    assert (job.status, job.run_after, job.attempts) == ("queued", ends, 0)
    assert twilio.requests == []
    assert run_due_jobs() == {}  # not due before then

    # Later: quiet hours are over.
    later_start, later_end = local + timedelta(hours=1), local + timedelta(hours=2)
    settings(sms_quiet_start=hhmm(later_start), sms_quiet_end=hhmm(later_end))
    make_due()
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert message.status == "sent" and message.attempts == 1
    assert [p["form"]["To"] for p in posts(twilio)] == [GUARDIAN]


class TestQuietUntil:
    pytestmark = pytest.mark.pure
    ZONE = "America/Los_Angeles"

    def until(self, local: datetime, start: str = "21:00", end: str = "08:00"):
        return quiet_until(local.astimezone(UTC), self.ZONE, start, end)

    def test_quiet_hours_begin_at_2100_exactly(self):
        assert self.until(datetime(2026, 6, 15, 20, 59, 59, tzinfo=LA)) is None
        got = self.until(datetime(2026, 6, 15, 21, 0, tzinfo=LA))
        assert got == datetime(2026, 6, 16, 8, 0, tzinfo=LA)
        assert got.astimezone(UTC) == datetime(2026, 6, 16, 15, 0, tzinfo=UTC)

    def test_before_midnight_they_end_tomorrow_after_midnight_today(self):
        assert self.until(datetime(2026, 6, 15, 23, 59, tzinfo=LA)) == datetime(
            2026, 6, 16, 8, 0, tzinfo=LA
        )
        assert self.until(datetime(2026, 6, 16, 0, 0, tzinfo=LA)) == datetime(
            2026, 6, 16, 8, 0, tzinfo=LA
        )

    def test_0759_is_quiet_0800_is_not(self):
        assert self.until(datetime(2026, 6, 16, 7, 59, tzinfo=LA)) == datetime(
            2026, 6, 16, 8, 0, tzinfo=LA
        )
        assert self.until(datetime(2026, 6, 16, 7, 59, 59, 999999, tzinfo=LA)) is not None
        assert self.until(datetime(2026, 6, 16, 8, 0, tzinfo=LA)) is None
        assert self.until(datetime(2026, 6, 16, 12, 0, tzinfo=LA)) is None

    def test_now_may_be_given_in_any_zone(self):
        # 2026-06-16 04:30 UTC is 21:30 on the 15th in California.
        got = quiet_until(datetime(2026, 6, 16, 4, 30, tzinfo=UTC), self.ZONE, "21:00", "08:00")
        assert got == datetime(2026, 6, 16, 15, 0, tzinfo=UTC)

    def test_spring_forward_night_is_an_hour_shorter(self):
        # 2026-03-08: 02:00 PST becomes 03:00 PDT; 08:00 that morning is 15:00 UTC.
        now = datetime(2026, 3, 7, 22, 0, tzinfo=LA)  # PST, UTC-8
        got = self.until(now)
        assert got.astimezone(UTC) == datetime(2026, 3, 8, 15, 0, tzinfo=UTC)
        assert got.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=9)
        # In the middle of the night, on either side of the change.
        assert self.until(datetime(2026, 3, 8, 1, 30, tzinfo=LA)) == got
        assert self.until(datetime(2026, 3, 8, 3, 30, tzinfo=LA)) == got
        assert self.until(datetime(2026, 3, 8, 8, 0, tzinfo=LA)) is None

    def test_fall_back_night_is_an_hour_longer(self):
        # 2026-11-01: 02:00 PDT becomes 01:00 PST; 08:00 that morning is 16:00 UTC.
        now = datetime(2026, 10, 31, 22, 0, tzinfo=LA)  # PDT, UTC-7
        got = self.until(now)
        assert got.astimezone(UTC) == datetime(2026, 11, 1, 16, 0, tzinfo=UTC)
        assert got.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=11)
        # 01:30 happens twice that night: both are quiet until the same 08:00 PST.
        first = datetime(2026, 11, 1, 1, 30, tzinfo=LA, fold=0)
        second = datetime(2026, 11, 1, 1, 30, tzinfo=LA, fold=1)
        assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
        assert self.until(first) == got and self.until(second) == got
        assert self.until(datetime(2026, 11, 1, 8, 0, tzinfo=LA)) is None

    def test_a_window_within_one_day(self):
        assert self.until(datetime(2026, 6, 16, 0, 0, tzinfo=LA), "00:00", "06:00") == (
            datetime(2026, 6, 16, 6, 0, tzinfo=LA)
        )
        assert self.until(datetime(2026, 6, 16, 5, 59, tzinfo=LA), "00:00", "06:00") == (
            datetime(2026, 6, 16, 6, 0, tzinfo=LA)
        )
        assert self.until(datetime(2026, 6, 16, 6, 0, tzinfo=LA), "00:00", "06:00") is None
        assert self.until(datetime(2026, 6, 16, 23, 0, tzinfo=LA), "00:00", "06:00") is None

    def test_equal_start_and_end_mean_no_quiet_hours(self):
        for hour in (0, 8, 21, 23):
            assert self.until(datetime(2026, 6, 16, hour, tzinfo=LA), "21:00", "21:00") is None
            assert self.until(datetime(2026, 6, 16, hour, tzinfo=LA), "00:00", "00:00") is None


class TestTakeSlot:
    pytestmark = pytest.mark.pure
    NOW = datetime(2026, 6, 16, 15, 0, tzinfo=UTC)

    def test_a_sender_that_never_sent_goes_now(self):
        assert take_slot(self.NOW, None, 1.0) == (self.NOW, self.NOW + timedelta(seconds=1))

    def test_a_free_moment_in_the_past_is_now(self):
        past = self.NOW - timedelta(minutes=5)
        assert take_slot(self.NOW, past, 2.0) == (self.NOW, self.NOW + timedelta(seconds=0.5))

    def test_a_busy_sender_gives_its_next_free_moment(self):
        busy = self.NOW + timedelta(seconds=30)
        assert take_slot(self.NOW, busy, 0.01) == (busy, busy + timedelta(seconds=100))

    def test_slots_follow_each_other_at_the_rate(self):
        free, slots = None, []
        for _ in range(4):
            slot, free = take_slot(self.NOW, free, 4.0)
            slots.append(slot)
        assert slots == [self.NOW + timedelta(seconds=0.25 * i) for i in range(4)]
        assert free == self.NOW + timedelta(seconds=1)


# --- pacing ---------------------------------------------------------------------------------


def test_a_second_notice_waits_for_the_senders_next_slot(world, twilio, settings):
    settings(sms_rate_per_second=0.01)  # one text per 100 s
    referral = send(world, make_patient(world))
    assert run_due_jobs() == {DONE: 1}
    db.session.remove()
    first_slot = db.session().get(SmsSender, SERVICE_SID).next_slot_at
    sent_at = messages()[0].sent_at
    assert timedelta(seconds=99) < first_slot - sent_at <= timedelta(seconds=100)

    move(world, "food", referral, "accept")
    assert run_due_jobs() == {"deferred": 1}
    job = jobs()[1]
    assert (job.status, job.attempts) == ("queued", 0)
    assert job.run_after == first_slot  # ~100 s after the first
    assert timedelta(seconds=95) < job.run_after - utcnow() <= timedelta(seconds=100)
    db.session.remove()
    # The sender's row moved on past the slot this notice holds.
    assert db.session().get(SmsSender, SERVICE_SID).next_slot_at == first_slot + timedelta(
        seconds=100
    )
    second = messages()[1]
    assert second.status == "queued" and second.attempts == 0
    assert len(posts(twilio)) == 1


def test_a_notice_deferred_for_pace_goes_when_its_slot_comes(world, twilio, settings):
    settings(sms_rate_per_second=0.01)
    referral = send(world, make_patient(world))
    assert run_due_jobs() == {DONE: 1}
    move(world, "food", referral, "accept")
    assert run_due_jobs() == {"deferred": 1}
    # 100 s go by: every stored moment moves 100 s into the past.
    session = db.session()
    later = timedelta(seconds=100)
    for row in session.scalars(select(SmsSender)):
        row.next_slot_at -= later
    for job in session.scalars(select(Job)):
        job.run_after -= later
    for message in session.scalars(select(Message).where(Message.slot_at.is_not(None))):
        message.slot_at -= later
    session.commit()
    db.session.remove()
    assert run_due_jobs() == {DONE: 1}
    assert [m.status for m in messages()] == ["sent", "sent"]
    assert len(posts(twilio)) == 2


# --- retries --------------------------------------------------------------------------------


def test_a_429_is_retried_later_and_the_text_goes_once(world, twilio):
    send(world, make_patient(world))
    twilio.script("429")
    assert run_due_jobs() == {"queued": 1}
    [job] = jobs()
    assert (job.status, job.attempts) == ("queued", 1)
    assert job.run_after > utcnow()
    assert "RetryableSmsError" in job.last_error
    [message] = messages()
    assert message.status == "queued"  # certainly not at Twilio
    assert message.provider_id is None and message.attempts == 1
    assert twilio.messages == []
    assert run_due_jobs() == {}  # backing off

    make_due()
    assert run_due_jobs() == {DONE: 1}
    [at_twilio] = twilio.messages
    [message] = messages()
    assert (message.status, message.provider_id) == ("sent", at_twilio["sid"])
    assert message.attempts == 2
    # No lookup was needed: the 429 meant Twilio did not take it.
    assert [r["method"] for r in twilio.requests] == ["POST", "POST"]


def test_a_500_is_ambiguous_so_twilio_is_asked_before_sending_again(world, twilio):
    send(world, make_patient(world))
    twilio.script("500")
    assert run_due_jobs() == {"queued": 1}
    [message] = messages()
    assert message.status == "sending" and message.provider_id is None
    assert [job.attempts for job in jobs()] == [1]

    make_due()
    assert run_due_jobs() == {DONE: 1}
    methods = [r["method"] for r in twilio.requests]
    assert methods == ["POST", "GET", "POST"]  # the lookup comes before the second send
    assert len(twilio.messages) == 1
    [message] = messages()
    assert (message.status, message.provider_id) == ("sent", twilio.messages[0]["sid"])


# --- permanent refusals ---------------------------------------------------------------------


def test_an_unsubscribed_number_fails_at_once_and_is_opted_out(world, twilio):
    referral = send(world, make_patient(world))
    twilio.script("21610")
    assert run_due_jobs() == {DONE: 1}  # no retry
    [message] = messages()
    assert (message.status, message.error_code) == ("failed", "21610")
    db.session.remove()
    assert db.session().get(SmsNumber, GUARDIAN).opted_out is True
    assert timeline(referral.id) == [NOT_DELIVERED + "the number replied STOP (opted out)."]
    # The next notice is not even tried.
    move(world, "food", referral, "accept")
    assert run_due_jobs() == {DONE: 1}
    assert messages()[1].status == "skipped"
    assert len(twilio.requests) == 1


def test_an_invalid_number_fails_and_the_timeline_says_so(world, twilio):
    referral = send(world, make_patient(world))
    twilio.script("21211")
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert (message.status, message.error_code) == ("failed", "21211")
    [note] = timeline(referral.id)
    assert "not a valid phone number" in note
    assert note == NOT_DELIVERED + "the number is not a valid phone number."
    db.session.remove()
    number = db.session().get(SmsNumber, GUARDIAN)
    assert number is None or number.opted_out is False
    assert len(twilio.requests) == 1


# --- dead letter ----------------------------------------------------------------------------


def test_a_notice_that_keeps_failing_dies_and_the_timeline_says_so(world, twilio):
    referral = send(world, make_patient(world))
    db.session().execute(update(Job).values(max_attempts=2))
    db.session().commit()
    twilio.script("500", "500")
    assert run_due_jobs() == {"queued": 1}
    make_due()
    assert run_due_jobs() == {DEAD: 1}
    [job] = jobs()
    assert (job.status, job.attempts) == (DEAD, 2)
    assert job.finished_at is not None
    [message] = messages()
    assert message.status == "failed" and message.error
    assert timeline(referral.id) == [
        NOT_DELIVERED + "sending failed after several tries "
        "(it may have reached the phone: the provider never said)."
    ]
    make_due()
    assert run_due_jobs() == {}
    assert twilio.messages == []


# --- expiry ---------------------------------------------------------------------------------


def test_a_notice_too_late_to_be_useful_expires_unsent(world, twilio, settings):
    referral = send(world, make_patient(world))
    settings(sms_max_delay_hours=0.0)  # it expires the moment its event happened
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert message.status == "expired"
    assert message.skip_reason == "Not sent in time to be useful."
    assert message.provider_id is None and message.sent_at is None
    assert timeline(referral.id) == [NOT_DELIVERED + "it could not go out in time to be useful."]
    assert twilio.requests == []


def test_a_notice_held_by_quiet_hours_past_its_expiry_expires(world, twilio, settings):
    local = datetime.now(LA)
    settings(
        sms_quiet_start=hhmm(local - timedelta(hours=1)),
        sms_quiet_end=hhmm(local + timedelta(hours=2)),
    )
    send(world, make_patient(world))
    assert run_due_jobs() == {"deferred": 1}
    db.session().execute(update(Message).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session().commit()
    make_due()
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert message.status == "expired"
    assert twilio.requests == []


# --- which steps text, and who never gets one -----------------------------------------------


def test_only_the_configured_steps_text(world, twilio, settings):
    settings(sms_notify_steps="requested")
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    assert run_due_jobs() == {DONE: 2}
    requested, accepted = messages()
    assert requested.status == "sent"
    assert (accepted.status, accepted.skip_reason) == (
        "skipped",
        "No notice is sent for “accepted”.",
    )
    assert accepted.to_phone is None and accepted.body == ""
    assert len(posts(twilio)) == 1


def test_in_progress_does_not_text_by_default_but_can(world, twilio, settings):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    move(world, "food", referral, "start")
    assert run_due_jobs() == {DONE: 3}
    assert [m.status for m in messages()] == ["sent", "sent", "skipped"]
    assert messages()[2].skip_reason == "No notice is sent for “in-progress”."
    settings(sms_notify_steps="requested,accepted,in-progress,on-hold")
    move(world, "food", referral, "hold", reason="awaiting-documents")
    assert run_due_jobs() == {DONE: 1}
    assert messages()[3].status == "sent"
    assert len(posts(twilio)) == 3


def test_do_not_contact_reaches_nobody(world, twilio):
    referral = send(world, make_patient(world), contact_prohibited="y")
    move(world, "food", referral, "accept")
    assert run_due_jobs() == {DONE: 2}
    assert {(m.status, m.to_phone) for m in messages()} == {("skipped", None)}
    assert twilio.requests == []


def test_no_consent_to_texts_reaches_nobody(world, twilio):
    patient = make_patient(world)
    refer(world, patient, "food", sms_to="none")
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert message.status == "skipped"
    assert message.skip_reason == "The family asked for no text messages about this referral."
    assert twilio.requests == []


def test_a_family_that_opted_out_of_texts_reaches_nobody(world, twilio):
    patient = make_patient(world)
    db.session().get(Patient, patient.id).sms_opt_in = False
    db.session().commit()
    refer(world, patient, "food", sms_to=guardian(patient))
    assert run_due_jobs() == {DONE: 1}
    [message] = messages()
    assert (message.status, message.skip_reason) == (
        "skipped",
        "The family opted out of text messages.",
    )
    assert twilio.requests == []


def test_a_notice_held_by_quiet_hours_does_not_go_once_consent_is_withdrawn(
    world, twilio, settings
):
    from referrals.loop.service import revoke_consent
    from referrals.patients.models import Consent

    local = datetime.now(LA)
    settings(
        sms_quiet_start=hhmm(local - timedelta(hours=1)),
        sms_quiet_end=hhmm(local + timedelta(hours=2)),
    )
    patient = make_patient(world)
    refer(world, patient, "food", sms_to=guardian(patient))
    assert run_due_jobs() == {"deferred": 1}
    consent_id = db.session().scalar(select(Consent.id))
    revoke_consent(world.actor("clinician"), consent_id, "Mother asked us to stop")
    # Morning: quiet hours are over.
    settings(
        sms_quiet_start=hhmm(local + timedelta(hours=1)),
        sms_quiet_end=hhmm(local + timedelta(hours=2)),
    )
    make_due()
    run_due_jobs()
    assert twilio.requests == []
    message = messages()[0]  # the referral's notice (any later row is the revocation's)
    assert (message.status, message.skip_reason) == (
        "skipped",
        "The family withdrew its consent to share.",
    )
