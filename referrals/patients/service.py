"""Use cases for patients: register, find, open. Only the registering clinic's people see them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import transaction
from referrals.errors import Forbidden, InvalidInput, NotFound
from referrals.forms import load
from referrals.patients.models import Guardian, Patient
from referrals.patients.schemas import PatientSchema

SEARCH_LIMIT = 50


def _require_clinic(actor: Actor) -> None:
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only clinic staff who send referrals can see the clinic's patients.")


class LikelyDuplicate(InvalidInput):
    """The clinic has a patient with the same name and birth date already."""

    def __init__(self, existing: list[Patient]) -> None:
        super().__init__(
            "This patient may be registered already: open the existing record, or confirm "
            "that this is a different person.",
            {"confirm_new": ["Same name and birth date as a patient on record."]},
        )
        self.existing = existing


def register_patient(actor: Actor, form: Mapping[str, object]) -> Patient:
    """Add a patient (and a guardian, if given) to the actor's clinic. A likely duplicate
    (same name and birth date in the clinic) is refused unless the form confirms it is not."""
    _require_clinic(actor)
    data = load(PatientSchema(), form)
    with transaction() as session:
        patient = add_patient(session, actor, data)
    return patient


def add_patient(session: Session, actor: Actor, data: dict) -> Patient:
    """A patient from checked PatientSchema data, with its guardian, in the caller's transaction.
    A likely duplicate (same name and birth date in the clinic) is refused unless the data
    confirm it is not."""
    if not data["confirm_new"]:
        existing = list(
            session.scalars(
                select(Patient).where(
                    Patient.organization_id == actor.org_id,
                    Patient.birth_date == data["birth_date"],
                    func.lower(Patient.given_name) == data["given_name"].lower(),
                    func.lower(Patient.family_name) == data["family_name"].lower(),
                )
            )
        )
        if existing:
            raise LikelyDuplicate(existing)
    patient = Patient(
        id=uuid.uuid4(),
        organization_id=actor.org_id,
        mrn=data["mrn"],
        given_name=data["given_name"],
        family_name=data["family_name"],
        birth_date=data["birth_date"],
        gender=data["gender"],
        phone=data["phone"],
        language=data["language"],
        zip_code=data["zip_code"],
        created_by_id=actor.user_id,
    )
    session.add(patient)
    if data["guardian_name"]:
        session.add(
            Guardian(
                patient=patient,
                name=data["guardian_name"],
                relationship_code=data["guardian_relationship"],
                phone=data["guardian_phone"],
                language=data["guardian_language"] or data["language"],
            )
        )
    session.flush()
    audit.record(session, actor, "patient.create", "Patient", patient.id, patient_id=patient.id)
    return patient


def find_patients(actor: Actor, query: str = "") -> list[Patient]:
    """The clinic's patients whose name or record number starts with the query, newest first."""
    _require_clinic(actor)
    with transaction() as session:
        stmt = select(Patient).where(Patient.organization_id == actor.org_id)
        words = query.strip().lower().split()[:3]
        for word in words:
            like = f"{word}%"
            stmt = stmt.where(
                or_(
                    func.lower(Patient.given_name).like(like),
                    func.lower(Patient.family_name).like(like),
                    func.lower(Patient.mrn).like(like),
                )
            )
        patients = list(
            session.scalars(stmt.order_by(Patient.created_at.desc()).limit(SEARCH_LIMIT))
        )
        audit.record(
            session,
            actor,
            "patient.search",
            "Patient",
            detail={"results": len(patients), "filtered": bool(words)},
        )
    return patients


def get_patient(actor: Actor, patient_id: uuid.UUID) -> Patient:
    """One of the clinic's patients, or NotFound (also for another organisation's patient)."""
    with transaction() as session:
        patient = session.get(Patient, patient_id)
        if (
            patient is None
            or patient.organization_id != actor.org_id
            or not actor.can(Permission.SEND_REFERRALS)
        ):
            audit.deny(session, actor, "patient.view", "Patient", patient_id)
            raise NotFound("No such patient in your organisation.")
        audit.record(session, actor, "patient.view", "Patient", patient.id, patient_id=patient.id)
    return patient
