"""Organisations, people and the memberships through which a person acts for an organisation."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.roles import OrgKind, Permission, Role, permissions_for
from referrals.db import Base, utcnow


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(300), index=True)  # 211 data repeats names
    kind: Mapped[str] = mapped_column(String(20))
    # Covered entities under HIPAA may receive PHI for treatment; others need consent per
    # disclosure (California DxF data sharing agreement, 45 CFR 164.506).
    hipaa_covered: Mapped[bool] = mapped_column(default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64), default="America/Los_Angeles")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Open Referral HSDS 3.1 organization fields (the directory's view of the same party)
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(500))
    year_incorporated: Mapped[int | None]
    legal_status: Mapped[str | None] = mapped_column(String(200))
    logo: Mapped[str | None] = mapped_column(String(500))
    uri: Mapped[str | None] = mapped_column(String(500))
    parent_organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # HSDS fields we have no column for (funding, required_documents, deprecated fields…),
    # kept verbatim so that an export gives back what was imported.
    hsds_extra: Mapped[dict] = mapped_column(default=dict)

    @property
    def org_kind(self) -> OrgKind:
        return OrgKind(self.kind)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # Part of every session's id: bumping it signs the person out everywhere (sign-out,
    # deactivation, password change), since sessions are signed cookies the server cannot list.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", lazy="selectin", order_by="Membership.created_at"
    )

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")
    organization: Mapped[Organization] = relationship(lazy="joined")

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(Role(self.role), self.organization.org_kind)


class ThrottleCounter(Base):
    """Attempts counted for one key (an address signing in, a network, an API client), shared
    by every process through the database. The key is a keyed hash of what it counts: no email
    or network address is kept here."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    hits: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime]
    blocked_until: Mapped[datetime | None]
    # When the counter no longer matters (its window over, no block): then it is deleted.
    expires_at: Mapped[datetime] = mapped_column(index=True)
