"""Exchange peers (the health information exchange, or another FHIR system a CBO works in) and
what we know of each referral's copy there (its sync state)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import Organization
from referrals.db import Base, utcnow


class ExchangePeer(Base):
    """A FHIR server we exchange referrals with, and how: we authenticate to it with SMART
    Backend Services (our key, its token endpoint, the client id it gave us); we push our
    referrals' changes to it, and follow the Tasks it holds by polling."""

    __tablename__ = "exchange_peers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    base_url: Mapped[str] = mapped_column(String(500))  # its FHIR base, .../fhir
    token_url: Mapped[str] = mapped_column(String(500), default="")  # "" = discover it
    client_id: Mapped[str] = mapped_column(String(200))  # who we are there
    scope: Mapped[str] = mapped_column(String(500), default="system/*.read system/*.write")
    push: Mapped[bool] = mapped_column(default=True)
    poll: Mapped[bool] = mapped_column(default=False)
    # Subscribing (Subscriptions Backport, rest-hook, id-only): the peer tells us when its
    # Tasks change; we read each and mirror it. `topic` "" = the Task topic its
    # CapabilityStatement names. The peer sends our secret back with each notification.
    subscribe: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    topic: Mapped[str] = mapped_column(String(500), default="", server_default="")
    subscription_id: Mapped[str | None] = mapped_column(String(64))
    subscription_status: Mapped[str] = mapped_column(String(20), default="", server_default="")
    notify_secret_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    last_event_number: Mapped[int] = mapped_column(default=0, server_default="0")
    active: Mapped[bool] = mapped_column(default=True)
    # Polling: where the last pass got to (the newest Task.meta.lastUpdated seen there).
    poll_cursor: Mapped[str] = mapped_column(String(40), default="")
    last_polled_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organizations: Mapped[list[PeerOrganization]] = relationship(
        back_populates="peer", lazy="selectin", cascade="all, delete-orphan"
    )


class PeerOrganization(Base):
    """An organisation of our directory the peer serves. With a `remote_id`, the organisation
    works on the peer (a CBO on its own system): our referrals to it are sent there and its
    Tasks followed there. Without, it works here and the peer is told of its referrals."""

    __tablename__ = "exchange_peer_organizations"
    __table_args__ = (UniqueConstraint("peer_id", "organization_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    peer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exchange_peers.id"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    remote_id: Mapped[str | None] = mapped_column(String(64))  # Organization/<id> there

    peer: Mapped[ExchangePeer] = relationship(back_populates="organizations")
    organization: Mapped[Organization] = relationship(lazy="joined")


class ExchangeLink(Base):
    """One referral's copy on one peer: the ids the peer gave what we sent, the Task version we
    last saw there, when we last pushed, and the last error."""

    __tablename__ = "exchange_links"
    __table_args__ = (
        UniqueConstraint("peer_id", "referral_id"),
        Index("ix_exchange_links_remote_task", "peer_id", "remote_task_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    peer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exchange_peers.id"))
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    remote_patient_id: Mapped[str | None] = mapped_column(String(64))
    remote_request_id: Mapped[str | None] = mapped_column(String(64))
    remote_task_id: Mapped[str | None] = mapped_column(String(64))
    remote_version: Mapped[str | None] = mapped_column(String(20))  # the peer's Task version
    pushed_version: Mapped[int | None]  # our Task version the peer has
    pushed_at: Mapped[datetime | None]
    pulled_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_at: Mapped[datetime | None]

    peer: Mapped[ExchangePeer] = relationship(lazy="joined")
