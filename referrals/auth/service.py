"""Signing in (argon2id hashes, lockout with growing backoff) and managing people."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.models import Membership, Organization, User
from referrals.auth.roles import ROLES_BY_ORG_KIND, Role
from referrals.db import transaction, utcnow
from referrals.errors import InvalidInput

MIN_PASSWORD = 12
hasher = PasswordHasher()  # argon2id with the library's recommended parameters (RFC 9106)
# Verified when the email is unknown, so both answers take the same time.
_dummy_hash = hasher.hash("not-a-real-password-0000")


def configure_hasher(memory_kib: int, time_cost: int) -> None:
    """Set argon2id's cost (tests lower it; production keeps the defaults)."""
    global hasher, _dummy_hash
    hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost)
    _dummy_hash = hasher.hash("not-a-real-password-0000")


@dataclass(frozen=True)
class SignIn:
    user: User | None
    error: str | None = None


def lockout_for(failures: int, max_failures: int, base_seconds: int) -> timedelta | None:
    """How long an account is locked after `failures` misses: doubling, at most one day."""
    if failures < max_failures:
        return None
    return timedelta(seconds=min(base_seconds * 2 ** (failures - max_failures), 86400))


def _denied(session: Session, actor: Actor, user_id: object, detail: dict) -> None:
    audit.record(session, actor, "auth.login", "User", user_id, outcome="denied", detail=detail)


def authenticate(
    email: str,
    password: str,
    *,
    ip: str | None,
    max_failures: int,
    lockout_seconds: int,
    now: datetime | None = None,
) -> SignIn:
    """Check a sign-in. The same message for an unknown email and a wrong password."""
    now = now or utcnow()
    wrong = SignIn(None, "Email or password is not right.")
    with transaction() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
        anonymous = Actor(None, email.strip()[:200], None, "", None, None, ip)
        if user is None:
            with contextlib.suppress(VerificationError):
                hasher.verify(_dummy_hash, password)
            _denied(session, anonymous, "", {})
            return wrong
        actor = Actor(user.id, user.name, None, "", None, None, ip)
        if user.locked_until and user.locked_until > now:
            minutes = max(1, round((user.locked_until - now).total_seconds() / 60))
            _denied(session, actor, user.id, {"why": "locked"})
            return SignIn(None, f"Too many failed attempts. Try again in {minutes} minute(s).")
        try:
            hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            user.failed_logins += 1
            lock = lockout_for(user.failed_logins, max_failures, lockout_seconds)
            if lock:
                user.locked_until = now + lock
            _denied(session, actor, user.id, {"failures": user.failed_logins})
            return wrong
        if not user.active:
            _denied(session, actor, user.id, {"why": "inactive"})
            return SignIn(None, "This account is disabled. Ask your administrator.")
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
        user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
        audit.record(session, actor, "auth.login", "User", user.id)
        return SignIn(user)


def sign_out_everywhere(actor: Actor) -> None:
    """End every session of the actor's: a copied cookie stops working too."""
    with transaction() as session:
        user = session.get(User, actor.user_id)
        if user is not None:
            user.session_version += 1
        audit.record(session, actor, "auth.logout", "User", actor.user_id)


def create_user(
    actor: Actor, *, email: str, name: str, password: str, org_name: str, role: str
) -> User:
    """Add a person and their membership of an existing organisation."""
    problems: dict[str, list[str]] = {}
    if "@" not in email or len(email) > 254:
        problems["email"] = ["A valid email address."]
    if not name.strip():
        problems["name"] = ["A name."]
    if len(password) < MIN_PASSWORD:
        problems["password"] = [f"At least {MIN_PASSWORD} characters."]
    if role not in {r.value for r in Role}:
        problems["role"] = [f"One of {', '.join(r.value for r in Role)}."]
    if problems:
        raise InvalidInput("The user cannot be created.", problems)
    with transaction() as session:
        org = organization_named(session, org_name)
        if Role(role) not in ROLES_BY_ORG_KIND[org.org_kind]:
            raise InvalidInput(
                "That role does not fit the organisation.",
                {"role": [f"A {org.kind} has no {role} members."]},
            )
        if session.scalar(select(User).where(func.lower(User.email) == email.lower())):
            raise InvalidInput("That email is taken.", {"email": ["Already registered."]})
        user = User(
            id=uuid.uuid4(),
            email=email.lower(),
            name=name.strip(),
            password_hash=hasher.hash(password),
        )
        session.add(user)
        session.add(Membership(user=user, organization_id=org.id, role=role))
        session.flush()
        audit.record(
            session,
            actor,
            "user.create",
            "User",
            user.id,
            detail={"org_id": str(org.id), "role": role},
        )
    return user


def actor_for(user: User, membership: Membership | None, ip: str | None) -> Actor:
    if membership is None:
        return Actor(user.id, user.name, None, "", None, None, ip)
    org = membership.organization
    return Actor(user.id, user.name, org.id, org.name, org.org_kind, Role(membership.role), ip)


def organization_named(session: Session, name: str) -> Organization:
    """The one organisation with exactly this name, or InvalidInput saying why not."""
    orgs = session.scalars(select(Organization).where(Organization.name == name).limit(2)).all()
    if not orgs:
        raise InvalidInput("No such organisation.", {"org": [f"No organisation “{name}”."]})
    if len(orgs) > 1:
        raise InvalidInput(
            "Several organisations have that name.",
            {"org": [f"More than one organisation is called “{name}”."]},
        )
    return orgs[0]
