"""The audit trail: every view and change, hash-chained so tampering shows."""

from __future__ import annotations

from sqlalchemy import select, update

from referrals.audit import AuditEvent, verify_chain
from referrals.db import db
from referrals.loop.service import open_referral
from tests.helpers import make_patient, move, send


def entries() -> list[AuditEvent]:
    db.session.remove()
    return list(db.session().scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_views_and_changes_are_recorded_with_actor_org_target_patient_and_ip(world):
    patient = make_patient(world)
    referral = send(world, patient)
    open_referral(world.actor("food"), referral.id)
    move(world, "food", referral, "accept")

    trail = [
        (e.action, e.actor_name, e.org_name, e.target_id, e.patient_id, e.ip, e.outcome)
        for e in entries()
        if e.target_type in ("Patient", "Referral")
    ]
    assert trail[-3:] == [
        (
            "referral.create",
            "Clinician",
            "Sunrise Pediatrics",
            str(referral.id),
            patient.id,
            "127.0.0.1",
            "success",
        ),
        (
            "referral.view",
            "Food",
            "Community Food Bank",
            str(referral.id),
            patient.id,
            "127.0.0.1",
            "success",
        ),
        (
            "referral.accept",
            "Food",
            "Community Food Bank",
            str(referral.id),
            patient.id,
            "127.0.0.1",
            "success",
        ),
    ]


def test_the_chain_verifies_and_shows_an_edited_entry(world):
    send(world, make_patient(world))
    assert verify_chain(db.session()) is None
    victim = entries()[3]
    db.session().execute(
        update(AuditEvent).where(AuditEvent.id == victim.id).values(actor_name="Someone else")
    )
    db.session().commit()
    assert verify_chain(db.session()) == victim.id


def test_the_chain_shows_a_removed_entry(world):
    send(world, make_patient(world))
    victim = entries()[2]
    db.session().delete(db.session().get(AuditEvent, victim.id))
    db.session().commit()
    assert verify_chain(db.session()) == victim.id + 1


def test_audit_details_carry_no_patient_names_or_phones(world):
    patient = make_patient(world, given_name="Zebulon", phone="+15105550177")
    send(world, patient)
    for e in entries():
        text = f"{e.detail} {e.target_id} {e.actor_name}"
        assert "Zebulon" not in text and "5550177" not in text
