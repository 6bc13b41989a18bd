"""Use cases of the referral loop: send, open, move through the lifecycle, list. The only code
that writes referrals; every entry point (pages, FHIR API, CLI) calls these."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.exc import StaleDataError

from referrals import audit, jobs
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import transaction, utcnow
from referrals.directory.models import Service
from referrals.directory.search import weekly_hours
from referrals.errors import Conflict, Forbidden, InvalidInput, NotFound
from referrals.forms import load
from referrals.loop import lifecycle
from referrals.loop.lifecycle import (
    CANCELLATION_REQUESTED_BUSINESS_STATUS,
    CONSENT_REVOKED,
    OPEN,
    STATUS_LABELS,
    TERMINAL,
    Action,
    Side,
    Status,
    Transition,
)
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.loop.overdue import business_days_before
from referrals.loop.reasons import find_reason, reason_text, reasons_for
from referrals.loop.schemas import ReferralSchema, StatusChangeSchema
from referrals.loop.summary import summary_language, week_lines
from referrals.patients.consent_rules import consent_problem, is_minor_consent, is_sensitive
from referrals.patients.models import Consent, Need, Patient
from referrals.terminology import CALIFORNIA, CONSENT_SCOPE, california_today

PAGE_SIZE = 25
NOTICE_JOB = "sms.notice"


@dataclass
class ReferralView:
    """A referral as one member may see it, with what they may do next."""

    referral: Referral
    task: Task
    side: Side
    events: list[ReferralEvent]
    actions: list[Action]

    @property
    def is_requester(self) -> bool:
        return self.side is Side.REQUESTER


@dataclass
class Page:
    tasks: list[Task]
    total: int
    page: int
    pages: int
    new_count: int


def _side(actor: Actor, referral: Referral, *, network: bool = False) -> Side | None:
    if actor.role is None or actor.org_kind is None:
        return None
    side = lifecycle.side_of(
        actor.role,
        actor.org_kind,
        is_requester_org=referral.requester_org_id == actor.org_id,
        is_owner_org=referral.task.owner_org_id == actor.org_id,
    )
    # Network admins see metrics and the trail, not clinical content (DESIGN §7); they may
    # only correct a referral (entered-in-error) without reading it.
    return None if side is Side.NETWORK and not network else side


def _load(
    session: Session, actor: Actor, referral_id: uuid.UUID, action: str, *, network: bool = False
) -> tuple[Referral, Side]:
    referral = session.get(Referral, referral_id)
    side = _side(actor, referral, network=network) if referral is not None else None
    if referral is None or side is None:
        audit.deny(session, actor, action, "Referral", referral_id)
        raise NotFound("No such referral among those your organisation sent or received.")
    return referral, side


def _event(
    session: Session, actor: Actor, referral: Referral, transition: Transition | None, **fields
) -> ReferralEvent:
    event = ReferralEvent(
        id=uuid.uuid4(),
        referral_id=referral.id,
        at=utcnow(),
        actor_user_id=actor.user_id,
        actor_name=actor.user_name,
        actor_org_id=actor.org_id,
        actor_org_name=actor.org_name,
        action=transition.event if transition else fields.pop("action"),
        from_status=transition.from_status.value if transition else None,
        to_status=transition.to_status.value if transition else fields.pop("to_status"),
        **fields,
    )
    session.add(event)
    session.flush()
    return event


def add_timeline_event(
    session: Session, actor: Actor, referral: Referral, action: str, note: str
) -> ReferralEvent:
    """An entry on a referral's timeline that changes nothing else (a text not delivered, a
    reply from the family), in the caller's transaction, audited."""
    event = _event(
        session, actor, referral, None, action=action, to_status=referral.task.status, note=note
    )
    audit.record(
        session,
        actor,
        f"referral.{action}",
        "Referral",
        referral.id,
        patient_id=referral.patient_id,
    )
    return event


# Called in the transaction of every referral event that notifies (sent, a status move):
# other packages (the exchange) register here to enqueue their own outbox jobs.
ChangeListener = Callable[[Session, ReferralEvent], None]
CHANGE_LISTENERS: list[ChangeListener] = []


def _notify(session: Session, event: ReferralEvent) -> None:
    for listener in CHANGE_LISTENERS:
        listener(session, event)
    jobs.enqueue(
        session,
        NOTICE_JOB,
        {"event_id": str(event.id)},
        f"{NOTICE_JOB}:{event.id}",
        max_attempts=current_app.config["SETTINGS"].job_max_attempts,
    )


def send_referral(actor: Actor, patient_id: uuid.UUID, form: Mapping[str, object]) -> Referral:
    """Refer a patient to a directory service: ServiceRequest, consent and a requested Task."""
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only clinic staff can send referrals.")
    data = load(ReferralSchema(), form)
    with transaction() as session:
        patient = session.get(Patient, patient_id)
        if patient is None or patient.organization_id != actor.org_id:
            audit.deny(session, actor, "referral.create", "Patient", patient_id)
            raise NotFound("No such patient in your organisation.")
        service = session.get(Service, data["service_id"])
        if service is None or not service.active:
            raise InvalidInput(
                "That service is not in the directory.",
                {"service_id": ["Choose a service from the directory."]},
            )
        problems = _referral_problems(data, patient, service, california_today())
        if problems:
            raise InvalidInput("The referral cannot be sent yet.", problems)
        recipient = service.organization
        consent = None
        if data["consent_given_by"]:
            consent = Consent(
                id=uuid.uuid4(),
                patient_id=patient.id,
                recipient_org_id=recipient.id,
                granted_by=data["consent_given_by"],
                granted_by_name=data["consent_given_by_name"],
                method=data["consent_method"],
                # A date typed in California: midnight there, not in UTC.
                granted_at=datetime.combine(data["consent_date"], time(), tzinfo=CALIFORNIA),
                scope=list(CONSENT_SCOPE),
                recorded_by_id=actor.user_id,
            )
            session.add(consent)
        referral = _new_referral(
            session,
            actor,
            patient,
            service,
            consent=consent,
            category=data["category"] or service.categories[0],
            priority=data["priority"],
            note=data["note"],
            # Sensitive when the clinician says so (a minor-consent service) or the directory
            # flags the service (partner violence, reproductive health...): either way no
            # guardian is notified and no text names it.
            sensitive=is_sensitive(
                marked=data["sensitive"],
                service_sensitive=service.sensitive,
                domain=data["category"] or service.categories[0],
            ),
            contact_prohibited=data["contact_prohibited"],
        )
    return referral


def _new_referral(
    session: Session,
    actor: Actor,
    patient: Patient,
    service: Service,
    *,
    consent: Consent | None,
    category: str,
    priority: str,
    note: str,
    sensitive: bool,
    contact_prohibited: bool,
    need: Need | None = None,
    sms_allowed: bool = True,
    sms_phone: str | None = None,
    sms_language: str | None = None,
    intent: str = "order",
    requester_name: str = "",
    code: tuple[str, str] | None = None,
    based_on: str = "",
    part_of: str = "",
) -> Referral:
    """A ServiceRequest and its requested Task, the "sent" event, its audit entry and the
    family's notice: everything one referral writes, in the caller's transaction."""
    recipient = service.organization
    now = utcnow()
    referral = Referral(
        id=uuid.uuid4(),
        patient_id=patient.id,
        requester_org_id=actor.org_id,
        requester_user_id=actor.user_id,
        requester_name=requester_name[:200],
        based_on=based_on[:500],
        performer_org_id=recipient.id,
        service_id=service.id,
        consent=consent,
        need_id=need.id if need else None,
        intent=intent,
        category=category,
        # What is asked: the service's code, or the one the sender's order names.
        code=code[0][:32] if code else service.service_code,
        code_display=code[1][:200] if code else service.service_display,
        priority=priority,
        note=note,
        sensitive=sensitive,
        contact_prohibited=contact_prohibited,
        sms_allowed=sms_allowed,
        sms_phone=sms_phone,
        sms_language=sms_language,
        created_at=now,
        updated_at=now,
    )
    referral.task = Task(
        id=uuid.uuid4(),
        owner_org_id=recipient.id,
        requester_org_id=actor.org_id,
        status=Status.REQUESTED.value,
        authored_on=now,
        updated_at=now,
        part_of=part_of[:500],
    )
    session.add(referral)
    session.flush()
    event = _event(
        session,
        actor,
        referral,
        None,
        action=Action.SEND.value,
        to_status=Status.REQUESTED.value,
        note="",
    )
    audit.record(
        session,
        actor,
        "referral.create",
        "Referral",
        referral.id,
        patient_id=patient.id,
        detail={
            "recipient_org_id": str(recipient.id),
            "consent": consent is not None,
            "need_id": str(need.id) if need else None,
        },
    )
    _notify(session, event)
    return referral


def service_problem(service: Service, age: int) -> str | None:
    """Why this service cannot take a referral for a patient of this age now, if it cannot."""
    if not service.active:
        return f"{service.name} is no longer in the directory."
    if not service.accepts_electronic_referrals or service.capacity_status == "no-capacity":
        return (
            f"{service.name} is not accepting referrals at the moment: choose another service "
            "or call them."
        )
    if not service.serves_age(age):
        low = service.minimum_age if service.minimum_age is not None else 0
        high = f"–{service.maximum_age}" if service.maximum_age is not None else "+"
        return f"{service.name} serves ages {low}{high}; the patient is {age}."
    return None


def _referral_problems(data: dict, patient: Patient, service: Service, today: date) -> dict:
    """Field messages for a referral that breaks a rule; empty when it may be sent."""
    problems: dict[str, list[str]] = {}
    age = patient.age(today)
    problem = service_problem(service, age)
    if problem:
        problems["service_id"] = [problem]
    if data["category"] and data["category"] not in service.categories:
        problems["category"] = ["This service does not address that need."]
    needs_consent = not service.organization.hipaa_covered
    giver = data["consent_given_by"]
    if giver is None:
        if needs_consent:
            problems["consent_given_by"] = [
                f"{service.organization.name} is not a HIPAA-covered entity: record the family's "
                "consent to share this referral with it."
            ]
    else:
        if not data["consent_given_by_name"]:
            problems["consent_given_by_name"] = ["Who gave the consent?"]
        if not data["consent_method"]:
            problems["consent_method"] = ["How was the consent given?"]
        if not data["consent_date"]:
            problems["consent_date"] = ["When was the consent given?"]
        minor_consent = is_minor_consent(
            marked=data["sensitive"], domain=data["category"] or service.categories[0], age=age
        )
        problem = consent_problem(age=age, giver=giver, sensitive=minor_consent)
        if problem:
            problems["consent_given_by"] = [problem]
    return problems


def open_referral(actor: Actor, referral_id: uuid.UUID) -> ReferralView:
    """A referral with its timeline, for a member of the sending or receiving organisation."""
    with transaction() as session:
        referral, side = _load(session, actor, referral_id, "referral.view")
        events = list(
            session.scalars(
                select(ReferralEvent)
                .where(ReferralEvent.referral_id == referral.id)
                .order_by(ReferralEvent.at, ReferralEvent.id)
            )
        )
        audit.record(
            session,
            actor,
            "referral.view",
            "Referral",
            referral.id,
            patient_id=referral.patient_id,
        )
        task = referral.task
        actions = lifecycle.available_actions(Status(task.status), side)
    return ReferralView(referral, task, side, events, actions)


def change_referral(actor: Actor, referral_id: uuid.UUID, form: Mapping[str, object]) -> Task:
    """Make one lifecycle move (or add a progress note) on a referral, from a submitted form."""
    data = load(StatusChangeSchema(), form)
    action = Action(data["action"])
    with transaction() as session:
        referral, side = _load(
            session,
            actor,
            referral_id,
            f"referral.{action.value}",
            network=action is Action.ENTER_IN_ERROR,
        )
        task = referral.task
        if action is not Action.NOTE and task.version != data["version"]:
            raise _conflict(session, referral)
        reason = ""
        reasons = reasons_for(action)
        if reasons:
            if find_reason(action, data["reason"]) is None:
                raise InvalidInput("Pick a reason.", {"reason": ["Pick a reason from the list."]})
            reason = reason_text(action, data["reason"], data["reason_detail"])
        output = None
        if action is Action.COMPLETE and data["output_code"]:
            output = next(
                (p for p in referral.service.procedure_codes if p["code"] == data["output_code"]),
                None,
            )
            if output is None:
                raise InvalidInput(
                    "Pick what was provided.",
                    {"output_code": ["Pick one of this service's outcomes."]},
                )
        transition = lifecycle.decide(
            Status(task.status),
            action,
            side,
            reason=reason,
            has_output=output is not None,
            note=data["note"] or (data["business_status"] or ""),
        )
        now = utcnow()
        if transition.changes_status:
            task.status = transition.to_status.value
            task.status_reason = reason
            task.status_reason_code = data["reason"] or None
            task.status_action = action.value
            if transition.to_status in TERMINAL:
                task.closed_at = now
            if action in {Action.ACCEPT, Action.DECLINE} and task.responded_at is None:
                task.responded_at = now
        cancel_was_requested = task.business_status == CANCELLATION_REQUESTED_BUSINESS_STATUS
        if transition.business_status is not None:
            task.business_status = transition.business_status
        if action is Action.NOTE and data["business_status"]:
            task.business_status = data["business_status"]
        if output is not None:
            task.output_code, task.output_display = output["code"], output["display"]
            task.outcome_note = data["outcome_note"]
        if transition.service_request_status:
            referral.status = transition.service_request_status
        elif transition.to_status is Status.CANCELLED and cancel_was_requested:
            referral.status = "revoked"  # the recipient confirms the referrer's cancellation
        if session.is_modified(task):
            task.updated_at = now
        referral.updated_at = now
        try:
            session.flush()  # the version check: a concurrent update makes this fail
        except StaleDataError:
            session.rollback()
            raise _conflict(session, referral) from None
        event = _event(
            session,
            actor,
            referral,
            transition,
            reason=reason,
            reason_code=data["reason"] or None,
            note=data["note"] or data["outcome_note"],
            business_status=data["business_status"] or transition.business_status or None,
        )
        audit.record(
            session,
            actor,
            f"referral.{transition.event}",
            "Referral",
            referral.id,
            patient_id=referral.patient_id,
            detail={"from": transition.from_status.value, "to": transition.to_status.value},
        )
        if transition.changes_status:
            _notify(session, event)
    return task


def _conflict(session: Session, referral: Referral) -> Conflict:
    session.expire_all()
    last = session.scalar(
        select(ReferralEvent)
        .where(ReferralEvent.referral_id == referral.id)
        .order_by(ReferralEvent.at.desc(), ReferralEvent.id.desc())
        .limit(1)
    )
    task = session.scalar(select(Task).where(Task.referral_id == referral.id))
    status = STATUS_LABELS[Status(task.status)].lower() if task else "changed"
    who = f"{last.actor_name} ({last.actor_org_name})" if last else "Someone"
    when = last.at.astimezone(CALIFORNIA).strftime("%b %-d at %-I:%M %p") if last else "just now"
    return Conflict(
        f"{who} changed this referral at {when} while you had it open; it is now {status}. "
        "Reload the page to see the change, then try again."
    )


def inbox(actor: Actor, status: str | None = None, page: int = 1, *, refresh: bool = False) -> Page:
    """Referrals the actor's organisation received, newest first, optionally of one status.

    `refresh` is the page refreshing itself in the background: the person's opening of the
    inbox was audited already, and a screen left open would otherwise write an entry every
    30 seconds."""
    if not actor.can(Permission.WORK_REFERRALS):
        raise Forbidden("The inbox is for organisations that receive referrals.")
    with transaction() as session:
        base = select(Task).where(Task.owner_org_id == actor.org_id)
        if status:
            base = base.where(Task.status == Status(status).value)
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(1, page), pages)
        tasks = list(
            session.scalars(
                base.options(
                    joinedload(Task.referral).joinedload(Referral.requester_org),
                    joinedload(Task.referral).joinedload(Referral.patient),
                )
                .order_by(Task.authored_on.desc(), Task.id)
                .offset((page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            ).unique()
        )
        new_count = new_referral_count(session, actor)
        if not refresh:
            audit.record(
                session,
                actor,
                "inbox.view",
                "Task",
                detail={"status": status or "", "page": page, "rows": len(tasks)},
            )
    return Page(tasks, total, page, pages, new_count)


def count_new_referrals(actor: Actor) -> int:
    """How many referrals wait for the actor's organisation to accept or decline them."""
    with transaction() as session:
        return new_referral_count(session, actor)


def new_referral_count(session: Session, actor: Actor) -> int:
    return (
        session.scalar(
            select(func.count(Task.id)).where(
                Task.owner_org_id == actor.org_id, Task.status == Status.REQUESTED.value
            )
        )
        or 0
    )


BUCKETS = ("open", "overdue", "closed")


def sent_referrals(
    actor: Actor,
    bucket: str = "open",
    *,
    mine: bool = True,
    overdue_days: int = 2,
    now: datetime | None = None,
) -> list[Referral]:
    """Referrals the actor (or the actor's organisation) sent: open, overdue or closed."""
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only organisations that send referrals have a list of sent referrals.")
    if bucket not in BUCKETS:
        bucket = "open"
    now = now or utcnow()
    with transaction() as session:
        stmt = select(Referral).join(Referral.task).where(Referral.requester_org_id == actor.org_id)
        if mine:
            stmt = stmt.where(Referral.requester_user_id == actor.user_id)
        if bucket == "open":
            stmt = stmt.where(Task.status.in_([s.value for s in OPEN]))
        elif bucket == "closed":
            stmt = stmt.where(Task.status.in_([s.value for s in TERMINAL]))
        else:
            stmt = stmt.where(
                Task.status == Status.REQUESTED.value,
                Task.authored_on < business_days_before(now, overdue_days),
            )
        stmt = stmt.options(joinedload(Referral.performer_org), joinedload(Referral.requester_user))
        referrals = list(
            session.scalars(stmt.order_by(Referral.created_at.desc()).limit(200)).unique()
        )
        audit.record(
            session,
            actor,
            "referral.list",
            "Referral",
            detail={"bucket": bucket, "mine": mine, "rows": len(referrals)},
        )
    return referrals


def is_overdue(task: Task, overdue_days: int, now: datetime | None = None) -> bool:
    return task.status == Status.REQUESTED.value and task.authored_on < business_days_before(
        now or utcnow(), overdue_days
    )


def patient_referrals(actor: Actor, patient: Patient) -> list[Referral]:
    """The referrals the actor's organisation sent for one of its patients."""
    with transaction() as session:
        return list(
            session.scalars(
                select(Referral)
                .where(Referral.patient_id == patient.id, Referral.requester_org_id == actor.org_id)
                .order_by(Referral.created_at.desc())
            ).unique()
        )


def patient_consents(actor: Actor, patient: Patient) -> list[Consent]:
    """The consents to share recorded for one of the actor's clinic's patients, newest first."""
    if patient.organization_id != actor.org_id:
        return []
    with transaction() as session:
        return list(
            session.scalars(
                select(Consent)
                .where(Consent.patient_id == patient.id)
                .order_by(Consent.granted_at.desc(), Consent.created_at.desc())
            )
        )


def revoke_consent(actor: Actor, consent_id: uuid.UUID, reason: str = "") -> Consent:
    """The family withdraws a consent to share: from now on the recipient sees no more of the
    family's details for the referrals it covered, no notice goes out for them, and each
    referral's timeline says so."""
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only the clinic that recorded a consent can record its withdrawal.")
    reason = reason.strip()
    if len(reason) > 500:
        raise InvalidInput("Too long.", {"reason": ["At most 500 characters."]})
    with transaction() as session:
        consent = session.get(Consent, consent_id)
        patient = session.get(Patient, consent.patient_id) if consent else None
        if consent is None or patient is None or patient.organization_id != actor.org_id:
            audit.deny(session, actor, "consent.revoke", "Consent", consent_id)
            raise NotFound("No such consent for a patient of your organisation.")
        if not consent.active:
            raise InvalidInput(
                "This consent was withdrawn already.", {"reason": ["Withdrawn already."]}
            )
        now = utcnow()
        consent.status, consent.revoked_at, consent.revoked_by_id = "inactive", now, actor.user_id
        consent.revoked_reason = reason
        for referral in session.scalars(select(Referral).where(Referral.consent_id == consent.id)):
            referral.updated_at = now
            _event(
                session,
                actor,
                referral,
                None,
                action=CONSENT_REVOKED,
                to_status=referral.task.status,
                note=reason,
            )
        audit.record(session, actor, "consent.revoke", "Consent", consent.id, patient_id=patient.id)
    return consent


@dataclass
class SummaryItem:
    referral: Referral
    phone: str | None
    address: str
    hours: list[str]


def family_summary(actor: Actor, patient_id: uuid.UUID) -> tuple[Patient, str, list[SummaryItem]]:
    """What the family takes home: the open referrals the actor's clinic sent for the patient,
    in the language of whoever will read it (a minor's guardian, else the patient).
    Confidential referrals are never printed: a guardian may read the page."""
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only the referring clinic prints the family's summary.")
    with transaction() as session:
        patient = session.get(Patient, patient_id)
        if patient is None or patient.organization_id != actor.org_id:
            audit.deny(session, actor, "patient.summary", "Patient", patient_id)
            raise NotFound("No such patient in your organisation.")
        referrals = session.scalars(
            select(Referral)
            .join(Referral.task)
            .where(
                Referral.patient_id == patient.id,
                Referral.requester_org_id == actor.org_id,
                Referral.sensitive.is_(False),
                Task.status.in_([s.value for s in OPEN]),
            )
            .order_by(Referral.created_at)
        ).unique()
        reader = patient.language
        if patient.age(california_today()) < 18 and patient.guardians:
            reader = patient.guardians[0].language
        language = summary_language(reader)
        items = []
        for referral in referrals:
            service = referral.service
            address = service.primary_address
            phones = [p.number for p in service.phones]
            items.append(
                SummaryItem(
                    referral,
                    service.referral_contact_phone
                    or (phones[0] if phones else None)
                    or service.organization.phone,
                    f"{address.address_1}, {address.city} {address.postal_code}" if address else "",
                    week_lines(weekly_hours(service.schedules), language),
                )
            )
        audit.record(
            session,
            actor,
            "patient.summary",
            "Patient",
            patient.id,
            patient_id=patient.id,
            detail={"referrals": len(items)},
        )
    return patient, language, items
