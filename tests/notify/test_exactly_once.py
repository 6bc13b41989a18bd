"""Each family text reaches Twilio exactly once and carries its own Twilio id, even when
brothers and sisters get identical texts at one parent's number and Twilio's answers fail in
every way; or it fails visibly on the referral's timeline."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from referrals.db import db, transaction, utcnow
from referrals.jobs import DEAD, DONE, Job, run_due_jobs
from referrals.notify.models import Message, SmsNumber
from referrals.notify.service import PROVIDER_CLOCK_SKEW
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import World, make_patient, send
from tests.notify.test_sms_pipeline import GUARDIAN, NOT_DELIVERED, make_due, timeline


def _siblings(world: World, count: int = 2) -> list:
    """Brothers and sisters at one mother's number, each referred to the food bank: the same
    words go to the same phone. The number already heard from us, so no text introduces us."""
    with transaction() as session:
        session.add(SmsNumber(phone=GUARDIAN, opted_out=False, keyword="", introduced_at=utcnow()))
    names = ["Maya", "Leo", "Ana", "Sol"]
    return [send(world, make_patient(world, given_name=names[n])) for n in range(count)]


def _messages() -> list[Message]:
    db.session.remove()
    return list(db.session().scalars(select(Message).order_by(Message.created_at, Message.id)))


def _number() -> SmsNumber:
    db.session.remove()
    return db.session().get(SmsNumber, GUARDIAN)


def _rest_over() -> None:
    """The number's rest after an uncertain text is over (as if its time had passed)."""
    with transaction() as session:
        session.execute(update(SmsNumber).values(rest_until=utcnow() - timedelta(seconds=1)))
    make_due()


def _each_text_once_with_its_own_id(twilio: FakeTwilio) -> None:
    taken = {m["sid"]: m for m in twilio.messages}
    rows = _messages()
    assert len(taken) == len(rows) == len({m.provider_id for m in rows})
    for row in rows:
        assert row.provider_id in taken, f"message {row.id} holds an id Twilio never gave"
        assert taken[row.provider_id]["form"]["StatusCallback"].endswith(f"message={row.id}")


def test_identical_texts_to_one_number_go_one_at_a_time(world, twilio):
    _siblings(world)
    twilio.script("500")  # refused before Twilio took it: the answer says nothing certain
    outcome = run_due_jobs()
    assert outcome == {"queued": 1, "deferred": 1}
    one, two = _messages()
    assert one.status == "sending" and one.uncertain
    assert two.status == "queued" and two.attempts == 0  # waits: one text on its way at a time
    assert _number().sending_id == one.id

    make_due()
    assert run_due_jobs() == {DONE: 1, "deferred": 1}  # looked up, not there: sent again
    one, two = _messages()
    assert one.status == "sent" and one.attempts == 2
    # A copy of the first try could still appear: the number rests before the next text.
    number = _number()
    assert number.sending_id is None
    assert number.rest_until > utcnow() + PROVIDER_CLOCK_SKEW
    assert two.status == "queued"

    _rest_over()
    assert run_due_jobs() == {DONE: 1}
    bodies = {m["form"]["Body"] for m in twilio.messages}
    assert len(twilio.messages) == 2 and len(bodies) == 1  # the same words, twice
    _each_text_once_with_its_own_id(twilio)


def test_a_look_up_finds_the_text_twilio_took_and_not_a_brothers(world, twilio):
    """The first text went through; the second was taken by Twilio but its answer failed.
    Twilio holds two identical texts to the number: the second notice takes its own."""
    _siblings(world)
    twilio.script("ok", "500-after")
    assert run_due_jobs() == {DONE: 1, "queued": 1}
    one, two = _messages()
    assert two.status == "sending" and len(twilio.messages) == 2
    make_due()
    assert run_due_jobs() == {DONE: 1}
    assert len([r for r in twilio.requests if r["method"] == "POST"]) == 2  # not sent again
    one, two = _messages()
    assert (one.provider_id, two.provider_id) == (
        twilio.messages[0]["sid"],
        twilio.messages[1]["sid"],
    )
    _each_text_once_with_its_own_id(twilio)
    assert _number().rest_until is None  # found at once after one try: nothing to wait for


def test_a_look_up_never_takes_a_text_another_notice_owns(world, twilio):
    """The first text went through; the second was refused before Twilio took it. Twilio holds
    one text with those words to that number, the first notice's: the second sends its own."""
    _siblings(world)
    twilio.script("ok", "500")
    assert run_due_jobs() == {DONE: 1, "queued": 1}
    assert len(twilio.messages) == 1
    make_due()
    assert run_due_jobs() == {DONE: 1}
    one, two = _messages()
    assert two.status == "sent" and two.provider_id != one.provider_id
    assert len(twilio.messages) == 2
    _each_text_once_with_its_own_id(twilio)


def test_a_notice_given_up_while_twilio_may_have_it_fails_visibly_and_the_number_rests(
    world, twilio
):
    first, _second = _siblings(world)
    db.session().execute(update(Job).values(max_attempts=1))
    db.session().commit()
    twilio.script("500")
    assert run_due_jobs() == {DEAD: 1, "deferred": 1}
    one, two = _messages()
    assert one.status == "failed"
    assert timeline(first.id) == [
        NOT_DELIVERED + "sending failed after several tries "
        "(it may have reached the phone: the provider never said)."
    ]
    number = _number()
    assert number.sending_id is None and number.rest_until > utcnow()
    make_due()
    assert run_due_jobs() == {"deferred": 1}  # the brother's text waits for the rest
    _rest_over()
    assert run_due_jobs() == {DONE: 1}
    one, two = _messages()
    assert two.status == "sent" and two.provider_id == twilio.messages[-1]["sid"]


def test_a_slow_answer_is_found_at_twilio_under_the_right_notice(world, twilio):
    _siblings(world, 3)
    twilio.script("ok", "slow", "ok")
    for _ in range(6):
        make_due()
        run_due_jobs()
    assert [m.status for m in _messages()] == ["sent", "sent", "sent"]
    assert len(twilio.messages) == 3
    _each_text_once_with_its_own_id(twilio)


def test_a_certain_refusal_keeps_the_number_for_the_notice_that_tried(world, twilio):
    """A 429 means Twilio took nothing: the notice tries again, before its brother's, and
    nobody waits for a rest."""
    _siblings(world)
    twilio.script("429")
    assert run_due_jobs() == {"queued": 1, "deferred": 1}
    one, _two = _messages()
    assert one.status == "queued" and not one.uncertain
    assert _number().sending_id == one.id
    make_due()
    assert run_due_jobs() == {DONE: 2}  # the first, then its brother's
    assert _number().rest_until is None
    _each_text_once_with_its_own_id(twilio)


def _posts(twilio: FakeTwilio) -> int:
    return sum(1 for r in twilio.requests if r["method"] == "POST")


def _looks(twilio: FakeTwilio) -> int:
    return sum(1 for r in twilio.requests if r["method"] == "GET")


def test_a_text_twilio_takes_after_we_gave_up_waiting_is_found_not_sent_again(world, twilio):
    """Twilio was still working on the request when our timeout struck, and lists the text only
    later. The look-up waits until Twilio surely would list it (three timeouts), then finds it."""
    _siblings(world, 1)
    twilio.script("late")
    assert run_due_jobs() == {"queued": 1}
    [message] = _messages()
    assert message.status == "sending" and twilio.messages == []  # not listed yet
    with transaction() as session:  # the retry falls due at once...
        session.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
    assert run_due_jobs() == {"deferred": 1}  # ...but does not look yet
    assert (_posts(twilio), _looks(twilio)) == (1, 0)
    deadline = utcnow() + timedelta(seconds=10)
    while not twilio.messages:  # time passes: Twilio finishes the request
        assert utcnow() < deadline
    make_due()
    assert run_due_jobs() == {DONE: 1}
    assert (_posts(twilio), _looks(twilio)) == (1, 1)
    _each_text_once_with_its_own_id(twilio)


def test_a_status_callback_naming_the_text_settles_it_without_a_look_up(world, app, twilio):
    """Twilio took the text but its answer failed; its status callback, which carries our id,
    arrived before the retry. The retry takes the id from it: no look-up, no second text."""
    from tests.notify.test_sms_webhooks import post, status_form

    _siblings(world, 1)
    twilio.script("500-after")
    assert run_due_jobs() == {"queued": 1}
    [message] = _messages()
    [taken] = twilio.messages
    answer = post(app, f"/sms/status?message={message.id}", status_form(taken["sid"], "sent"))
    assert answer.status_code == 204
    make_due()
    assert run_due_jobs() == {DONE: 1}
    [message] = _messages()
    assert (message.status, message.provider_id) == ("sent", taken["sid"])
    assert (_posts(twilio), _looks(twilio)) == (1, 0)
    assert _number().sending_id is None


def test_a_callback_that_lands_after_the_look_up_missed_stops_the_second_hand_over(
    world, app, twilio
):
    """The look-up missed (the text was refused before Twilio took it), the notice went back
    to the queue, and then a callback named it: the hand-over checks the row under its lock."""
    from tests.notify.test_sms_webhooks import post, status_form

    _siblings(world, 1)
    twilio.script("500")
    assert run_due_jobs() == {"queued": 1}
    [message] = _messages()
    with transaction() as session:  # looked up, not found: queued again, as deliver leaves it
        row = session.get(Message, message.id)
        row.status = "queued"
    answer = post(app, f"/sms/status?message={message.id}", status_form("SM" + "a" * 32, "sent"))
    assert answer.status_code == 204
    make_due()
    assert run_due_jobs() == {DONE: 1}
    [message] = _messages()
    assert message.provider_id == "SM" + "a" * 32 and message.status == "sent"
    assert _posts(twilio) == 1  # never handed over again
