"""Sending a family's notice for one referral event. Runs in the worker as the `sms.notice` job."""

from __future__ import annotations

import uuid

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from referrals import audit, jobs
from referrals.auth.actor import Actor
from referrals.db import utcnow
from referrals.loop.models import Referral, ReferralEvent
from referrals.notify.gateways import make_gateway
from referrals.notify.models import Message
from referrals.notify.texts import STEPS, Skip, choose_recipient, notice_text, text_language
from referrals.terminology import california_today

SYSTEM = Actor.system("notice sender")


@jobs.handler("sms.notice")
def send_notice(session: Session, payload: dict) -> None:
    """Send (at most once) the notice a referral event calls for, or record why none goes."""
    event = session.get(ReferralEvent, uuid.UUID(payload["event_id"]))
    if event is None:
        raise jobs.PermanentJobError("the referral event no longer exists")
    message = session.scalar(select(Message).where(Message.event_id == event.id))
    if message is not None and message.status in {"sent", "skipped"}:
        return
    referral = session.get(Referral, event.referral_id)
    assert referral is not None
    gateway = make_gateway(current_app.config["SETTINGS"].sms_gateway)
    if message is None:
        message = _prepare(session, event, referral, gateway.name)
        session.add(message)
        # The row exists before the provider is called: a rerun finds it.
        session.commit()
    if message.status == "skipped":
        return
    message.provider_id = gateway.send(message.to_phone or "", message.body)
    message.status, message.sent_at = "sent", utcnow()
    audit.record(
        session,
        SYSTEM,
        "sms.sent",
        "Message",
        message.id,
        patient_id=referral.patient_id,
        detail={"referral_id": str(referral.id), "recipient": message.recipient_kind},
    )


def _prepare(session: Session, event: ReferralEvent, referral: Referral, gateway: str) -> Message:
    patient = referral.patient
    base = dict(
        id=uuid.uuid4(),
        event_id=event.id,
        referral_id=referral.id,
        gateway=gateway,
        language=patient.language,
    )
    if referral.consent is not None and not referral.consent.active:
        return Message(
            **base,
            recipient_kind="none",
            status="skipped",
            skip_reason="The family withdrew its consent to share.",
        )
    if event.to_status not in STEPS:
        return Message(
            **base,
            recipient_kind="none",
            status="skipped",
            skip_reason=f"No notice is sent for “{event.to_status}”.",
        )
    contact = choose_recipient(
        birth_date=patient.birth_date,
        today=california_today(),
        patient_phone=patient.phone,
        patient_language=patient.language,
        guardians=[(g.phone, g.language) for g in patient.guardians],
        sensitive=referral.sensitive,
        contact_prohibited=referral.contact_prohibited,
        opted_in=patient.sms_opt_in,
        texts_allowed=referral.sms_allowed,
        chosen_phone=referral.sms_phone,
        chosen_language=referral.sms_language,
    )
    if isinstance(contact, Skip):
        return Message(**base, recipient_kind="none", status="skipped", skip_reason=contact.reason)
    body = notice_text(
        event.to_status,
        contact.language,
        org=referral.performer_org.name,
        clinic=referral.requester_org.name,
        sensitive=referral.sensitive,
    )
    base["language"] = text_language(contact.language)
    return Message(
        **base, recipient_kind=contact.kind, to_phone=contact.phone, body=body, status="sending"
    )
