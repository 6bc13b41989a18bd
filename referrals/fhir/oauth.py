"""OAuth 2.0 for machine clients of the FHIR API, as SMART Backend Services (SMART App Launch
2.x, client-confidential-asymmetric): a client registers the public keys it signs with (a JWKS),
asks POST /oauth/token for an access token with a short JWT it signed (RS384 or ES384), and then
acts for its organisation with the scopes it was granted, for five minutes.

Access tokens are opaque and kept only as their SHA-256 hash; assertions are single use (their
`jti` is remembered until they expire). Every token issued or refused is on the audit trail,
never the assertion or the token themselves."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import jwt
from flask import Blueprint, Response, current_app, jsonify, request
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from referrals import audit
from referrals.auth import throttle
from referrals.auth.actor import Actor
from referrals.auth.models import Organization
from referrals.auth.roles import OrgKind, Permission, Role
from referrals.auth.service import organization_named
from referrals.db import Base, transaction, utcnow
from referrals.errors import Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"
TOKEN_LIFETIME = 300  # seconds an access token lasts
ASSERTION_MAX_LIFETIME = 300  # an assertion's exp may be at most this far in the future
CLOCK_SKEW = 30  # seconds of disagreement between the client's clock and ours we accept
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGORITHMS = ("RS384", "ES384")
MIN_RSA_BITS = 2048
MAX_KEYS = 10
MAX_ASSERTION_CHARS = 16_000
REALM = "referrals"
# One action per kind of entry on the audit trail.
TOKEN_ACTION = "oauth.token"
REGISTER_ACTION = "api_client.create"
DEACTIVATE_ACTION = "api_client.deactivate"

# Which member a machine client is like, per kind of organisation it acts for: a clinic's client
# sends referrals like a clinician, a CBO's or a school's works them like their staff. Never an
# organisation admin (listings) nor a network admin.
CLIENT_ROLES = {
    OrgKind.CLINIC: Role.CLINICIAN,
    # An intermediary sends referrals on behalf of the clinics it serves, as a clinic does.
    OrgKind.EXCHANGE: Role.CLINICIAN,
    OrgKind.CBO: Role.CBO_STAFF,
    OrgKind.SCHOOL: Role.SCHOOL_STAFF,
}

# SMART scopes: v1 system/<Type|*>.<read|write|*> and v2 system/<Type|*>.<c?r?u?d?s?>.
_SCOPE = re.compile(r"system/(\*|[A-Z][A-Za-z]{0,63})\.(read|write|\*|c?r?u?d?s?)")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
SCOPES_SUPPORTED = [
    "system/*.read",
    "system/*.write",
    "system/*.rs",
    "system/*.cud",
    "system/*.cruds",
]


# --- models -------------------------------------------------------------------------------


class ApiClient(Base):
    """A machine that calls the FHIR API for one organisation, known by its public keys."""

    __tablename__ = "api_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    jwks: Mapped[dict] = mapped_column(default=dict)  # public keys only: {"keys": [...]}
    scopes: Mapped[list] = mapped_column(default=list)  # what it may ask for
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(lazy="joined")


class ApiToken(Base):
    """An access token issued to a client: only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"), index=True)
    scopes: Mapped[list] = mapped_column(default=list)  # what it was granted
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    client: Mapped[ApiClient] = relationship(lazy="joined")


class UsedAssertion(Base):
    """An assertion's jti, kept until the assertion expires so that it cannot be replayed."""

    __tablename__ = "api_assertion_jti"

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime]


# --- errors and the actor a token stands for ---------------------------------------------------


class OAuthError(Exception):
    """A refused token request, as RFC 6749 §5.2 answers it."""

    def __init__(
        self, error: str, description: str, *, target: object = "", retry_after: int = 0
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.target = str(target)[:64]  # what the audit entry is about (a client, if known)
        self.retry_after = retry_after  # seconds, for slow_down

    @property
    def status_code(self) -> int:
        if self.error == "slow_down":
            return 429
        return 401 if self.error == "invalid_client" else 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidToken(Exception):
    """A request to the API without a usable bearer token (RFC 6750 §3)."""

    def __init__(self, description: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        self.error = error
        self.status_code = 400 if error == "invalid_request" else 401
        params = [f'realm="{REALM}"']
        if error:  # no error code when the request carried no credentials at all
            params += [f'error="{error}"', f'error_description="{description}"']
        self.www_authenticate = "Bearer " + ", ".join(params)

    def body(self) -> dict[str, str]:
        return {"error": self.error or "invalid_token", "error_description": self.description}


@dataclass(frozen=True)
class ClientActor(Actor):
    """A machine client acting for its organisation with a token's scopes. It is an Actor, so
    the services take it; user_id is None (no person), and it is never the system."""

    client_id: str = ""
    scopes: tuple[str, ...] = ()

    @property
    def is_system(self) -> bool:
        return False

    def allows(self, resource_type: str, interaction: str) -> bool:
        return allows(self.scopes, resource_type, interaction)


def client_actor(client: ApiClient, scopes: Iterable[str], ip: str | None = None) -> ClientActor:
    """The actor for a client: a clinician-like member of a clinic, staff-like of a CBO or a
    school (see CLIENT_ROLES), named after the client on the audit trail."""
    org = client.organization
    kind = org.org_kind
    return ClientActor(
        user_id=None,
        user_name=f"API client {client.name} ({client.client_id})"[:200],
        org_id=org.id,
        org_name=org.name,
        org_kind=kind,
        role=CLIENT_ROLES.get(kind),
        ip=ip,
        client_id=client.client_id,
        scopes=tuple(scopes),
    )


# --- scopes ----------------------------------------------------------------------------------


def parse_scope(scope: str) -> tuple[str, frozenset[str]] | None:
    """("Task" or "*", the v2 operations among c r u d s) for a system scope, else None."""
    match = _SCOPE.fullmatch(scope)
    if not match or not match.group(2):
        return None
    resource, perm = match.groups()
    return resource, frozenset(_V1.get(perm, perm))


def _operations(scopes: Iterable[str], resource_type: str) -> frozenset[str]:
    """What the scopes let a client do to one resource type (or to all, for "*")."""
    ops: set[str] = set()
    for scope in scopes:
        parsed = parse_scope(scope)
        if parsed and (parsed[0] == "*" or parsed[0] == resource_type):
            ops |= parsed[1]
    return frozenset(ops)


def allows(scopes: Iterable[str], resource_type: str, interaction: str) -> bool:
    """Whether the scopes permit an interaction with a resource type: "read" (read and search,
    v1 .read = v2 .rs), "write" (create, update, delete: v1 .write = v2 .cud), or v2 letters
    ("c", "u", "rs"...) for a finer check."""
    need = _V1.get(interaction, interaction) if interaction != "*" else ""
    if not need or not set(need) <= set("cruds"):
        raise ValueError(f"Not an interaction: {interaction!r} (read, write or cruds letters).")
    return set(need) <= _operations(scopes, resource_type)


def grant_scopes(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested scopes intersected with the allowed ones: a requested scope that an allowed
    one covers is granted as asked (system/Task.read under system/*.read); one broader than
    what is allowed is granted as the allowed scopes it covers (system/*.* → system/*.read)."""
    allowed = [a for a in allowed if parse_scope(a)]
    granted: list[str] = []
    for scope in requested:
        parsed = parse_scope(scope)
        if parsed is None:
            continue
        resource, ops = parsed
        # For "*", _operations counts only the allowed scopes that are "*" too.
        if ops <= _operations(allowed, resource):
            granted.append(scope)
            continue
        for scope_allowed in allowed:
            a_resource, a_ops = parse_scope(scope_allowed)  # type: ignore[misc]
            if resource in ("*", a_resource) and a_ops <= ops:
                granted.append(scope_allowed)
    return list(dict.fromkeys(granted))


def _split_scopes(scopes: str | Iterable[str]) -> list[str]:
    if isinstance(scopes, str):
        scopes = scopes.split()
    return list(dict.fromkeys(s.strip() for s in scopes if s.strip()))


# --- registering clients -----------------------------------------------------------------------


def _may_register(actor: Actor) -> bool:
    if isinstance(actor, ClientActor):
        return False
    is_system = actor.user_id is None and actor.org_id is None and actor.role is None
    return is_system or actor.can(Permission.VIEW_NETWORK)


def _key_problems(key: Any, seen: set[str]) -> list[str]:
    if not isinstance(key, dict):
        return ["Each key is a JSON object."]
    kid = key.get("kid")
    label = f"Key {kid!r}" if isinstance(kid, str) and kid else "A key"
    problems = []
    if not isinstance(kid, str) or not kid.strip():
        problems.append("Each key needs a kid.")
    elif kid in seen:
        problems.append(f"{label}: two keys have this kid.")
    else:
        seen.add(kid)
    private = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(key)
    if private:
        problems.append(f"{label} holds private or secret parts ({', '.join(sorted(private))}).")
        return problems
    if key.get("use", "sig") != "sig":
        problems.append(f"{label}: use must be sig.")
    ops = key.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        problems.append(f"{label}: key_ops must include verify.")
    kty = key.get("kty")
    if kty == "RSA":
        if key.get("alg", "RS384") != "RS384":
            problems.append(f"{label}: an RSA key must be for RS384.")
        try:
            public = RSAAlgorithm.from_jwk(key)
            if public.key_size < MIN_RSA_BITS:  # type: ignore[union-attr]
                problems.append(f"{label}: an RSA key needs at least {MIN_RSA_BITS} bits.")
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            problems.append(f"{label} is not a valid RSA public key (n, e).")
    elif kty == "EC":
        if key.get("alg", "ES384") != "ES384":
            problems.append(f"{label}: an EC key must be for ES384.")
        if key.get("crv") != "P-384":
            problems.append(f"{label}: an EC key must be on the P-384 curve (ES384).")
        else:
            try:
                ECAlgorithm.from_jwk(key)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                problems.append(f"{label} is not a valid EC public key (crv, x, y).")
    else:
        problems.append(f"{label}: kty must be RSA or EC.")
    return problems


def validate_jwks(jwks: Any) -> list[str]:
    """What is wrong with a JWKS for signing assertions (empty when it is fine)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return ['A JWKS is a JSON object with a non-empty "keys" list.']
    if len(jwks["keys"]) > MAX_KEYS:
        return [f"At most {MAX_KEYS} keys."]
    seen: set[str] = set()
    return [problem for key in jwks["keys"] for problem in _key_problems(key, seen)]


def register_client(
    actor: Actor, *, name: str, org_name: str, jwks: dict, scopes: str | Iterable[str]
) -> ApiClient:
    """Register a machine client acting for an organisation (a clinic, a CBO or a school), with
    the public keys it signs assertions with and the scopes it may ask for. Network admins and
    the command line only."""
    scopes = _split_scopes(scopes)
    if not _may_register(actor):
        with transaction() as session:
            audit.deny(session, actor, REGISTER_ACTION, "ApiClient", "")
        raise Forbidden("Only network administrators can register API clients.")
    problems: dict[str, list[str]] = {}
    if not name.strip() or len(name.strip()) > 200:
        problems["name"] = ["A name of at most 200 characters."]
    jwks_problems = validate_jwks(jwks)
    if jwks_problems:
        problems["jwks"] = jwks_problems
    bad = [s for s in scopes if parse_scope(s) is None]
    if bad or not scopes:
        problems["scopes"] = [
            "System scopes such as system/*.read, system/Task.write or system/Task.cruds"
            + (f"; not {', '.join(bad)}." if bad else ".")
        ]
    if problems:
        raise InvalidInput("The API client cannot be registered.", problems)
    with transaction() as session:
        org = organization_named(session, org_name)
        if org.org_kind not in CLIENT_ROLES:
            raise InvalidInput(
                "API clients act for a clinic, a CBO or a school.",
                {"org": [f"A {org.kind} organisation cannot have API clients."]},
            )
        client = ApiClient(
            id=uuid.uuid4(),
            client_id=str(uuid.uuid4()),
            name=name.strip(),
            organization_id=org.id,
            jwks={"keys": [dict(key) for key in jwks["keys"]]},
            scopes=scopes,
            active=True,
            organization=org,
        )
        session.add(client)
        session.flush()
        audit.record(
            session,
            actor,
            REGISTER_ACTION,
            "ApiClient",
            client.id,
            detail={"client_id": client.client_id, "org_id": str(org.id), "scopes": scopes},
        )
    return client


def deactivate_client(actor: Actor, client_id: str) -> ApiClient:
    """Stop a client: no new tokens, and the tokens it holds stop working at once."""
    if not _may_register(actor):
        with transaction() as session:
            audit.deny(session, actor, DEACTIVATE_ACTION, "ApiClient", client_id[:64])
        raise Forbidden("Only network administrators can deactivate API clients.")
    with transaction() as session:
        client = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
        if client is None:
            raise NotFound("No such API client.")
        client.active = False
        session.execute(delete(ApiToken).where(ApiToken.client_id == client.id))
        audit.record(session, actor, DEACTIVATE_ACTION, "ApiClient", client.id)
    return client


# --- the token endpoint ------------------------------------------------------------------------


def token_endpoint_url() -> str:
    """Our token URL as clients see it, which their assertions name as the audience."""
    return current_app.config["SETTINGS"].public_base_url.rstrip("/") + TOKEN_PATH


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _param(form: Mapping[str, Any], name: str) -> str | None:
    getlist = getattr(form, "getlist", None)
    if getlist is not None and len(getlist(name)) > 1:
        raise OAuthError("invalid_request", f"The {name} parameter is repeated.")
    value = form.get(name)
    return value if isinstance(value, str) and value != "" else None


def _verification_key(client: ApiClient, kid: str, alg: str) -> Any:
    """The public key the header's kid names in the client's JWKS, usable with `alg`."""
    kty = "RSA" if alg == "RS384" else "EC"
    for key in client.jwks.get("keys", []):
        if key.get("kid") != kid:
            continue
        if key.get("kty") != kty or key.get("alg", alg) != alg:
            raise OAuthError("invalid_client", f"Key {kid} is not for {alg}.", target=client.id)
        if kty == "EC" and key.get("crv") != "P-384":
            raise OAuthError("invalid_client", f"Key {kid} is not for {alg}.", target=client.id)
        return (RSAAlgorithm if kty == "RSA" else ECAlgorithm).from_jwk(key)
    raise OAuthError("invalid_client", "No registered key has that kid.", target=client.id)


def _authenticate(
    session: Session, form: Mapping[str, Any], token_url: str, now: datetime
) -> tuple[ApiClient, dict[str, Any]]:
    """The client whose assertion this is, checked (RFC 7523 §3, SMART Backend Services), and
    the assertion's claims. Raises OAuthError."""
    grant_type = _param(form, "grant_type")
    if grant_type is None:
        raise OAuthError("invalid_request", "The grant_type parameter is missing.")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
    assertion_type = _param(form, "client_assertion_type")
    assertion = _param(form, "client_assertion")
    if assertion_type is None or assertion is None:
        raise OAuthError(
            "invalid_request", "client_assertion_type and client_assertion are both needed."
        )
    if assertion_type != ASSERTION_TYPE:
        raise OAuthError("invalid_client", f"The client_assertion_type must be {ASSERTION_TYPE}.")
    if len(assertion) > MAX_ASSERTION_CHARS:
        raise OAuthError("invalid_client", "The client_assertion is too long.")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OAuthError("invalid_client", "The client_assertion is not a JWT.") from None
    claimed = unverified.get("iss")
    if not isinstance(claimed, str) or not claimed:
        raise OAuthError("invalid_client", "The assertion has no iss.")
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == claimed))
    if client is None:
        raise OAuthError("invalid_client", "Unknown client.", target=claimed)
    form_client_id = _param(form, "client_id")
    if form_client_id is not None and form_client_id != claimed:
        raise OAuthError("invalid_client", "client_id differs from the iss.", target=client.id)
    if not client.active:
        raise OAuthError("invalid_client", "The client is deactivated.", target=client.id)
    alg = header.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        raise OAuthError(
            "invalid_client", "The assertion must be signed with RS384 or ES384.", target=client.id
        )
    if "jku" in header:
        # SMART: a jku must match a JWKS URL registered for the client; we register keys only.
        raise OAuthError("invalid_client", "A jku header is not accepted.", target=client.id)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise OAuthError("invalid_client", "The assertion header has no kid.", target=client.id)
    key = _verification_key(client, kid, alg)
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=[alg],
            audience=token_url,
            issuer=client.client_id,
            subject=client.client_id,
            options={
                "require": ["iss", "sub", "aud", "exp", "jti"],
                # The times are checked below, against `now`, with our own messages.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise OAuthError(
            "invalid_client", "The signature does not verify.", target=client.id
        ) from None
    except jwt.InvalidAudienceError:
        raise OAuthError(
            "invalid_client", f"The aud must be {token_url}.", target=client.id
        ) from None
    except (jwt.InvalidIssuerError, jwt.exceptions.InvalidSubjectError):
        raise OAuthError(
            "invalid_client", "The iss and the sub must both be the client_id.", target=client.id
        ) from None
    except jwt.MissingRequiredClaimError as err:
        raise OAuthError(
            "invalid_client", f"The assertion lacks the {err.claim} claim.", target=client.id
        ) from None
    except jwt.PyJWTError:
        raise OAuthError(
            "invalid_client", "The assertion is not valid.", target=client.id
        ) from None
    now_ts = now.timestamp()
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise OAuthError("invalid_client", "The exp must be a number.", target=client.id)
    if exp <= now_ts - CLOCK_SKEW:
        raise OAuthError("invalid_client", "The assertion has expired.", target=client.id)
    if exp > now_ts + ASSERTION_MAX_LIFETIME + CLOCK_SKEW:
        raise OAuthError(
            "invalid_client",
            f"The exp must be at most {ASSERTION_MAX_LIFETIME} seconds ahead.",
            target=client.id,
        )
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if isinstance(value, int | float) and value > now_ts + CLOCK_SKEW:
            raise OAuthError("invalid_client", f"The {name} is in the future.", target=client.id)
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise OAuthError(
            "invalid_client", "The jti must be a string of 1-255 characters.", target=client.id
        )
    return client, claims


def _remember_jti(session: Session, client: ApiClient, jti: str, exp: float, now: datetime) -> None:
    """Refuse an assertion seen before; remember this one until it can no longer be used."""
    session.execute(
        delete(UsedAssertion).where(
            UsedAssertion.client_id == client.id, UsedAssertion.expires_at < now
        )
    )
    replay = OAuthError("invalid_client", "This assertion was used already.", target=client.id)
    if session.get(UsedAssertion, (client.id, jti)) is not None:
        raise replay
    expires_at = datetime.fromtimestamp(exp, now.tzinfo) + timedelta(seconds=CLOCK_SKEW)
    try:
        with session.begin_nested():  # two requests with the same assertion at once
            session.add(UsedAssertion(client_id=client.id, jti=jti, expires_at=expires_at))
    except IntegrityError:
        raise replay from None


def _endpoint_actor(ip: str | None) -> Actor:
    return replace(Actor.system("oauth token endpoint"), ip=ip)


def refuse(error: OAuthError, *, ip: str | None = None) -> OAuthError:
    """Put a refused token request on the audit trail; returns the error to answer with."""
    with transaction() as session:
        _record_refusal(session, error, ip)
    return error


def _record_refusal(session: Session, error: OAuthError, ip: str | None) -> None:
    audit.record(
        session,
        _endpoint_actor(ip),
        TOKEN_ACTION,
        "ApiClient",
        error.target,
        outcome="denied",
        detail={"error": error.error, "why": error.description},
    )


def issue_token(
    form: Mapping[str, Any], token_url: str, *, ip: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """POST /oauth/token: an access token for a client that proved who it is with a signed
    assertion, for the requested scopes it is allowed. Raises OAuthError (audited, committed)."""
    now = now or utcnow()
    refused: OAuthError | None = None
    with transaction() as session:
        try:
            client, claims = _authenticate(session, form, token_url, now)
            settings = current_app.config["SETTINGS"]
            wait = throttle.token_client_wait(session, client.client_id, settings, now)
            if wait:
                raise OAuthError(
                    "slow_down",
                    f"Too many token requests: try again in {wait} seconds.",
                    target=client.client_id,
                    retry_after=wait,
                )
            _remember_jti(session, client, claims["jti"], claims["exp"], now)
            requested = _split_scopes(_param(form, "scope") or "")
            if not requested:
                raise OAuthError(
                    "invalid_scope", "The scope parameter is missing.", target=client.id
                )
            granted = grant_scopes(requested, client.scopes)
            if not granted:
                raise OAuthError(
                    "invalid_scope",
                    "None of the requested scopes is allowed for this client.",
                    target=client.id,
                )
            token = secrets.token_urlsafe(32)
            session.execute(
                delete(ApiToken).where(ApiToken.client_id == client.id, ApiToken.expires_at < now)
            )
            session.add(
                ApiToken(
                    id=uuid.uuid4(),
                    token_hash=_hash(token),
                    client_id=client.id,
                    scopes=granted,
                    expires_at=now + timedelta(seconds=TOKEN_LIFETIME),
                    created_at=now,
                )
            )
            audit.record(
                session,
                _endpoint_actor(ip),
                TOKEN_ACTION,
                "ApiClient",
                client.id,
                detail={
                    "client_id": client.client_id,
                    "org_id": str(client.organization_id),
                    "scope": " ".join(granted),
                },
            )
        except OAuthError as err:
            refused = err
            _record_refusal(session, err, ip)
    if refused is not None:
        raise refused
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": TOKEN_LIFETIME,
        "scope": " ".join(granted),
    }


# --- using a token -----------------------------------------------------------------------------


def authenticate_bearer(
    header_value: str | None, *, ip: str | None = None, now: datetime | None = None
) -> ClientActor:
    """The client an `Authorization: Bearer …` header stands for, acting for its organisation
    with the token's scopes (`actor.scopes`, `actor.allows(...)`). Raises InvalidToken."""
    if not header_value or not header_value.strip():
        raise InvalidToken("An access token is needed.", error=None)
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("Use Authorization: Bearer <token>.", error="invalid_request")
    now = now or utcnow()
    with transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
        if row is None:
            raise InvalidToken("The access token is not known.")
        if row.expires_at <= now:
            raise InvalidToken("The access token has expired.")
        client = row.client
        if not client.active:
            raise InvalidToken("The client is deactivated.")
        if client.organization.org_kind not in CLIENT_ROLES:
            raise InvalidToken("The client's organisation cannot use the API.")
        return client_actor(client, row.scopes, ip)


# --- HTTP ----------------------------------------------------------------------------------------

bp = Blueprint("oauth", __name__)


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _slow_down(ip: str | None) -> Response | None:
    """429 for a network address that asks for tokens too often (audited), in RFC 6749 §5.2's
    shape with the token endpoint's `slow_down` code (RFC 8628 §3.5); None when the request
    may go on. A client that proved who it is is counted too, once proven (`issue_token`)."""
    settings = current_app.config["SETTINGS"]
    wait = throttle.token_network_wait(ip, settings, utcnow())
    if not wait:
        return None
    error = refuse(
        OAuthError(
            "slow_down", f"Too many token requests: try again in {wait} seconds.", retry_after=wait
        ),
        ip=ip,
    )
    return _oauth_error(error)


def _oauth_error(error: OAuthError) -> Response:
    response = _json(error.body(), error.status_code)
    if error.retry_after:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def serves(path: str) -> bool:
    """Whether a request path is the authorization server's (the token endpoint's)."""
    return path == "/oauth" or path.startswith("/oauth/")


def error_response(error: Exception) -> Response:
    """Any other failure at the token endpoint (a method it does not take, a body too large,
    an unknown path, a fault of ours), as RFC 6749 §5.2 JSON, never a page."""
    from werkzeug.exceptions import HTTPException

    from referrals.errors import ServiceError
    from referrals.fhir.outcomes import where

    if isinstance(error, OAuthError):
        return _json(error.body(), error.status_code)
    if isinstance(error, ServiceError):
        return _json(
            {"error": "invalid_request", "error_description": error.message}, error.status_code
        )
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        response = _json(
            {"error": "invalid_request", "error_description": error.description or error.name},
            error.code,
        )
        for name, value in error.get_headers():
            if name.lower() in {"allow", "retry-after"}:
                response.headers[name] = value
        return response
    cause = getattr(error, "original_exception", None) or error
    log.error(
        "OAuth %s %s failed: %s at %s",
        request.method,
        request.path,
        type(cause).__name__,
        where(cause),
    )
    return _json(
        {"error": "server_error", "error_description": "The server could not answer; try later."},
        500,
    )


@bp.post(TOKEN_PATH)
def token() -> Response:
    """The token endpoint (RFC 6749 §4.4 with RFC 7523 client assertions)."""
    ip = request.remote_addr
    if (slow := _slow_down(ip)) is not None:
        return slow
    if request.mimetype != "application/x-www-form-urlencoded":
        err = refuse(
            OAuthError("invalid_request", "Send application/x-www-form-urlencoded."), ip=ip
        )
        return _json(err.body(), err.status_code)
    try:
        body = issue_token(request.form, token_endpoint_url(), ip=ip)
    except OAuthError as err:
        return _oauth_error(err)
    return _json(body, 200)


def smart_configuration() -> dict[str, Any]:
    return {
        "token_endpoint": token_endpoint_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": ["client-confidential-asymmetric"],
    }


@bp.get("/.well-known/smart-configuration")
@bp.get("/fhir/.well-known/smart-configuration")
def well_known() -> Response:
    """SMART discovery (App Launch 2.x §Conformance) for backend services: at the FHIR base, where
    SMART clients look, and at the server's root."""
    response = _json(smart_configuration(), 200)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
