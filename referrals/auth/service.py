"""Signing in (argon2id hashes; limits per email address and per network that answer the same
whether an account exists or not) and managing people."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth import throttle
from referrals.auth.actor import Actor
from referrals.auth.limits import Limit, wait_in_words
from referrals.auth.models import Membership, Organization, User
from referrals.auth.roles import ROLES_BY_ORG_KIND, Role
from referrals.config import Settings
from referrals.db import transaction, utcnow
from referrals.errors import InvalidInput

MIN_PASSWORD = 12
ADDRESS_WINDOW = 86400  # seconds: an address's failed sign-ins are forgotten a day on
NOT_RIGHT = "Email or password is not right."

hasher = PasswordHasher()  # argon2id with the library's recommended parameters (RFC 9106)
# Verified when there is no account to check against, so that every answer costs the same.
_dummy_hash = hasher.hash("not-a-real-password-0000")


def install_hasher(new: PasswordHasher) -> PasswordHasher:
    """Use `new` to hash and verify passwords from now on; returns the one it replaces."""
    global hasher, _dummy_hash
    previous, hasher = hasher, new
    _dummy_hash = new.hash("not-a-real-password-0000")
    return previous


def configure_hasher(memory_kib: int, time_cost: int) -> None:
    """Set argon2id's cost (tests lower it; production keeps the defaults)."""
    install_hasher(PasswordHasher(memory_cost=memory_kib, time_cost=time_cost))


def normalise_email(email: str) -> str:
    """An email address as accounts are looked up by, and sign-ins are counted under."""
    return email.strip().lower()


@dataclass(frozen=True)
class SignInLimits:
    """How often sign-ins may fail: for one email address (escalating blocks), and from one
    network (a looser, fixed window). `secret` keys the counters' names."""

    per_address: Limit
    per_network: Limit
    secret: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInLimits:
        return cls(
            per_address=Limit(
                settings.login_max_failures,
                ADDRESS_WINDOW,
                block=settings.login_lockout_seconds,
                escalate=True,
            ),
            per_network=Limit(settings.login_ip_max_failures, settings.login_ip_window_seconds),
            secret=settings.secret_key,
        )


@dataclass(frozen=True)
class SignInAttempt:
    """What a person typed to sign in, and the network address it came from."""

    email: str
    password: str
    ip: str | None


@dataclass(frozen=True)
class SignIn:
    """The outcome: the person signed in, or a message; `retry_after` (seconds) when the
    attempt was not even checked because the address or the network is over its limit."""

    user: User | None
    error: str | None = None
    retry_after: int = 0


def authenticate(
    attempt: SignInAttempt, limits: SignInLimits, *, now: datetime | None = None
) -> SignIn:
    """Check a sign-in. Nothing in the answer, nor in the work done for it, tells whether an
    account exists: an unknown address, a wrong password and a disabled account all get the
    same message after one argon2 verification, and every address, whether an account has it
    or not, is limited the same way (then refused unchecked, with the same message)."""
    now = now or utcnow()
    email = normalise_email(attempt.email)
    address_key = throttle.throttle_key("login-address", email, limits.secret)
    checks = {address_key: limits.per_address}
    if attempt.ip:
        network_key = throttle.throttle_key(
            "login-network", throttle.network_of(attempt.ip), limits.secret
        )
        checks[network_key] = limits.per_network
    anonymous = Actor(None, attempt.email.strip()[:200], None, "", None, None, attempt.ip)
    wait = throttle.take(checks, now)
    if wait:
        with transaction() as session:
            _denied(session, anonymous, "", {"why": "throttled"})
        return SignIn(
            None,
            f"Too many sign-in attempts. Try again in {wait_in_words(wait)}.",
            retry_after=wait,
        )
    with transaction() as session:
        # Only what the check needs: loading the whole person (their memberships) would be
        # work done for existing accounts alone.
        found = session.execute(
            select(User.id, User.name, User.password_hash, User.active).where(
                func.lower(User.email) == email
            )
        ).first()
    # Outside any transaction: the verification is the slow part, and holds no lock.
    verified = _verify(found.password_hash if found else None, attempt.password)
    if found is None or not verified or not found.active:
        # A disabled account's right password is not confirmed either: that would tell
        # whoever holds a leaked password that it is right, and that the account exists.
        why = "unknown" if found is None else "wrong password" if not verified else "inactive"
        actor = anonymous
        if found is not None:
            actor = Actor(found.id, found.name, None, "", None, None, attempt.ip)
        with transaction() as session:
            _denied(session, actor, found.id if found else "", {"why": why})
        return SignIn(None, NOT_RIGHT)
    with transaction() as session:
        user = session.get(User, found.id)
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(attempt.password)
        user.last_login_at = now
        audit.record(session, actor_for(user, None, attempt.ip), "auth.login", "User", user.id)
    network = {key: limit for key, limit in checks.items() if key != address_key}
    throttle.succeeded(forget=[address_key], give_back_to=network)
    return SignIn(user)


def _verify(password_hash: str | None, password: str) -> bool:
    """One argon2 verification, against the account's hash or, without one, a stand-in."""
    try:
        return hasher.verify(password_hash or _dummy_hash, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _denied(session: Session, actor: Actor, user_id: object, detail: dict) -> None:
    audit.record(session, actor, "auth.login", "User", user_id, outcome="denied", detail=detail)


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
