"""The referral loop through its services: the only writers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from referrals.audit import AuditEvent
from referrals.db import db, utcnow
from referrals.directory.models import Service
from referrals.errors import Conflict, Forbidden, InvalidInput, NotFound
from referrals.jobs import Job
from referrals.loop.lifecycle import Refusal
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.loop.service import (
    inbox,
    open_referral,
    patient_referrals,
    send_referral,
    sent_referrals,
)
from referrals.patients.models import Consent
from tests.helpers import make_patient, move, referral_form, send, years_ago


def count(model) -> int:
    return db.session().scalar(select(func.count()).select_from(model))


def reload(referral: Referral) -> Referral:
    db.session.remove()
    return db.session().get(Referral, referral.id)


def test_sending_creates_service_request_task_consent_event_audit_and_notice(world):
    patient = make_patient(world)
    referral = send(world, patient, priority="urgent", category="food-insecurity")

    referral = reload(referral)
    assert referral.status == "active" and referral.intent == "order"
    assert referral.performer_org_id == world.orgs["food"].id
    assert (referral.category, referral.code, referral.priority) == (
        "food-insecurity",
        "710925007",
        "urgent",
    )
    assert referral.task.status == "requested"
    assert referral.task.owner_org_id == world.orgs["food"].id
    assert referral.consent.granted_by == "guardian"
    assert referral.consent.recipient_org_id == world.orgs["food"].id
    events = db.session().scalars(select(ReferralEvent)).all()
    assert [(e.action, e.from_status, e.to_status) for e in events] == [("send", None, "requested")]
    assert events[0].actor_name == "Clinician"
    jobs = db.session().scalars(select(Job)).all()
    assert [(j.kind, j.payload["event_id"]) for j in jobs] == [("sms.notice", str(events[0].id))]
    actions = db.session().scalars(select(AuditEvent.action)).all()
    assert "referral.create" in actions


def test_the_whole_loop_to_completion(world):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    move(
        world, "food", referral, "note", note="Left voicemail", business_status="contact-attempted"
    )
    move(world, "food", referral, "start")
    move(world, "food", referral, "hold", reason="awaiting-documents")
    move(world, "food", referral, "start")
    move(
        world,
        "food",
        referral,
        "complete",
        output_code="710925007",
        outcome_note="Two weeks of groceries",
    )

    referral = reload(referral)
    task = referral.task
    assert task.status == "completed" and referral.status == "completed"
    assert (task.output_code, task.output_display, task.outcome_note) == (
        "710925007",
        "Provision of food",
        "Two weeks of groceries",
    )
    assert task.closed_at is not None and task.responded_at is not None
    view = open_referral(world.actor("clinician"), referral.id)
    assert [e.action for e in view.events] == [
        "send",
        "accept",
        "note",
        "start",
        "hold",
        "start",
        "complete",
    ]
    assert view.events[2].note == "Left voicemail"
    assert view.events[4].reason == "Waiting for documents"
    # one notice per status change; none for the note
    assert count(Job) == 6
    assert [a.value for a in view.actions] == ["enter-in-error"]  # a correction only


def test_decline_needs_a_reason_from_the_list_and_keeps_service_request_active(world):
    referral = send(world, make_patient(world))
    with pytest.raises(InvalidInput) as err:
        move(world, "food", referral, "decline")
    assert err.value.fields == {"reason": ["Pick a reason from the list."]}
    with pytest.raises(InvalidInput) as err:
        move(world, "food", referral, "decline", reason="other")
    assert "reason_detail" in err.value.fields
    assert reload(referral).task.status == "requested"

    move(world, "food", referral, "decline", reason="at-capacity", reason_detail="Until March")
    referral = reload(referral)
    assert referral.task.status == "rejected"
    assert referral.task.status_reason == "No capacity / waiting list closed. Until March"
    assert referral.status == "active"  # the clinician may refer elsewhere


def test_completing_needs_one_of_the_services_outcomes(world):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    with pytest.raises(Refusal, match="Record what was provided"):
        move(world, "food", referral, "complete")
    with pytest.raises(InvalidInput) as err:
        move(world, "food", referral, "complete", output_code="999999")
    assert "output_code" in err.value.fields
    assert reload(referral).task.status == "accepted"


def test_referrer_cancels_a_requested_referral_at_once_and_revokes_it(world):
    referral = send(world, make_patient(world))
    move(world, "clinician", referral, "cancel", reason="need-resolved")
    referral = reload(referral)
    assert (referral.task.status, referral.status) == ("cancelled", "revoked")


def test_referrer_cancel_after_acceptance_is_a_request_the_recipient_confirms(world):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    move(world, "clinician", referral, "cancel", reason="referred-elsewhere")
    referral = reload(referral)
    assert referral.task.status == "accepted"
    assert referral.task.business_status == "cancellation-requested"
    assert referral.status == "active"

    move(world, "food", referral, "cancel", reason="referred-elsewhere")
    referral = reload(referral)
    assert (referral.task.status, referral.status) == ("cancelled", "revoked")
    events = [e.action for e in open_referral(world.actor("clinician"), referral.id).events]
    assert events == ["send", "accept", "cancel-requested", "cancel"]


def test_terminal_referral_cannot_be_reopened(world):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "decline", reason="not-eligible")
    with pytest.raises(Refusal, match="declined, which is final"):
        move(world, "food", referral, "accept")


def test_recipient_cannot_do_the_referrers_moves_and_vice_versa(world):
    referral = send(world, make_patient(world))
    with pytest.raises(Refusal, match="Only the receiving organisation"):
        move(world, "clinician", referral, "accept")
    with pytest.raises(Refusal, match="referring organisation"):
        move(world, "food", referral, "enter-in-error", reason="duplicate")


@pytest.mark.parametrize("who", ["other_clinician", "housing", "school", "admin"])
def test_organisations_not_party_to_a_referral_get_not_found_and_a_denied_audit(world, who):
    referral = send(world, make_patient(world))
    with pytest.raises(NotFound):
        open_referral(world.actor(who), referral.id)
    with pytest.raises(NotFound):
        move(world, who, referral, "accept")
    denied = db.session().scalars(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert {e.action for e in denied} == {"referral.view", "referral.accept"}
    assert all(e.actor_name == who.replace("_", " ").title() for e in denied)
    assert reload(referral).task.status == "requested"


def test_a_colleague_in_the_same_clinic_sees_the_referral(world):
    referral = send(world, make_patient(world))
    view = open_referral(world.actor("clinician2"), referral.id)
    assert view.referral.id == referral.id and view.is_requester


def test_stale_form_gets_a_conflict_naming_who_changed_it_and_writes_nothing(world):
    referral = send(world, make_patient(world))
    stale = {"action": "decline", "version": "1", "reason": "at-capacity"}
    move(world, "food_admin", referral, "accept")
    from referrals.loop.service import change_referral

    with pytest.raises(Conflict) as err:
        change_referral(world.actor("food"), referral.id, stale)
    assert "Food Admin (Community Food Bank)" in err.value.message
    assert "it is now accepted" in err.value.message
    assert reload(referral).task.status == "accepted"
    assert count(ReferralEvent) == 2


def test_a_failure_mid_transaction_leaves_nothing_half_written(world):
    patient = make_patient(world)
    before = {m: count(m) for m in (Referral, Task, ReferralEvent, Job, Consent, AuditEvent)}

    def fail_on_audit(session: Session, _ctx, _instances) -> None:
        if any(isinstance(o, AuditEvent) for o in session.new):
            raise RuntimeError("disk full")

    event.listen(Session, "before_flush", fail_on_audit)
    try:
        with pytest.raises(RuntimeError):
            send(world, patient)
    finally:
        event.remove(Session, "before_flush", fail_on_audit)
    db.session.remove()
    assert {m: count(m) for m in before} == before


def test_a_failure_during_a_status_change_rolls_back_event_task_and_job(world):
    referral = send(world, make_patient(world))
    jobs_before = count(Job)

    def fail_on_job(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            raise RuntimeError("outbox unavailable")

    event.listen(db.engine, "before_cursor_execute", fail_on_job)
    try:
        with pytest.raises(RuntimeError):
            move(world, "food", referral, "accept")
    finally:
        event.remove(db.engine, "before_cursor_execute", fail_on_job)
    referral = reload(referral)
    assert referral.task.status == "requested" and referral.task.version == 1
    assert count(ReferralEvent) == 1 and count(Job) == jobs_before


class TestSendingRules:
    def test_unknown_service_is_refused(self, world):
        patient = make_patient(world)
        form = referral_form(world, service_id="3f0c4b5e-0000-4000-8000-000000000000")
        with pytest.raises(InvalidInput) as err:
            send_referral(world.actor("clinician"), patient.id, form)
        assert err.value.fields["service_id"] == ["Choose a service from the directory."]
        assert count(Referral) == 0

    def test_a_non_hipaa_recipient_needs_consent(self, world):
        patient = make_patient(world)
        form = referral_form(world)
        del form["consent_given_by"]
        with pytest.raises(InvalidInput) as err:
            send_referral(world.actor("clinician"), patient.id, form)
        assert "not a HIPAA-covered entity" in err.value.fields["consent_given_by"][0]
        assert count(Referral) == 0 and count(Consent) == 0

    def test_a_hipaa_covered_recipient_needs_no_consent(self, world):
        patient = make_patient(world, birth_date=years_ago(15), phone="+15105550177")
        form = referral_form(world, "youth", sensitive="y")
        for key in ("consent_given_by", "consent_given_by_name", "consent_method", "consent_date"):
            del form[key]
        referral = send_referral(world.actor("clinician"), patient.id, form)
        assert reload(referral).consent is None

    def test_a_parent_consents_for_a_young_child_not_the_child(self, world):
        patient = make_patient(world)
        with pytest.raises(InvalidInput) as err:
            send(world, patient, consent_given_by="patient", consent_given_by_name="Maya")
        assert "parent or guardian must give the consent" in err.value.fields["consent_given_by"][0]

    def test_an_adolescent_consents_alone_to_a_confidential_referral(self, world):
        patient = make_patient(world, birth_date=years_ago(15), phone="+15105550177")
        referral = send(
            world,
            patient,
            "youth",
            sensitive="y",
            category="stress",
            consent_given_by="patient",
            consent_given_by_name="Maya Lopez",
        )
        assert reload(referral).sensitive is True
        with pytest.raises(InvalidInput) as err:
            send(world, patient, "youth", sensitive="y", category="stress")
        assert "consented to by the adolescent" in err.value.fields["consent_given_by"][0]

    def test_the_service_must_serve_the_patients_age(self, world):
        patient = make_patient(world, birth_date=years_ago(2))
        with pytest.raises(InvalidInput) as err:
            send(world, patient, "school")
        assert err.value.fields["service_id"] == [
            "Family resource center serves ages 4–18; the patient is 2."
        ]

    @pytest.mark.parametrize(
        ("attribute", "value"),
        [("capacity_status", "no-capacity"), ("accepts_electronic_referrals", False)],
    )
    def test_a_service_not_accepting_referrals_is_refused(self, world, attribute, value):
        patient = make_patient(world)
        session = db.session()
        setattr(session.get(Service, world.service_ids["food"]), attribute, value)
        session.commit()
        with pytest.raises(InvalidInput) as err:
            send(world, patient)
        assert err.value.fields["service_id"] == [
            "Food boxes is not accepting referrals at the moment: choose another service or "
            "call them."
        ]
        assert session.scalar(select(func.count(Referral.id))) == 0

    def test_the_need_must_be_one_the_service_addresses(self, world):
        with pytest.raises(InvalidInput) as err:
            send(world, make_patient(world), category="homelessness")
        assert err.value.fields["category"] == ["This service does not address that need."]

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("note", "", "Tell the recipient what the family needs."),
            ("note", "x" * 2001, "At most 2000 characters."),
            ("priority", "yesterday", "Must be one of"),
            ("consent_date", "2999-01-01", "Consent cannot be dated in the future."),
            ("consent_date", "31/31/2020", "Use a real date."),
        ],
    )
    def test_bad_fields_get_a_message_and_nothing_is_written(self, world, field, value, message):
        patient = make_patient(world)
        with pytest.raises(InvalidInput) as err:
            send(world, patient, **{field: value})
        assert message in " ".join(err.value.fields[field])
        assert count(Referral) == 0 and count(Job) == 0

    def test_cbo_staff_cannot_send_referrals(self, world):
        patient = make_patient(world)
        with pytest.raises(Forbidden):
            send_referral(world.actor("food"), patient.id, referral_form(world))

    def test_another_clinic_cannot_refer_our_patient(self, world):
        patient = make_patient(world)
        with pytest.raises(NotFound):
            send(world, patient, who="other_clinician")


def test_inbox_lists_received_referrals_newest_first_with_new_count(world):
    first = send(world, make_patient(world, given_name="Ana"))
    second = send(world, make_patient(world, given_name="Ben"))
    send(world, make_patient(world, given_name="Cal"), "housing", consent_given_by_name="Someone")
    move(world, "food", first, "accept")

    page = inbox(world.actor("food"))
    assert [t.referral_id for t in page.tasks] == [second.id, first.id]
    assert page.new_count == 1 and page.total == 2
    accepted = inbox(world.actor("food"), "accepted")
    assert [t.referral_id for t in accepted.tasks] == [first.id]
    with pytest.raises(Forbidden):
        inbox(world.actor("clinician"))


def test_sent_referrals_split_open_overdue_and_closed(world):
    patient = make_patient(world)
    waiting = send(world, patient)
    answered = send(world, patient, "housing")
    closed = send(world, patient, "school")
    move(world, "housing", answered, "accept")
    move(world, "school", closed, "decline", reason="not-eligible")
    actor = world.actor("clinician")

    def ids(bucket, **kw):
        return {r.id for r in sent_referrals(actor, bucket, **kw)}

    assert ids("open") == {waiting.id, answered.id}
    assert ids("closed") == {closed.id}
    assert ids("overdue") == set()
    a_week_later = utcnow() + timedelta(days=7)
    assert ids("overdue", now=a_week_later) == {waiting.id}
    assert ids("open", mine=True) == ids("open", mine=False)
    assert sent_referrals(world.actor("clinician2"), "open", mine=True) == []
    assert {r.id for r in sent_referrals(world.actor("clinician2"), "open", mine=False)} == {
        waiting.id,
        answered.id,
    }


def test_patient_referrals_are_only_those_our_clinic_sent(world):
    patient = make_patient(world)
    mine = send(world, patient)
    assert [r.id for r in patient_referrals(world.actor("clinician"), patient)] == [mine.id]
    assert patient_referrals(world.actor("other_clinician"), patient) == []
