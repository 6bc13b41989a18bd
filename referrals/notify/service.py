"""Family text messages: the `sms.notice` job that sends a referral event's notice, and what
Twilio tells us back (delivery statuses, replies).

Every notice is handed to the provider exactly once and carries its own provider id, or fails
visibly on the referral's timeline. A notice's Message row is written before anything leaves,
and moves queued -> sending -> sent -> delivered | undelivered | failed. Each move is committed
before the provider is called, so no database transaction is held open across the network.

A provider takes no key of ours that would make a second hand-over harmless, so:
- only one notice to a number is `sending` (possibly at the provider) at a time: the number's
  row names it, and the next notice to that number waits until it is settled;
- a notice found `sending` (its worker died, or the provider's answer never came) is looked up
  at the provider before it is handed over again: only texts to that number with its body,
  from our sender, made since its first hand-over and owned by no other notice can be it;
- a number whose last notice was settled without a certain answer rests a little before the
  next hand-over, so a copy the provider made late cannot fall in the next notice's look-up;
- the hand-over itself happens only while the worker still holds the job (`jobs.hold_lease`).
Quiet hours and the sender's pace defer the job without counting an attempt; a notice still
unsent when it stops being useful expires."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referrals import audit, jobs
from referrals.auth.actor import Actor
from referrals.config import Settings
from referrals.db import transaction, utcnow
from referrals.forms import normalize_phone
from referrals.loop.lifecycle import FAMILY_REPLIED, OPEN, TEXT_NOT_DELIVERED
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.notify.gateways import (
    OPTED_OUT,
    Gateway,
    PermanentSmsError,
    RetryableSmsError,
    error_text,
    make_gateway,
)
from referrals.notify.models import (
    EXPIRED,
    FAILED,
    FINAL,
    QUEUED,
    SENDING,
    SENT,
    SKIPPED,
    STATUS_RANK,
    UNDELIVERED,
    InboundMessage,
    Message,
    SmsNumber,
    SmsSender,
)
from referrals.notify.schedule import quiet_until, take_slot
from referrals.notify.sms_text import segments
from referrals.notify.texts import (
    Contact,
    Skip,
    choose_recipient,
    help_text,
    mask_phone,
    notice_text,
    text_language,
)
from referrals.patients.models import Guardian, Patient
from referrals.terminology import california_today

log = logging.getLogger(__name__)
SYSTEM = Actor.system("notice sender")
FAMILY = Actor.system("the family, by text")  # who a reply on the timeline is from
NOTICE_JOB = "sms.notice"
# Waiting this little for the sender's next slot is done in place; longer, the job is deferred.
PACE_SLEEP_MAX = timedelta(seconds=2)
# How far the provider's clock (and its whole-second times) may be from ours: a look-up starts
# this long before a message's first hand-over. Hosts keep time with NTP.
PROVIDER_CLOCK_SKEW = timedelta(seconds=5)
# How soon a notice waiting behind another text to the same number looks again.
FLIGHT_WAIT = timedelta(seconds=2)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})


def _settings() -> Settings:
    return current_app.config["SETTINGS"]


def _dead(session: Session, payload: dict, error: str) -> None:
    """The job gave up: the message failed, and the referral's timeline says so."""
    message = session.scalar(
        select(Message).where(Message.event_id == uuid.UUID(payload["event_id"]))
    )
    if message is None or message.status in FINAL or message.status == SENT:
        return
    maybe_sent = message.status == SENDING
    _settle(session, message, FAILED)
    message.error = error[:2000]
    _not_delivered(
        session,
        message,
        "sending failed after several tries"
        + (" (it may have reached the phone: the provider never said)" if maybe_sent else ""),
    )


@jobs.handler(NOTICE_JOB, on_dead=_dead)
def send_notice(session: Session, payload: dict) -> None:
    """Send (at most once) the notice a referral event calls for, or record why none goes."""
    event = session.get(ReferralEvent, uuid.UUID(payload["event_id"]))
    if event is None:
        raise jobs.PermanentJobError("the referral event no longer exists")
    settings = _settings()
    gateway = make_gateway(settings)
    message = session.scalar(select(Message).where(Message.event_id == event.id))
    if message is None:
        referral = session.get(Referral, event.referral_id)
        assert referral is not None
        message = _prepare(session, event, referral, gateway, settings)
        session.add(message)
        # The row exists before the provider is called: a rerun finds it.
        session.commit()
    if message.status in FINAL or message.status == SENT:
        # Settled meanwhile (a status callback said Twilio has it): the number is free.
        _free_number(session, message)
        session.commit()
        return
    deliver(session, message, gateway, settings)


def _prepare(
    session: Session, event: ReferralEvent, referral: Referral, gateway: Gateway, settings: Settings
) -> Message:
    patient = referral.patient
    base = dict(
        id=uuid.uuid4(),
        event_id=event.id,
        referral_id=referral.id,
        gateway=gateway.name,
        sender=gateway.sender,
        language=patient.language,
        created_at=utcnow(),
        expires_at=event.at + timedelta(hours=settings.sms_max_delay_hours),
    )

    def skipped(reason: str) -> Message:
        return Message(**base, recipient_kind="none", status=SKIPPED, skip_reason=reason)

    if event.to_status not in settings.sms_steps or event.action in {
        TEXT_NOT_DELIVERED,
        FAMILY_REPLIED,
    }:
        return skipped(f"No notice is sent for “{event.to_status}”.")
    contact = _recipient(referral)
    if isinstance(contact, Skip):
        return skipped(contact.reason)
    base["language"] = text_language(contact.language)
    return Message(
        **base,
        recipient_kind=contact.kind,
        to_phone=contact.phone,
        status=QUEUED,
        # The text itself is written when it goes: the first to a number introduces us.
        body="",
    )


def _recipient(referral: Referral) -> Contact | Skip:
    """Whom the referral's notices go to now, or why nobody: asked when the notice is written
    and again when it goes (consent may be withdrawn while it waits for the morning)."""
    patient = referral.patient
    if referral.consent is not None and not referral.consent.active:
        return Skip("The family withdrew its consent to share.")
    return choose_recipient(
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


def deliver(session: Session, message: Message, gateway: Gateway, settings: Settings) -> None:
    """Move one queued (or interrupted) message on: find it at the provider if it may be there,
    expire it, hold it for quiet hours or the sender's pace, or hand it over."""
    if message.status == SENDING:
        # The last hand-over's answer never came: the provider may have the text (and may have
        # told us so already, in a status callback that named this message).
        message.uncertain = True
        found = message.provider_id or _look_up(session, message, gateway)
        if found is not None:
            _sent(session, message, found)
            return
        message.status = QUEUED  # not there: it goes again (the number stays its own)
        session.commit()
    now = utcnow()
    if message.expires_at is not None and now > message.expires_at:
        _settle(session, message, EXPIRED)
        message.skip_reason = "Not sent in time to be useful."
        _not_delivered(session, message, "it could not go out in time to be useful")
        session.commit()
        return
    referral = session.get(Referral, message.referral_id)
    assert referral is not None
    session.refresh(referral)  # what changed while the notice waited
    now_to = _recipient(referral)
    if isinstance(now_to, Skip):
        _settle(session, message, SKIPPED)
        message.skip_reason = now_to.reason
        session.commit()
        return
    if now_to.phone != message.to_phone:  # the family gave another number meanwhile
        _settle(session, message, QUEUED)  # the old number is free
        message.to_phone, message.recipient_kind = now_to.phone, now_to.kind
        message.language, message.body = text_language(now_to.language), ""
        # A new number's look-ups start from the first hand-over to it.
        message.handed_over_at, message.uncertain = None, False
    number = session.get(SmsNumber, message.to_phone) if message.to_phone else None
    if number is not None and number.opted_out:
        _settle(session, message, SKIPPED)
        message.skip_reason = "The number replied STOP."
        session.commit()
        return
    until = quiet_until(
        now, settings.sms_time_zone, settings.sms_quiet_start, settings.sms_quiet_end
    )
    if until is not None:
        message.not_before = until
        session.commit()
        raise jobs.Defer(until, "quiet hours")

    _take_turn(session, message, gateway.sender, settings)
    if not _hand_over(session, message, referral, settings):
        return
    # Our id rides on the callback: a status can arrive before we have recorded Twilio's id.
    callback = f"{settings.public_base_url.rstrip('/')}/sms/status?message={message.id}"
    try:
        provider_id = gateway.send(
            message.to_phone or "",
            message.body,
            status_callback=callback if gateway.name == "twilio" else None,
            validity=settings.sms_validity_seconds,
        )
    except PermanentSmsError as err:
        _settle(session, message, FAILED)
        message.error_code = str(err.code) if err.code else None
        message.error = str(err)[:2000]
        if err.code == OPTED_OUT and message.to_phone:
            _set_opt_out(session, message.to_phone, True, "provider")
        _not_delivered(session, message, error_text(err.code))
        session.commit()
        return
    except RetryableSmsError as err:
        message.error = str(err)[:2000]
        if err.ambiguous:
            message.uncertain = True  # stays `sending`: looked up before it goes again
        else:
            message.status = QUEUED  # certainly not at the provider; the number stays its own
        session.commit()
        raise
    _sent(session, message, provider_id)


def _hand_over(session: Session, message: Message, referral: Referral, settings: Settings) -> bool:
    """Commit that the message is being handed to the provider, while this worker still holds
    the job and the number has no other text on its way: from now on it may be there. False
    when it must not go: the provider told us of it meanwhile (a late status callback)."""
    jobs.hold_lease(session)
    session.refresh(message, with_for_update=True)
    if message.provider_id is not None:
        log.warning("message %s was found at the provider meanwhile: not sent again", message.id)
        _sent(session, message, message.provider_id)
        return False
    number = _take_number(session, message)
    if not message.body or not message.uncertain:
        # Written when it first goes (the first text to a number introduces us), and kept
        # once it may be at the provider: a look-up compares the text.
        event = session.get(ReferralEvent, message.event_id)
        assert event is not None
        body = notice_text(
            event.to_status,
            message.language,
            org=referral.performer_org.name,
            clinic=referral.requester_org.name,
            sensitive=referral.sensitive,
            sender=settings.sms_sender_name,
            first=number.introduced_at is None,
        )
        counted = segments(body)
        message.body, message.encoding, message.segments = body, counted.encoding, counted.count
    now = utcnow()
    message.status, message.sending_at = SENDING, now
    message.handed_over_at = message.handed_over_at or now
    message.attempts += 1
    session.commit()  # nothing is held open while the provider is called
    return True


def _take_number(session: Session, message: Message) -> SmsNumber:
    """Make this message the one text to its number that is on its way (from its first
    hand-over until it is settled), or defer the job while another one is (or while the number
    rests after an uncertain one)."""
    number = _number(session, message.to_phone or "", lock=True)
    now = utcnow()
    holder_id = number.sending_id
    if holder_id is not None and holder_id != message.id:
        holder = session.get(Message, holder_id)
        if holder is not None and holder.status in {QUEUED, SENDING}:
            wait = max(now + FLIGHT_WAIT, _next_run(session, holder) or now)
            session.commit()
            raise jobs.Defer(wait, "another text to this number is on its way")
        # Settled without letting go (a status callback finished it first): let go now.
        _let_go(number, holder, now)
    if number.sending_id != message.id and number.rest_until and number.rest_until > now:
        until = number.rest_until
        session.commit()
        raise jobs.Defer(until, "the number rests after an uncertain text")
    number.sending_id = message.id
    return number


def _next_run(session: Session, message: Message) -> datetime | None:
    """When the job of a message runs next, if it waits."""
    job = session.scalar(
        select(jobs.Job).where(jobs.Job.dedupe_key == f"{NOTICE_JOB}:{message.event_id}")
    )
    if job is None or job.status != jobs.QUEUED:
        return None
    return job.run_after + timedelta(seconds=1)


def _let_go(number: SmsNumber, message: Message | None, now: datetime) -> None:
    """The number no longer has `message` on its way. If the message's fate at the provider
    was never certain, or it was handed over more than once, a copy may yet appear there: the
    number rests long enough that no later look-up can take that copy for its own."""
    if (
        message is not None
        and message.uncertain
        and (message.provider_id is None or message.attempts > 1)
    ):
        number.rest_until = now + 2 * PROVIDER_CLOCK_SKEW
    number.sending_id = None


def _settle(session: Session, message: Message, status: str) -> None:
    """The message is done with its number (sent, failed, expired, skipped, or going to another
    number): the number it held since its first hand-over is free again."""
    message.status = status
    if status in FINAL:
        message.status_at = utcnow()
    _free_number(session, message)


def _free_number(session: Session, message: Message) -> None:
    """The message's number no longer waits for it."""
    if message.to_phone:
        number = session.get(
            SmsNumber, message.to_phone, with_for_update=True, populate_existing=True
        )
        if number is not None and number.sending_id == message.id:
            _let_go(number, message, utcnow())


def _look_up(session: Session, message: Message, gateway: Gateway) -> str | None:
    """The provider's id of this message, if the provider has it. Only a text to this number
    with this body, from our sender, made since this message's first hand-over (less the
    clocks' possible difference) and owned by no other message can be it; the number has no
    other text on its way meanwhile, so nothing else fits."""
    _take_number(session, message)
    # A request the provider was still working on when we stopped waiting may only show up in
    # its list a little later: look once it surely would.
    ready = (message.sending_at or message.created_at) + gateway.settle_time
    if utcnow() < ready:
        session.commit()
        raise jobs.Defer(ready, "waiting until the provider would list the text")
    since = (message.handed_over_at or message.sending_at or message.created_at) - (
        PROVIDER_CLOCK_SKEW
    )
    session.commit()  # nothing is held open while the provider is asked
    candidates = gateway.find(message.to_phone or "", message.body, since)
    if not candidates:
        return None
    owned = set(
        session.scalars(
            select(Message.provider_id).where(
                Message.provider_id.in_(candidates), Message.id != message.id
            )
        )
    )
    mine = [sid for sid in candidates if sid not in owned]
    if len(mine) > 1:
        log.warning("the provider holds %d copies of message %s", len(mine), message.id)
    if owned:
        log.warning("look-up for message %s passed over texts other messages own", message.id)
    return mine[0] if mine else None


def _sent(session: Session, message: Message, provider_id: str) -> None:
    now = utcnow()
    session.refresh(message, with_for_update=True)  # a status callback may have come first
    if STATUS_RANK.get(message.status, 0) < STATUS_RANK[SENT]:
        message.status = SENT
    message.provider_id, message.sent_at, message.slot_at = provider_id, now, None
    message.error = ""
    if message.to_phone:
        number = _number(session, message.to_phone, lock=True)
        if number.introduced_at is None:
            number.introduced_at = now
        if number.sending_id == message.id:
            _let_go(number, message, now)
    referral = session.get(Referral, message.referral_id)
    audit.record(
        session,
        SYSTEM,
        "sms.sent",
        "Message",
        message.id,
        patient_id=referral.patient_id if referral else None,
        detail={
            "referral_id": str(message.referral_id),
            "recipient": message.recipient_kind,
            "segments": message.segments,
        },
    )
    session.commit()
    log.info("sms %s sent to %s", provider_id, mask_phone(message.to_phone))


def _take_turn(session: Session, message: Message, sender: str, settings: Settings) -> None:
    """Wait for this message's turn at its sender's pace: the slot it reserved before, or a new
    one. A near slot is waited for here; a far one defers the job until then."""
    now = utcnow()
    slot = message.slot_at
    if slot is None or slot < now - timedelta(minutes=5):  # none, or long missed: a new one
        row = session.get(SmsSender, sender, with_for_update=True, populate_existing=True)
        if row is None:
            try:
                with session.begin_nested():
                    row = SmsSender(sender=sender, next_slot_at=now)
                    session.add(row)
            except IntegrityError:  # another worker made it first
                row = session.get(SmsSender, sender, with_for_update=True, populate_existing=True)
        slot, row.next_slot_at = take_slot(now, row.next_slot_at, settings.sms_rate_per_second)
        message.slot_at = slot
        session.commit()
    session.commit()  # no lock is held while waiting
    wait = slot - utcnow()
    if wait > PACE_SLEEP_MAX:
        raise jobs.Defer(slot, "sender pace")
    if wait.total_seconds() > 0:
        time.sleep(wait.total_seconds())


def _number(session: Session, phone: str, *, lock: bool = False) -> SmsNumber:
    """The number's row, made if new; `lock`: held until the transaction ends."""
    # A locked read refreshes what the session holds: a row read earlier may have changed.
    number = session.get(SmsNumber, phone, with_for_update=lock or None, populate_existing=lock)
    if number is None:
        try:
            with session.begin_nested():
                number = SmsNumber(phone=phone, opted_out=False, keyword="")
                session.add(number)
        except IntegrityError:  # another worker made it first
            number = session.get(
                SmsNumber, phone, with_for_update=lock or None, populate_existing=lock
            )
            assert number is not None
    return number


def _set_opt_out(session: Session, phone: str, opted_out: bool, keyword: str) -> None:
    number = _number(session, phone)
    number.opted_out, number.keyword, number.changed_at = opted_out, keyword[:16], utcnow()


def _not_delivered(session: Session, message: Message, why: str) -> None:
    """Put a failed notice on the referral's timeline, so that staff can call instead."""
    from referrals.loop.service import add_timeline_event

    referral = session.get(Referral, message.referral_id)
    if referral is None:
        return
    who = "the parent or guardian" if message.recipient_kind == "guardian" else "the patient"
    add_timeline_event(
        session, SYSTEM, referral, TEXT_NOT_DELIVERED, f"Text to {who} not delivered: {why}."
    )


# --- what Twilio tells us ---------------------------------------------------------------------


def record_status(form: dict[str, str], message_id: str | None = None) -> bool:
    """A delivery status callback: move the message forward (never back). True when it was
    ours. Idempotent: the same callback twice changes nothing more. `message_id` is ours, from
    the callback URL: it finds a message whose Twilio id we have not recorded yet."""
    provider_id = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not provider_id or status not in STATUS_RANK:
        return False
    with transaction() as session:
        message = session.scalar(
            select(Message).where(Message.provider_id == provider_id).with_for_update()
        )
        if message is None and message_id:
            try:
                message = session.get(
                    Message, uuid.UUID(message_id), with_for_update=True, populate_existing=True
                )
            except ValueError:
                message = None
            if message is not None and message.provider_id not in {None, provider_id}:
                message = None  # ours names another text
            if message is not None:
                message.provider_id = provider_id
        if message is None:
            return False
        if STATUS_RANK[status] <= STATUS_RANK.get(message.status, 3):
            return True
        message.status, message.status_at = status, utcnow()
        if status in {UNDELIVERED, FAILED}:
            code = (form.get("ErrorCode") or "").strip() or None
            message.error_code = code
            _not_delivered(session, message, error_text(code))
    return True


def keyword_of(body: str) -> str:
    """STOP, START or HELP when the whole reply is one of their words (any case, punctuation
    around it ignored); "" for anything else."""
    word = re.sub(r"[^\w]", "", body.strip()).upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return ""


def receive_text(form: dict[str, str]) -> str | None:
    """A text from a family. STOP words opt the number out, START words back in; HELP gets
    the help text (returned, to answer with); anything else is attached to the family's latest
    open referral. Idempotent by the provider's message id."""
    provider_id = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    body = (form.get("Body") or "")[:1600]
    try:
        phone = normalize_phone(form.get("From") or "")
    except Exception:
        return None
    if not provider_id:
        return None
    keyword = keyword_of(body)
    with transaction() as session:
        seen = session.scalar(
            select(InboundMessage).where(InboundMessage.provider_id == provider_id)
        )
        language = _language_of(session, phone)
        if seen is not None:  # the provider retried the webhook
            if keyword == "help":
                return help_text(language, sender=_settings().sms_sender_name)
            return None
        inbound = InboundMessage(
            provider_id=provider_id, from_phone=phone, body=body, keyword=keyword
        )
        session.add(inbound)
        if keyword in {"stop", "start"}:
            word = re.sub(r"[^\w]", "", body).upper()
            _set_opt_out(session, phone, keyword == "stop", word)
            audit.record(
                session, SYSTEM, f"sms.{keyword}", "SmsNumber", detail={"phone": mask_phone(phone)}
            )
        elif keyword == "":
            referral = _latest_open_referral(session, phone)
            if referral is not None:
                inbound.referral_id = referral.id
                from referrals.loop.service import add_timeline_event

                add_timeline_event(session, FAMILY, referral, FAMILY_REPLIED, body)
        try:
            session.flush()
        except IntegrityError:  # the same webhook, twice at once
            session.rollback()
            return None
    if keyword == "help":
        return help_text(language, sender=_settings().sms_sender_name)
    return None


def _families(session: Session, phone: str) -> list[tuple[Patient, bool]]:
    """The patients this number belongs to: (patient, is it the patient's own number)."""
    own = list(session.scalars(select(Patient).where(Patient.phone == phone)))
    guarded = list(session.scalars(select(Patient).join(Guardian).where(Guardian.phone == phone)))
    return [(p, True) for p in own] + [(p, False) for p in guarded if p not in own]


def _language_of(session: Session, phone: str) -> str:
    guardian = session.scalar(select(Guardian).where(Guardian.phone == phone).limit(1))
    if guardian is not None:
        return guardian.language
    patient = session.scalar(select(Patient).where(Patient.phone == phone).limit(1))
    return patient.language if patient is not None else "en"


def _latest_open_referral(session: Session, phone: str) -> Referral | None:
    """The open referral a reply from this number is about: the one we last texted it about.
    A number we never texted is matched to a family only when it belongs to one patient alone
    (a number two families share says nothing about which one wrote). A confidential referral
    only ever gets replies from the patient's own number."""
    open_statuses = [s.value for s in OPEN]
    last = session.scalar(
        select(Referral)
        .join(Message, Message.referral_id == Referral.id)
        .join(Referral.task)
        .where(
            Message.to_phone == phone,
            Message.provider_id.is_not(None),
            Task.status.in_(open_statuses),
        )
        .order_by(Message.sent_at.desc())
        .limit(1)
    )
    if last is not None:
        guardian_phones = {g.phone for g in last.patient.guardians}
        owns = last.patient.phone == phone and phone not in guardian_phones
        return None if last.sensitive and not owns else last
    families = _families(session, phone)
    if len(families) != 1:
        return None
    patient, own = families[0]
    conditions = [Referral.patient_id == patient.id, Task.status.in_(open_statuses)]
    if not own:
        conditions.append(Referral.sensitive.is_(False))
    return session.scalar(
        select(Referral)
        .join(Referral.task)
        .where(*conditions)
        .order_by(Referral.created_at.desc())
        .limit(1)
    )
