"""Referrals a partner's system sends (a clinic's EHR over the FHIR API): the patient when new,
the need, the family's consent and the referral, written in one transaction by the same rules
and the same code as the pages' referral form, or refused whole.

A partner names its records with identifiers (a system and a value). Each part whose identifier
the partner's organisation has sent before is the record made then, not a new one, so a retry
of the same referral changes nothing and answers with what the first one made."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from marshmallow import fields, validate
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import db, transaction, utcnow
from referrals.directory.geo import check_zip
from referrals.directory.models import Service
from referrals.errors import Forbidden, InvalidInput, NotFound
from referrals.forms import load
from referrals.identifiers import PartnerIdentifier
from referrals.loop.models import Referral, Task
from referrals.loop.schemas import NOTE_MAX, ReferralSchema
from referrals.loop.service import _new_referral, _referral_problems
from referrals.patients.consent_rules import ADULT_AGE, is_sensitive
from referrals.patients.models import Consent, Need, Patient
from referrals.patients.schemas import PatientSchema
from referrals.patients.service import add_patient
from referrals.terminology import (
    CALIFORNIA,
    CONSENT_METHOD_LABELS,
    CONSENT_SCOPE,
    SDOH_CATEGORIES,
    california_today,
)

Identifier = tuple[str, str]  # (system, value)


class SentReferralSchema(ReferralSchema):
    """The referral form's rules, but a system may send a referral without a note."""

    note = fields.String(load_default="", validate=validate.Length(max=NOTE_MAX))
    consent_method = fields.String(
        load_default=None, validate=validate.OneOf(list(CONSENT_METHOD_LABELS))
    )


@dataclass
class PatientPart:
    """The patient: one of the clinic's on record (by id), or a new one (PatientSchema form)."""

    existing_id: uuid.UUID | None = None
    form: Mapping[str, object] | None = None
    identifiers: list[Identifier] = field(default_factory=list)


@dataclass
class NeedPart:
    """The need the referral addresses (SDOHCC-Condition), or one of the patient's on record."""

    existing_id: uuid.UUID | None = None
    domain: str = ""
    display: str = ""
    snomed: tuple[str, str] | None = None
    icd10: tuple[str, str] | None = None
    verification: str = "confirmed"
    clinical_status: str = "active"
    identifiers: list[Identifier] = field(default_factory=list)


@dataclass
class ConsentPart:
    """The family's permission to disclose to the recipient (SDOHCC-Consent)."""

    existing_id: uuid.UUID | None = None
    recipient_org_id: uuid.UUID | None = None
    given_by: str = ""  # patient | guardian; "" when not said: the patient if an adult
    given_by_name: str = ""
    method: str = "on-file"
    given_at: datetime | None = None
    active: bool = True
    identifiers: list[Identifier] = field(default_factory=list)


@dataclass
class ReferralPart:
    """What is asked of whom (SDOHCC-ServiceRequest) and the Task that carries it: the
    directory's service, or an organisation and the service code it offers; the Task's owner,
    when the partner names it, is that service's organisation."""

    service_id: uuid.UUID | None
    category: str | None
    organization_id: uuid.UUID | None = None
    service_code: str | None = None  # SNOMED CT: what is asked, kept as asked
    code_display: str | None = None
    owner_org_id: uuid.UUID | None = None
    priority: str = "routine"
    note: str = ""
    sensitive: bool = False
    contact_prohibited: bool = False
    intent: str = "order"
    requester_name: str = ""
    identifiers: list[Identifier] = field(default_factory=list)
    task_identifiers: list[Identifier] = field(default_factory=list)
    # From an intermediary: the original ServiceRequest and the Task this one is part of.
    based_on: str = ""
    part_of: str = ""


@dataclass
class IncomingReferral:
    patient: PatientPart
    referral: ReferralPart
    need: NeedPart | None = None
    consent: ConsentPart | None = None


@dataclass
class Received:
    """What the referral is made of, and which parts this request created (the others were
    made by an earlier request with the same identifiers, or were on record already)."""

    referral: Referral
    patient: Patient
    need: Need | None
    consent: Consent | None
    created: set[str] = field(default_factory=set)  # of "Patient", "Condition", ...
    # What was taken differently from what was sent, by resource type (for the answer's
    # OperationOutcome): a ZIP code that does not exist, left out.
    warnings: dict[str, list[str]] = field(default_factory=dict)


def receive_referral(actor: Actor, incoming: IncomingReferral) -> Received:
    """Write the referral a partner's system sends, or find the one an earlier identical
    request made. Two identical requests at once: one writes, the other finds its work."""
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only a clinic's system can send referrals.")
    for attempt in (1, 2):
        try:
            with transaction() as session:
                return _receive(session, actor, incoming)
        except IntegrityError:
            # A concurrent request with the same identifiers committed first: the second
            # attempt finds its records instead of writing.
            db.session.remove()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _known(
    session: Session, actor: Actor, resource_type: str, identifiers: list[Identifier]
) -> uuid.UUID | None:
    """The record of this type the organisation created with one of these identifiers."""
    if not identifiers:
        return None
    return session.scalar(
        select(PartnerIdentifier.resource_id)
        .where(
            PartnerIdentifier.organization_id == actor.org_id,
            PartnerIdentifier.resource_type == resource_type,
            tuple_(PartnerIdentifier.system, PartnerIdentifier.value).in_(identifiers),
        )
        .limit(1)
    )


def _remember(
    session: Session,
    actor: Actor,
    resource_type: str,
    resource_id: uuid.UUID,
    identifiers: list[Identifier],
) -> None:
    for system, value in dict.fromkeys(identifiers):
        session.add(
            PartnerIdentifier(
                organization_id=actor.org_id,
                resource_type=resource_type,
                resource_id=resource_id,
                system=system,
                value=value,
            )
        )


def _receive(session: Session, actor: Actor, incoming: IncomingReferral) -> Received:
    part = incoming.referral
    known = _known(session, actor, "ServiceRequest", part.identifiers) or (
        _task_referral(session, actor, part.task_identifiers)
    )
    if known is not None:
        referral = session.get(Referral, known)
        assert referral is not None
        return Received(referral, referral.patient, referral.need, referral.consent)
    created: set[str] = set()
    warnings: dict[str, list[str]] = {}
    patient = _patient(session, actor, incoming.patient, created, warnings)
    service = _service(session, part)
    if part.owner_org_id is not None and part.owner_org_id != service.organization_id:
        raise InvalidInput(
            "The Task's owner does not offer the service.",
            {"owner": [f"{service.name} is offered by {service.organization.name}."]},
        )
    need = _need(session, actor, patient, incoming.need, part, created)
    consent = _consent(session, actor, patient, service, incoming.consent, created)
    category = part.category or (need.domain if need else None)
    form: dict[str, object] = {
        "service_id": str(service.id),
        "category": category or "",
        "priority": part.priority,
        "note": part.note,
        "sensitive": "y" if part.sensitive else "",
        "contact_prohibited": "y" if part.contact_prohibited else "",
    }
    if incoming.consent is not None and consent is not None:
        form |= {
            "consent_given_by": consent.granted_by,
            "consent_given_by_name": consent.granted_by_name,
            "consent_method": consent.method,
            "consent_date": consent.granted_at.astimezone(CALIFORNIA).date().isoformat(),
        }
    data = load(SentReferralSchema(), form)
    problems = _referral_problems(data, patient, service, california_today())
    if problems:
        raise InvalidInput("The referral cannot be sent.", problems)
    domain = data["category"] or service.categories[0]
    referral = _new_referral(
        session,
        actor,
        patient,
        service,
        consent=consent,
        need=need,
        category=domain,
        priority=data["priority"],
        note=data["note"],
        sensitive=is_sensitive(
            marked=data["sensitive"], service_sensitive=service.sensitive, domain=domain
        ),
        contact_prohibited=data["contact_prohibited"],
        intent=part.intent,
        requester_name=part.requester_name,
        code=(part.service_code, part.code_display or part.service_code)
        if part.service_code
        else None,
        based_on=part.based_on,
        part_of=part.part_of,
    )
    _remember(session, actor, "ServiceRequest", referral.id, part.identifiers)
    _remember(session, actor, "Task", referral.task.id, part.task_identifiers)
    session.flush()
    created |= {"ServiceRequest", "Task"}
    return Received(referral, patient, need, consent, created, warnings)


def _service(session: Session, part: ReferralPart) -> Service:
    """The service asked for: named, or the one the organisation offers for the code (or the
    need) asked."""
    if part.service_id is not None:
        service = session.get(Service, part.service_id)
        if service is None or not service.active:
            raise InvalidInput(
                "That service is not in the directory.",
                {"service_id": ["Name a service of our directory."]},
            )
        if part.organization_id not in {None, service.organization_id}:
            raise InvalidInput(
                "The service and the organisation do not match.",
                {"service_id": [f"{service.name} is not offered by that organisation."]},
            )
        return service
    if part.organization_id is None:
        raise InvalidInput(
            "Whom is the referral for?",
            {"service_id": ["Name a HealthcareService or Organization of our directory."]},
        )
    offered = list(
        session.scalars(
            select(Service)
            .where(Service.organization_id == part.organization_id, Service.status == "active")
            .order_by(Service.name)
        )
    )
    if not offered:
        raise InvalidInput(
            "That organisation offers no service in our directory.",
            {"service_id": ["Name an organisation of our directory."]},
        )
    matching = [s for s in offered if part.service_code and s.service_code == part.service_code]
    if not matching and part.category:
        matching = [s for s in offered if part.category in s.categories]
    if len(matching) == 1 or (len(offered) == 1 and not matching):
        return (matching or offered)[0]
    names = ", ".join(f"{s.name} (HealthcareService/{s.id})" for s in (matching or offered))
    raise InvalidInput(
        "Which of the organisation's services?",
        {"service_id": [f"Name one HealthcareService: {names}."]},
    )


def _task_referral(
    session: Session, actor: Actor, identifiers: list[Identifier]
) -> uuid.UUID | None:
    task_id = _known(session, actor, "Task", identifiers)
    if task_id is None:
        return None
    return session.scalar(select(Task.referral_id).where(Task.id == task_id))


def _patient(
    session: Session,
    actor: Actor,
    part: PatientPart,
    created: set[str],
    warnings: dict[str, list[str]],
) -> Patient:
    key = part.existing_id or _known(session, actor, "Patient", part.identifiers)
    if key is None and part.form is not None and part.form.get("mrn"):
        key = session.scalar(
            select(Patient.id).where(
                Patient.organization_id == actor.org_id, Patient.mrn == part.form["mrn"]
            )
        )
    if key is not None:
        patient = session.get(Patient, key)
        if patient is None or patient.organization_id != actor.org_id:
            audit.deny(session, actor, "referral.create", "Patient", key)
            raise NotFound("No such patient in your organisation.")
        if part.existing_id is None and part.form is not None and not _same_person(patient, part):
            # An identifier or record number alone is not the person (an intermediary relays
            # for several clinics; a number is mistyped): the birth date and family name
            # must agree too.
            raise InvalidInput(
                "The record number is another patient's.",
                {"mrn": ["This identifier is on record for a different patient."]},
            )
        return patient
    if part.form is None:
        raise InvalidInput("Who is the referral for?", {"patient": ["Send the Patient."]})
    form, left_out = _partner_zip(part.form)
    patient = add_patient(session, actor, load(PatientSchema(), form))
    if left_out:
        warnings["Patient"] = left_out
    _remember(session, actor, "Patient", patient.id, part.identifiers)
    created.add("Patient")
    return patient


def _partner_zip(form: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """The partner's patient form with its ZIP code put to the directory's rule: one that is
    not a ZIP code, or does not exist, is left out with a warning (as a phone number that is
    not one is), never stored as if it were one; one outside California is the partner's own
    record and is kept, as confirmed."""
    typed = str(form.get("zip_code") or "").strip()
    if not typed:
        return dict(form), []
    found = check_zip(typed, (typed,))
    if found.refusal:
        warning = f"Patient.address.postalCode: {found.refusal.rstrip('.')}; it was not kept."
        return {**form, "zip_code": ""}, [warning]
    return {**form, "zip_code": found.code, "confirm_zip": found.code}, []


def _same_person(patient: Patient, part: PatientPart) -> bool:
    form = part.form or {}
    return str(patient.birth_date) == str(form.get("birth_date")) and (
        patient.family_name.casefold() == str(form.get("family_name") or "").casefold()
    )


def _need(
    session: Session,
    actor: Actor,
    patient: Patient,
    part: NeedPart | None,
    referral: ReferralPart,
    created: set[str],
) -> Need | None:
    if part is None:
        return None
    key = part.existing_id or _known(session, actor, "Condition", part.identifiers)
    if key is not None:
        need = session.get(Need, key)
        if need is None or need.patient_id != patient.id:
            raise NotFound("The referral's Condition is not this patient's.")
        if not need.open:
            raise InvalidInput(
                "The need was ruled out.",
                {"need": ["A referral cannot address a refuted Condition."]},
            )
        return need
    domain = part.domain or referral.category or ""
    if domain not in SDOH_CATEGORIES:
        raise InvalidInput(
            "Which social need is this?",
            {"need": ["Give the Condition an SDOH category from the SDOHCC codes."]},
        )
    if part.verification == "refuted":
        raise InvalidInput(
            "The need was ruled out.",
            {"need": ["A referral cannot address a refuted Condition."]},
        )
    now = utcnow()
    need = Need(
        id=uuid.uuid4(),
        patient_id=patient.id,
        domain=domain,
        display=(part.display or SDOH_CATEGORIES[domain])[:200],
        snomed_code=part.snomed[0] if part.snomed else None,
        snomed_display=part.snomed[1][:200] if part.snomed else None,
        icd10_code=part.icd10[0] if part.icd10 else None,
        icd10_display=part.icd10[1][:200] if part.icd10 else None,
        verification=part.verification,
        clinical_status=part.clinical_status,
        family_priority=True,
        recorded_at=now,
        decided_at=now if part.verification == "confirmed" else None,
    )
    session.add(need)
    session.flush()
    audit.record(session, actor, "need.create", "Condition", need.id, patient_id=patient.id)
    _remember(session, actor, "Condition", need.id, part.identifiers)
    created.add("Condition")
    return need


def _consent(
    session: Session,
    actor: Actor,
    patient: Patient,
    service: Service,
    part: ConsentPart | None,
    created: set[str],
) -> Consent | None:
    if part is None:
        return None
    key = part.existing_id or _known(session, actor, "Consent", part.identifiers)
    if key is not None:
        consent = session.get(Consent, key)
        if consent is None or consent.patient_id != patient.id:
            raise NotFound("The referral's Consent is not this patient's.")
        if not consent.active:
            raise InvalidInput("consent", {"consent": ["The Consent was withdrawn."]})
    else:
        if not part.active:
            raise InvalidInput(
                "Only an active consent permits the disclosure.",
                {"consent": ["The Consent is not active."]},
            )
        if part.given_at is None:
            raise InvalidInput("When was the consent given?", {"consent_date": ["Missing."]})
        given_by, given_by_name = part.given_by, part.given_by_name
        if not given_by:  # not said: the patient if an adult, else the guardian on file
            if patient.age(california_today()) >= ADULT_AGE or not patient.guardians:
                given_by, given_by_name = "patient", patient.name
            else:
                given_by, given_by_name = "guardian", patient.guardians[0].name
        consent = Consent(
            id=uuid.uuid4(),
            patient_id=patient.id,
            recipient_org_id=part.recipient_org_id,
            granted_by=given_by,
            granted_by_name=given_by_name[:200],
            method=part.method,
            granted_at=part.given_at,
            scope=list(CONSENT_SCOPE),
            recorded_by_id=actor.user_id,
        )
        session.add(consent)
        session.flush()
        audit.record(session, actor, "consent.create", "Consent", consent.id, patient_id=patient.id)
        _remember(session, actor, "Consent", consent.id, part.identifiers)
        created.add("Consent")
    if consent.recipient_org_id != service.organization_id:
        raise InvalidInput(
            "The consent is for another organisation.",
            {
                "consent": [
                    f"The Consent permits disclosure to another organisation than "
                    f"{service.organization.name}."
                ]
            },
        )
    return consent
