"""SMART Backend Services: clients registered with their public keys get five-minute tokens for
signed, single-use assertions, and those tokens act for the client's organisation."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from functools import cache

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.roles import OrgKind, Permission, Role
from referrals.db import db, utcnow
from referrals.errors import Forbidden, InvalidInput
from referrals.fhir import cli as oauth_cli
from referrals.fhir.oauth import (
    ASSERTION_TYPE,
    ApiClient,
    ApiToken,
    ClientActor,
    InvalidToken,
    OAuthError,
    allows,
    authenticate_bearer,
    bp,
    deactivate_client,
    grant_scopes,
    issue_token,
    register_client,
    token_endpoint_url,
)
from tests.helpers import SYSTEM

ALLOWED = ["system/*.read", "system/Task.write"]


@cache
def rsa_key(name: str = "main") -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(name: str = "main", curve: type = ec.SECP384R1) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str = "rsa-1", **extra: object) -> dict:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str = "ec-1", **extra: object) -> dict:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, **extra}


def jwks() -> dict:
    return {"keys": [rsa_jwk(rsa_key(), alg="RS384", use="sig"), ec_jwk(ec_key())]}


def register(world, org: str = "clinic", scopes=ALLOWED, keys: dict | None = None) -> ApiClient:
    return register_client(
        SYSTEM,
        name="Test EHR",
        org_name=world.orgs[org].name,
        jwks=jwks() if keys is None else keys,
        scopes=scopes,
    )


def assertion(
    client_id: str, *, alg: str = "RS384", key: object = None, kid: str | None = None, **claims
) -> str:
    now = int(time.time())
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint_url(),
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    if key is None:
        key = rsa_key() if alg.startswith("RS") else ec_key()
    if kid is None:
        kid = "rsa-1" if alg.startswith("RS") else "ec-1"
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def token_form(signed: str, scope: str | None = "system/*.read", **fields: str | None) -> dict:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        "scope": scope,
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def refusal(form: dict) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        issue_token(form, token_endpoint_url(), ip="192.0.2.7")
    return caught.value


def token_audits() -> list[AuditEvent]:
    db.session.remove()
    return list(
        db.session().scalars(
            select(AuditEvent).where(AuditEvent.action == "oauth.token").order_by(AuditEvent.id)
        )
    )


# --- getting a token ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_gets_a_five_minute_token_for_the_allowed_scopes(world, alg):
    client = register(world)
    signed = assertion(client.client_id, alg=alg)
    body = issue_token(
        token_form(signed, "system/Task.read system/Task.write"),
        token_endpoint_url(),
        ip="192.0.2.7",
    )
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Task.read system/Task.write"
    assert len(body["access_token"]) >= 40
    [row] = db.session().scalars(select(ApiToken)).all()
    assert row.token_hash != body["access_token"] and len(row.token_hash) == 64
    assert row.scopes == ["system/Task.read", "system/Task.write"]
    [event] = token_audits()
    assert event.outcome == "success" and event.ip == "192.0.2.7"
    assert event.detail["client_id"] == client.client_id
    assert event.detail["org_id"] == str(world.orgs["clinic"].id)
    flat = json.dumps(event.detail)
    assert body["access_token"] not in flat and signed not in flat


def test_only_the_allowed_part_of_the_requested_scopes_is_granted(world):
    client = register(world)
    body = issue_token(
        token_form(assertion(client.client_id), "system/Patient.read system/Patient.write"),
        token_endpoint_url(),
    )
    assert body["scope"] == "system/Patient.read"
    broad = issue_token(token_form(assertion(client.client_id), "system/*.*"), token_endpoint_url())
    assert broad["scope"] == "system/*.read system/Task.write"


def _wrong(world, client: ApiClient, case: str) -> dict:
    cid = client.client_id
    other_rsa = rsa_key("other")
    forms = {
        "wrong aud": lambda: token_form(assertion(cid, aud="https://elsewhere.example/token")),
        "expired": lambda: token_form(assertion(cid, exp=int(time.time()) - 120)),
        "exp too far": lambda: token_form(assertion(cid, exp=int(time.time()) + 600)),
        "no exp": lambda: token_form(assertion(cid, exp=None)),
        "no jti": lambda: token_form(assertion(cid, jti=None)),
        "iat in the future": lambda: token_form(assertion(cid, iat=int(time.time()) + 600)),
        "wrong iss": lambda: token_form(assertion(cid, iss="someone-else")),
        "wrong sub": lambda: token_form(assertion(cid, sub="someone-else")),
        "client_id differs": lambda: token_form(assertion(cid), client_id="someone-else"),
        "unknown kid": lambda: token_form(assertion(cid, kid="nope")),
        "another key": lambda: token_form(assertion(cid, key=other_rsa)),
        "EC key named for RS384": lambda: token_form(assertion(cid, key=other_rsa, kid="ec-1")),
        "RS256": lambda: token_form(assertion(cid, alg="RS256")),
        "alg none": lambda: token_form(
            jwt.encode(
                {"iss": cid, "sub": cid, "aud": token_endpoint_url(), "exp": int(time.time()) + 60},
                None,
                algorithm="none",
            )
        ),
        "HS256": lambda: token_form(
            assertion(cid, alg="HS256", key="a-shared-secret-of-32-bytes-or-more!", kid="rsa-1")
        ),
        "jku": lambda: token_form(
            jwt.encode(
                {
                    "iss": cid,
                    "sub": cid,
                    "aud": token_endpoint_url(),
                    "exp": int(time.time()) + 60,
                    "jti": "j",
                },
                rsa_key(),
                algorithm="RS384",
                headers={"kid": "rsa-1", "jku": "https://attacker.example/jwks"},
            )
        ),
        "not a JWT": lambda: token_form("not.a.jwt"),
        "unknown client": lambda: token_form(
            assertion("unknown-client", sub="unknown-client", iss="unknown-client")
        ),
        "wrong grant_type": lambda: token_form(assertion(cid), grant_type="authorization_code"),
        "no grant_type": lambda: token_form(assertion(cid), grant_type=None),
        "no assertion type": lambda: token_form(assertion(cid), client_assertion_type=None),
        "other assertion type": lambda: token_form(
            assertion(cid), client_assertion_type="urn:ietf:params:oauth:grant-type:saml2-bearer"
        ),
        "no assertion": lambda: token_form("", client_assertion=None),
        "scope not allowed": lambda: token_form(assertion(cid), "system/Patient.write"),
        "no scope": lambda: token_form(assertion(cid), None),
        "user scope": lambda: token_form(assertion(cid), "user/*.read patient/*.read"),
    }
    return forms[case]()


CASES = {
    "wrong aud": "invalid_client",
    "expired": "invalid_client",
    "exp too far": "invalid_client",
    "no exp": "invalid_client",
    "no jti": "invalid_client",
    "iat in the future": "invalid_client",
    "wrong iss": "invalid_client",
    "wrong sub": "invalid_client",
    "client_id differs": "invalid_client",
    "unknown kid": "invalid_client",
    "another key": "invalid_client",
    "EC key named for RS384": "invalid_client",
    "RS256": "invalid_client",
    "alg none": "invalid_client",
    "HS256": "invalid_client",
    "jku": "invalid_client",
    "not a JWT": "invalid_client",
    "unknown client": "invalid_client",
    "wrong grant_type": "unsupported_grant_type",
    "no grant_type": "invalid_request",
    "no assertion type": "invalid_request",
    "other assertion type": "invalid_client",
    "no assertion": "invalid_request",
    "scope not allowed": "invalid_scope",
    "no scope": "invalid_scope",
    "user scope": "invalid_scope",
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_token_request_is_refused_with_the_right_error_and_audited(world, case):
    client = register(world)
    form = _wrong(world, client, case)
    err = refusal(form)
    assert err.error == CASES[case], err.description
    assert err.status_code == (401 if err.error == "invalid_client" else 400)
    assert set(err.body()) == {"error", "error_description"}
    assert db.session().scalar(select(ApiToken)) is None
    [event] = token_audits()
    assert event.outcome == "denied" and event.detail["error"] == err.error
    assert event.ip == "192.0.2.7"
    if form.get("client_assertion"):
        assert form["client_assertion"] not in json.dumps(event.detail)


def test_an_assertion_is_good_once(world):
    client = register(world)
    form = token_form(assertion(client.client_id))
    issue_token(form, token_endpoint_url())
    err = refusal(form)
    assert (err.error, err.status_code) == ("invalid_client", 401)
    assert "used already" in err.description
    assert [e.outcome for e in token_audits()] == ["success", "denied"]


def test_a_deactivated_client_gets_no_token_and_its_tokens_stop_working(world):
    client = register(world)
    body = issue_token(token_form(assertion(client.client_id)), token_endpoint_url())
    deactivate_client(SYSTEM, client.client_id)
    with pytest.raises(InvalidToken):
        authenticate_bearer(f"Bearer {body['access_token']}")
    err = refusal(token_form(assertion(client.client_id)))
    assert (err.error, err.status_code) == ("invalid_client", 401)
    assert "deactivated" in err.description


# --- using a token -----------------------------------------------------------------------------


def test_the_token_acts_for_the_clients_clinic_with_its_scopes(world):
    client = register(world)
    body = issue_token(
        token_form(assertion(client.client_id), "system/*.read system/Task.write"),
        token_endpoint_url(),
    )
    actor = authenticate_bearer(f"Bearer {body['access_token']}", ip="192.0.2.9")
    assert isinstance(actor, ClientActor)
    assert actor.org_id == world.orgs["clinic"].id and actor.org_name == "Sunrise Pediatrics"
    assert (actor.org_kind, actor.role) == (OrgKind.CLINIC, Role.CLINICIAN)
    assert actor.permissions == {Permission.SEND_REFERRALS}
    assert actor.user_id is None and not actor.is_system and actor.ip == "192.0.2.9"
    assert actor.client_id == client.client_id and client.client_id in actor.user_name
    assert actor.scopes == ("system/*.read", "system/Task.write")
    assert actor.allows("Patient", "read") and actor.allows("Task", "write")
    assert not actor.allows("Patient", "write")
    assert authenticate_bearer(f"bearer {body['access_token']}").client_id == client.client_id


@pytest.mark.parametrize(("org", "role"), [("food", Role.CBO_STAFF), ("school", Role.SCHOOL_STAFF)])
def test_a_cbo_or_school_client_works_referrals_like_its_staff(world, org, role):
    client = register(world, org)
    body = issue_token(token_form(assertion(client.client_id)), token_endpoint_url())
    actor = authenticate_bearer(f"Bearer {body['access_token']}")
    assert actor.org_id == world.orgs[org].id and actor.role is role
    assert actor.permissions == {Permission.WORK_REFERRALS}
    assert not actor.can(Permission.MANAGE_LISTINGS)


def test_an_expired_or_unknown_token_is_refused_with_a_www_authenticate(world):
    client = register(world)
    body = issue_token(token_form(assertion(client.client_id)), token_endpoint_url())
    header = f"Bearer {body['access_token']}"
    later = utcnow() + timedelta(seconds=301)
    with pytest.raises(InvalidToken) as expired:
        authenticate_bearer(header, now=later)
    assert expired.value.status_code == 401
    assert expired.value.www_authenticate == (
        'Bearer realm="referrals", error="invalid_token", '
        'error_description="The access token has expired."'
    )
    with pytest.raises(InvalidToken) as unknown:
        authenticate_bearer("Bearer " + body["access_token"][:-2] + "xx")
    assert unknown.value.error == "invalid_token"
    with pytest.raises(InvalidToken) as missing:
        authenticate_bearer(None)
    assert missing.value.www_authenticate == 'Bearer realm="referrals"'
    assert missing.value.status_code == 401
    with pytest.raises(InvalidToken) as basic:
        authenticate_bearer("Basic dXNlcjpwYXNz")
    assert (basic.value.status_code, basic.value.error) == (400, "invalid_request")
    # still fine until then
    assert authenticate_bearer(header, now=later - timedelta(seconds=2)).client_id


# --- registering -------------------------------------------------------------------------------


def test_only_network_admins_and_the_command_line_register_clients(world):
    by_admin = register_client(
        world.actor("admin"),
        name="Food bank CRM",
        org_name="Community Food Bank",
        jwks=jwks(),
        scopes="system/Task.rs system/Task.u",
    )
    assert by_admin.scopes == ["system/Task.rs", "system/Task.u"] and by_admin.active
    assert by_admin.organization_id == world.orgs["food"].id
    for who in ("clinician", "food_admin"):
        with pytest.raises(Forbidden):
            register_client(
                world.actor(who),
                name="Mine",
                org_name="Community Food Bank",
                jwks=jwks(),
                scopes=ALLOWED,
            )
    events = db.session().scalars(
        select(AuditEvent).where(AuditEvent.action == "api_client.create").order_by(AuditEvent.id)
    )
    assert [e.outcome for e in events] == ["success", "denied", "denied"]


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({}, "non-empty"),
        ({"keys": []}, "non-empty"),
        ({"keys": [{**rsa_jwk(rsa_key()), "kid": ""}]}, "needs a kid"),
        ({"keys": [rsa_jwk(rsa_key()), rsa_jwk(rsa_key())]}, "two keys have this kid"),
        (
            {"keys": [RSAAlgorithm.to_jwk(rsa_key(), as_dict=True) | {"kid": "p"}]},
            "private",
        ),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}, "private or secret"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "kid": "o"}]}, "RSA or EC"),
        ({"keys": [rsa_jwk(rsa_key(), alg="RS256")]}, "RS384"),
        ({"keys": [rsa_jwk(rsa_key(), use="enc")]}, "use must be sig"),
        ({"keys": [ec_jwk(ec_key("p256", ec.SECP256R1))]}, "P-384"),
        (
            {"keys": [rsa_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024))]},
            "bits",
        ),
        ({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "e"}]}, "valid EC"),
    ],
)
def test_a_jwks_that_cannot_sign_assertions_is_refused(world, keys, problem):
    with pytest.raises(InvalidInput) as caught:
        register(world, keys=keys)
    assert problem in " ".join(caught.value.fields["jwks"])


@pytest.mark.parametrize(
    ("org", "scopes", "field"),
    [
        ("clinic", ["patient/*.read"], "scopes"),
        ("clinic", [], "scopes"),
        ("clinic", "system/Task.read?status=requested", "scopes"),
        ("network", ALLOWED, "org"),
    ],
)
def test_registration_explains_bad_scopes_and_organisations(world, org, scopes, field):
    with pytest.raises(InvalidInput) as caught:
        register(world, org, scopes=scopes)
    assert field in caught.value.fields
    with pytest.raises(InvalidInput) as unknown:
        register_client(SYSTEM, name="X", org_name="Nobody", jwks=jwks(), scopes=ALLOWED)
    assert "org" in unknown.value.fields


# --- scopes ----------------------------------------------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize(
    ("scopes", "resource", "interaction", "expected"),
    [
        (["system/*.read"], "Task", "read", True),
        (["system/*.read"], "Task", "write", False),
        (["system/Task.write"], "Task", "write", True),
        (["system/Task.write"], "Patient", "write", False),
        (["system/Task.*"], "Task", "read", True),
        (["system/*.*"], "ServiceRequest", "write", True),
        (["system/Task.rs"], "Task", "read", True),
        (["system/Task.r"], "Task", "read", False),
        (["system/Task.r"], "Task", "r", True),
        (["system/Task.cruds"], "Task", "write", True),
        (["system/Task.cu"], "Task", "write", False),
        (["system/Task.cu"], "Task", "u", True),
        (["system/*.rs", "system/Task.cud"], "Task", "write", True),
        (["patient/*.read", "user/Task.write"], "Task", "read", False),
        (["system/Task.sr"], "Task", "read", False),  # v2 letters come in order
        ([], "Task", "read", False),
    ],
)
def test_allows_follows_smart_v1_and_v2_scopes(scopes, resource, interaction, expected):
    assert allows(scopes, resource, interaction) is expected


@pytest.mark.pure
def test_allows_refuses_what_is_not_an_interaction():
    with pytest.raises(ValueError):
        allows(["system/*.read"], "Task", "delete")


@pytest.mark.pure
@pytest.mark.parametrize(
    ("requested", "allowed", "granted"),
    [
        (["system/Task.read"], ["system/*.read"], ["system/Task.read"]),
        (["system/*.read"], ["system/Task.read"], ["system/Task.read"]),
        (["system/*.*"], ["system/*.read", "system/*.write"], ["system/*.*"]),
        (["system/*.cruds"], ["system/*.read"], ["system/*.read"]),
        (["system/Task.rs"], ["system/*.read"], ["system/Task.rs"]),
        (["system/Task.write"], ["system/*.read"], []),
        (["patient/*.read"], ["system/*.read"], []),
        (
            ["system/*.read", "system/Task.read"],
            ["system/*.read"],
            ["system/*.read", "system/Task.read"],
        ),
    ],
)
def test_granted_scopes_are_the_intersection(requested, allowed, granted):
    assert grant_scopes(requested, allowed) == granted


# --- HTTP and the command line ---------------------------------------------------------------


@pytest.fixture
def http(app: Flask):
    """The app's client once the blueprint is registered there, else a small app with it."""
    if "oauth.token" in app.view_functions:
        return app.test_client()
    small = Flask("oauth_test")
    small.config.update(SETTINGS=app.config["SETTINGS"], TESTING=True)
    small.register_blueprint(bp)
    return small.test_client()


def test_the_token_endpoint_answers_json_that_is_never_cached(world, http):
    client = register(world)
    ok = http.post("/oauth/token", data=token_form(assertion(client.client_id)))
    assert ok.status_code == 200, ok.get_json()
    assert ok.headers["Cache-Control"] == "no-store" and ok.headers["Pragma"] == "no-cache"
    assert ok.get_json()["scope"] == "system/*.read"
    actor = authenticate_bearer(f"Bearer {ok.get_json()['access_token']}")
    assert actor.org_id == world.orgs["clinic"].id
    bad = http.post("/oauth/token", data=token_form(assertion(client.client_id, kid="nope")))
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_client"
    assert bad.headers["Cache-Control"] == "no-store"
    as_json = http.post("/oauth/token", json=token_form(assertion(client.client_id)))
    assert as_json.status_code == 400 and as_json.get_json()["error"] == "invalid_request"
    assert [e.outcome for e in token_audits()] == ["success", "denied", "denied"]


def test_the_smart_configuration_describes_backend_services(http):
    response = http.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["token_endpoint"] == "http://127.0.0.1:5000/oauth/token"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert doc["capabilities"] == ["client-confidential-asymmetric"]
    assert "system/*.read" in doc["scopes_supported"]
    # SMART clients look for it at the FHIR base.
    at_base = http.get("/fhir/.well-known/smart-configuration")
    assert at_base.status_code == 200 and at_base.get_json() == doc


def test_register_api_client_prints_the_client_id(app, world, tmp_path):
    small = Flask("oauth_cli_test")
    small.config.update(SETTINGS=app.config["SETTINGS"])
    oauth_cli.register(small)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(ec_jwk(ec_key())))  # a bare key is a one-key set
    runner = small.test_cli_runner()
    args = ["register-api-client", "--name", "Sunrise EHR", "--org", "Sunrise Pediatrics"]
    result = runner.invoke(
        args=[*args, "--jwks", str(path), "--scope", "system/*.read system/Task.write"]
    )
    assert result.exit_code == 0, result.output
    client_id = result.stdout.strip()
    client = db.session().scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    assert client.scopes == ["system/*.read", "system/Task.write"]
    assert client.organization_id == world.orgs["clinic"].id
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}))
    bad = runner.invoke(args=[*args, "--jwks", str(path), "--scope", "system/*.read"])
    assert bad.exit_code == 2 and "private or secret" in bad.output
    off = runner.invoke(args=["deactivate-api-client", client_id])
    assert off.exit_code == 0 and "Deactivated Sunrise EHR" in off.output
