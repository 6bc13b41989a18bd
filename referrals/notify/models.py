"""Messages to families, the numbers we text (opted out or not, introduced or not), the pace of
each sender, and the replies families send."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from referrals.db import Base, utcnow

# queued -> sending -> sent(provider id) -> delivered | undelivered | failed;
# or skipped (nobody to text, or not allowed) / expired (too late to be useful).
QUEUED, SENDING, SENT, DELIVERED, UNDELIVERED, FAILED = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
)
SKIPPED, EXPIRED = "skipped", "expired"
FINAL = frozenset({DELIVERED, UNDELIVERED, FAILED, SKIPPED, EXPIRED})
# A status callback only ever moves a message forward.
STATUS_RANK = {QUEUED: 0, SENDING: 1, SENT: 2, DELIVERED: 3, UNDELIVERED: 3, FAILED: 3}


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # One notice per referral event: a job run twice finds the row and sends nothing twice.
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral_events.id"), unique=True)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    recipient_kind: Mapped[str] = mapped_column(String(16))  # patient | guardian | none
    to_phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164; never logged
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text, default="")
    encoding: Mapped[str] = mapped_column(String(8), default="", server_default="")
    segments: Mapped[int] = mapped_column(default=0, server_default="0")
    gateway: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(64), default="", server_default="")
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str] = mapped_column(String(200), default="")
    # The provider's id: never two messages with the same one (a look-up never takes a text
    # another message owns).
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    not_before: Mapped[datetime | None]  # held back by quiet hours until then
    slot_at: Mapped[datetime | None]  # the sender's turn it reserved (pacing)
    expires_at: Mapped[datetime | None]  # not sent by then: expired
    sending_at: Mapped[datetime | None]  # the last hand-over to the provider began
    handed_over_at: Mapped[datetime | None]  # the first one began: a look-up starts there
    # A hand-over's answer never came (the worker stopped, or the provider did not answer in
    # time): the provider may hold a copy we do not know of.
    uncertain: Mapped[bool] = mapped_column(default=False, server_default=false())
    sent_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]  # the provider's last word on it


class SmsNumber(Base):
    """A phone number we text: whether it opted out (STOP) and when it first heard from us."""

    __tablename__ = "sms_numbers"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)  # E.164
    opted_out: Mapped[bool] = mapped_column(default=False)
    keyword: Mapped[str] = mapped_column(String(16), default="")  # the last STOP/START word
    changed_at: Mapped[datetime | None]
    introduced_at: Mapped[datetime | None]  # the first text to it named us and STOP
    # The one message to this number on its way: handed to the provider at least once and not
    # settled yet (sent, failed...). The next one waits for it; after an uncertain one, no
    # hand-over before `rest_until`.
    sending_id: Mapped[uuid.UUID | None]
    rest_until: Mapped[datetime | None]


class SmsSender(Base):
    """The next moment a sender (a From number or Messaging Service) may send: the pace."""

    __tablename__ = "sms_senders"

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_slot_at: Mapped[datetime]


class InboundMessage(Base):
    """A text a family sent us, kept once per provider id (webhooks are retried)."""

    __tablename__ = "inbound_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[str] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(20), index=True)
    body: Mapped[str] = mapped_column(Text, default="")
    keyword: Mapped[str] = mapped_column(String(16), default="")  # stop | start | help | ""
    referral_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("referrals.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
