"""Reading our records as FHIR resources, for an organisation's machine client: the same
organisation scoping as the pages, and every read audited.

- The clinic that holds a patient reads everything about them: Patient, the screening
  (QuestionnaireResponse, Observations), needs (Conditions) and the Goals of those the family
  wants help with, consents and its referrals.
- A recipient organisation reads what its referrals disclose: the Patient, the ServiceRequest
  and Task, the Condition a referral is for and its Goal (its progress as the recipient's own
  referrals tell it), the Consent that covers it, the Procedure it recorded. Never the
  screening answers.
- The directory (Organization, HealthcareService, Location) is readable by every client; the
  people of an organisation (PractitionerRole, one per membership) only by that
  organisation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.models import Membership, Organization
from referrals.db import transaction
from referrals.directory.models import Location, Service
from referrals.errors import NotFound
from referrals.fhir import disclosure, mapping
from referrals.loop.models import Referral, Task
from referrals.patients.models import Consent, Need, Patient, Screening, ScreeningObservation


def _not_found(session: Session, actor: Actor, resource_type: str, key: uuid.UUID) -> NotFound:
    audit.deny(session, actor, "fhir.read", resource_type, key)
    return NotFound(f"{resource_type}/{key} does not exist, or is not shared with you.")


def _referrals_of(session: Session, actor: Actor, patient_id: uuid.UUID) -> list[Referral]:
    return list(
        session.scalars(
            select(Referral).where(
                Referral.patient_id == patient_id,
                or_(
                    Referral.requester_org_id == actor.org_id,
                    Referral.performer_org_id == actor.org_id,
                ),
            )
        ).unique()
    )


def _sees_referral(actor: Actor, referral: Referral) -> bool:
    return actor.org_id in {referral.requester_org_id, referral.performer_org_id}


def _sees_patient(session: Session, actor: Actor, patient: Patient) -> bool:
    return patient.organization_id == actor.org_id or bool(
        _referrals_of(session, actor, patient.id)
    )


def _need(session: Session, actor: Actor, key: uuid.UUID) -> tuple[Need | None, list[Referral]]:
    """The need, if the actor may see it, and the referrals for it the actor may see: every one
    for the clinic that holds the patient, a recipient's own for a recipient."""
    need = session.get(Need, key)
    if need is None:
        return None, []
    patient = session.get(Patient, need.patient_id)
    if patient is not None and patient.organization_id == actor.org_id:
        return need, list(session.scalars(select(Referral).where(Referral.need_id == need.id)))
    shared = [r for r in _referrals_of(session, actor, need.patient_id) if r.need_id == need.id]
    return (need if shared else None), shared


def read(actor: Actor, resource_type: str, key: uuid.UUID, base: str) -> dict[str, Any]:
    """One resource as the actor's organisation may see it, or NotFound (audited either way:
    another organisation's data is not told apart from data that does not exist)."""
    with transaction() as session:
        resource, patient_id = _read(session, actor, resource_type, key, base)
        if resource is None:
            raise _not_found(session, actor, resource_type, key)
        audit.record(session, actor, "fhir.read", resource_type, key, patient_id=patient_id)
    return resource


def _read(
    session: Session, actor: Actor, resource_type: str, key: uuid.UUID, base: str
) -> tuple[dict[str, Any] | None, uuid.UUID | None]:
    if resource_type == "Organization":
        org = session.get(Organization, key)
        return (mapping.organization_to_fhir(org, base) if org else None), None
    if resource_type == "HealthcareService":
        service = session.get(Service, key)
        return (mapping.healthcare_service_to_fhir(service, base) if service else None), None
    if resource_type == "Location":
        location = session.get(Location, key)
        return (mapping.location_to_fhir(location, base) if location else None), None
    if resource_type == "Patient":
        patient = session.get(Patient, key)
        if patient is None or not _sees_patient(session, actor, patient):
            return None, None
        resource = mapping.patient_to_fhir(patient, base)
        shared = _referrals_of(session, actor, patient.id)
        return disclosure.patient_for(resource, patient, actor.org_id, shared), patient.id
    if resource_type in {"ServiceRequest", "Task", "Procedure"}:
        return _read_referral_part(session, actor, resource_type, key, base)
    if resource_type == "Consent":
        consent = session.get(Consent, key)
        if consent is None:
            return None, None
        patient = session.get(Patient, consent.patient_id)
        if patient is None or actor.org_id not in {
            patient.organization_id,
            consent.recipient_org_id,
        }:
            return None, None
        return mapping.consent_to_fhir(consent, base), consent.patient_id
    if resource_type == "Condition":
        need, _ = _need(session, actor, key)
        if need is None:
            return None, None
        return mapping.condition_to_fhir(need, base), need.patient_id
    if resource_type == "Goal":  # a need's, same id as its Condition
        need, referrals = _need(session, actor, key)
        if need is None or not mapping.has_goal(need):
            return None, None
        return mapping.goal_to_fhir(need, referrals, base), need.patient_id
    if resource_type == "PractitionerRole":
        membership = session.get(Membership, key)
        if membership is None or membership.organization_id != actor.org_id:
            return None, None
        return mapping.practitioner_role_to_fhir(membership, base), None
    if resource_type == "QuestionnaireResponse":
        screening = session.get(Screening, key)
        if screening is None or screening.organization_id != actor.org_id:
            return None, None  # the answers stay with the clinic that screened
        return mapping.questionnaire_response_to_fhir(screening, base), screening.patient_id
    if resource_type == "Observation":
        observation = session.get(ScreeningObservation, key)
        if observation is None:
            return None, None
        screening = session.get(Screening, observation.screening_id)
        if screening is None or screening.organization_id != actor.org_id:
            return None, None
        return mapping.observation_to_fhir(observation, base), observation.patient_id
    return None, None


def _read_referral_part(
    session: Session, actor: Actor, resource_type: str, key: uuid.UUID, base: str
) -> tuple[dict[str, Any] | None, uuid.UUID | None]:
    if resource_type == "ServiceRequest":
        referral = session.get(Referral, key)
    else:  # a Task, or the Procedure a completed Task recorded (same id as the Task)
        task = session.get(Task, key)
        referral = task.referral if task is not None else None
    if referral is None or not _sees_referral(actor, referral):
        return None, None
    if resource_type == "ServiceRequest":
        resource = mapping.service_request_to_fhir(referral, base)
        return disclosure.service_request_for(resource, referral, actor.org_id), referral.patient_id
    if resource_type == "Task":
        return mapping.task_to_fhir(referral.task, base), referral.patient_id
    if referral.task.output_code is None:
        return None, None
    return mapping.procedure_to_fhir(referral.task, base), referral.patient_id
