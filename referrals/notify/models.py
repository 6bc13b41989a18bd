"""Messages to families: one row per notice, written before the gateway is called."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from referrals.db import Base, utcnow


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # One notice per referral event: a job run twice finds the row and sends nothing twice.
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral_events.id"), unique=True)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    recipient_kind: Mapped[str] = mapped_column(String(16))  # patient | guardian | none
    to_phone: Mapped[str | None] = mapped_column(String(20))  # E.164; never logged
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text, default="")
    gateway: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # sending | sent | failed | skipped
    skip_reason: Mapped[str] = mapped_column(String(200), default="")
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]
