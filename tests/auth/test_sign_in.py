"""Signing in and staying signed in safely."""

from __future__ import annotations

import time

from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.db import db
from tests.helpers import PASSWORD, make_patient, send


def test_sign_in_lands_each_role_on_its_home_page(world, client):
    for who, home in (
        ("clinician", "/referrals"),
        ("food", "/inbox"),
        ("admin", "/admin/messages"),
    ):
        client.get("/login")
        response = client.post("/login", {"email": world.emails[who], "password": PASSWORD})
        assert response.status_code == 302, (who, response.get_data(as_text=True)[-600:])
        assert response.headers["Location"] == home
        client.get(home)
        assert client.post("/logout").status_code == 302


def test_wrong_password_says_so_without_telling_which_part_was_wrong(world, client):
    client.get("/login")
    wrong = client.post("/login", {"email": world.emails["food"], "password": "nope"})
    unknown = client.post("/login", {"email": "nobody@test.example", "password": "nope"})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Email or password is not right." in response.get_data(as_text=True)
    outcomes = (
        db.session()
        .scalars(select(AuditEvent.outcome).where(AuditEvent.action == "auth.login"))
        .all()
    )
    assert outcomes == ["denied", "denied"]


def test_repeated_failures_block_the_address_even_for_the_right_password(world, client):
    client.get("/login")
    for _ in range(5):
        client.post("/login", {"email": world.emails["food"], "password": "wrong"})
    response = client.post("/login", {"email": world.emails["food"], "password": PASSWORD})
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts. Try again in 1 minute." in response.get_data(as_text=True)


def test_pages_need_a_signed_in_user(client):
    response = client.get("/inbox")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_an_expired_session_answers_htmx_with_401_and_a_redirect_header(world, client):
    client.login(world, "food")
    with client.client.session_transaction() as session:
        session["seen"] = time.time() - 31 * 60
    response = client.get("/inbox?status=requested", htmx=True, target="inbox-table")
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"
    assert response.get_data(as_text=True) == ""
    # and the session is gone
    assert client.get("/inbox").status_code == 302


def test_a_session_idle_for_less_than_the_timeout_stays(world, client):
    client.login(world, "food")
    with client.client.session_transaction() as session:
        session["seen"] = time.time() - 29 * 60
    assert client.get("/inbox").status_code == 200


def test_next_parameter_cannot_send_people_to_another_site(world, client):
    client.get("/login")
    response = client.post(
        "/login",
        {"email": world.emails["food"], "password": PASSWORD, "next": "//evil.example/phish"},
    )
    assert response.headers["Location"] == "/inbox"


def test_posts_without_a_csrf_token_are_refused_and_change_nothing(world, client):
    patient = make_patient(world)
    referral = send(world, patient)
    client.login(world, "food")
    response = client.post(
        f"/referrals/{referral.id}/status", {"action": "accept", "version": "1"}, csrf=False
    )
    assert response.status_code == 400
    assert "This form has expired or did not come from this site" in response.get_data(as_text=True)
    forged = client.post(
        f"/referrals/{referral.id}/status",
        {"action": "accept", "version": "1", "csrf_token": "forged"},
    )
    assert forged.status_code == 400
    db.session.remove()
    from referrals.loop.models import Task

    assert db.session().scalar(select(Task.status)) == "requested"


def test_pages_carry_security_headers_and_are_never_cached(world, client):
    client.login(world, "clinician")
    response = client.get("/patients")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "HX-Request" in response.headers["Vary"]
    assert "<script>" not in response.get_data(as_text=True)  # no inline scripts at all


def test_session_cookie_is_httponly_and_samesite(world, client):
    client.get("/login")
    response = client.post("/login", {"email": world.emails["food"], "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
