"""POST /oauth/token is limited per network address (every request) and per API client (once it
proved who it is, so nobody uses up another client's allowance by naming it): past the limit, a
429 with Retry-After and an RFC 6749-style JSON error, on the audit trail, shared by every
process."""

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
    slowed_down(ask(http, token_form(assertion(client.client_id)), ip="198.51.100.7"))
    other = register(world, org="food")
    assert ask(http, token_form(assertion(other.client_id))).status_code == 200

    db.session.remove()
    denied = db.session().scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "oauth.token", AuditEvent.outcome == "denied")
        .order_by(AuditEvent.id)
    )
    [first, second] = denied.all()
    assert first.detail["error"] == "slow_down" and first.target_id == client.client_id
    assert first.ip == "127.0.0.1"
    assert second.ip == "198.51.100.7" and second.target_id == client.client_id


def test_a_network_address_asking_too_often_is_told_to_slow_down(app):
    http = app.test_client()
    for n in range(PER_IP):
        refused = ask(http, token_form("not-a-jwt", client_id=f"guess-{n}"), ip="203.0.113.5")
        assert refused.status_code == 401  # counted, and refused for what it is
    slowed_down(ask(http, token_form("not-a-jwt", client_id="guess-new"), ip="203.0.113.5"))
    slowed_down(ask(http, {}, ip="203.0.113.5"))  # naming no client at all
    elsewhere = ask(http, token_form("not-a-jwt", client_id="guess-new"), ip="198.51.100.2")
    assert elsewhere.status_code == 401


def test_nobody_can_lock_a_client_out_by_failing_in_its_name(app, world):
    """Requests that name a client but cannot prove they are it count against their own
    network, never against the client: the real client still gets its tokens."""
    http = app.test_client()
    client = register(world)
    for _ in range(PER_CLIENT * 2):
        refused = ask(http, token_form("not-a-jwt", client_id=client.client_id), ip="203.0.113.66")
        assert refused.status_code in (401, 429)
    assert ask(http, token_form(assertion(client.client_id)), ip="198.51.100.2").status_code == 200


def test_one_ipv6_network_is_one_network_whatever_address_it_uses(app):
    http = app.test_client()
    for n in range(PER_IP):
        ask(http, token_form("not-a-jwt", client_id="guess"), ip=f"2001:db8:1:2::{n:x}")
    slowed_down(ask(http, token_form("not-a-jwt", client_id="guess"), ip="2001:db8:1:2:ffff::1"))
    assert ask(http, {}, ip="2001:db8:1:3::1").status_code == 400  # the next /64 is another
