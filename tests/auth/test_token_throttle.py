"""POST /oauth/token is limited per API client and per network address: past the limit, a 429
with Retry-After and an RFC 6749-style JSON error, on the audit trail, shared by every process."""

from __future__ import annotations

from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.db import db
from tests.fhir.test_oauth import assertion, register, token_form

PER_CLIENT, PER_IP = 20, 60  # the defaults


def ask(http, form: dict, ip: str = "127.0.0.1"):
    return http.post("/oauth/token", data=form, environ_base={"REMOTE_ADDR": ip})


def slowed_down(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == "slow_down"
    assert body["error_description"].startswith("Too many token requests: try again in ")
    assert set(body) == {"error", "error_description"}


def test_a_client_asking_too_often_is_told_to_slow_down_and_others_are_not(app, world):
    http = app.test_client()
    client = register(world)
    for _ in range(PER_CLIENT):
        assert ask(http, token_form(assertion(client.client_id))).status_code == 200
    # Named in the assertion only, or in client_id too: the same client.
    slowed_down(ask(http, token_form(assertion(client.client_id))))
    slowed_down(ask(http, token_form("not-a-jwt", client_id=client.client_id)))
    other = register(world, org="food")
    assert ask(http, token_form(assertion(other.client_id))).status_code == 200

    db.session.remove()
    denied = db.session().scalars(
        select(AuditEvent).where(AuditEvent.action == "oauth.token", AuditEvent.outcome == "denied")
    )
    [first, second] = denied.all()
    assert first.detail["error"] == "slow_down" and first.target_id == client.client_id
    assert first.ip == "127.0.0.1"
    assert "not-a-jwt" not in repr(second.detail) and second.target_id == client.client_id


def test_a_network_address_asking_too_often_is_told_to_slow_down(app):
    http = app.test_client()
    for n in range(PER_IP):
        refused = ask(http, token_form("not-a-jwt", client_id=f"guess-{n}"), ip="203.0.113.5")
        assert refused.status_code == 401  # counted, and refused for what it is
    slowed_down(ask(http, token_form("not-a-jwt", client_id="guess-new"), ip="203.0.113.5"))
    slowed_down(ask(http, {}, ip="203.0.113.5"))  # naming no client at all
    elsewhere = ask(http, token_form("not-a-jwt", client_id="guess-new"), ip="198.51.100.2")
    assert elsewhere.status_code == 401
