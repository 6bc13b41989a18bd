"""Where a browser is sent after signing in: only to a path of this site, whatever the form's
`next` field holds (another site, a line break, a control character), and never a 500."""

from __future__ import annotations

import pytest

from referrals.web import local_redirect_target
from tests.helpers import PASSWORD

SAFE = [
    "/inbox",
    "/inbox?status=requested&page=2",
    "/referrals/0b7c3a54-1c7e-4a43-9d7a-3f0a9d1d2e11#actions-heading",
    "/patients?q=L%C3%B3pez",
    "/%0d%0a",  # encoded: a path like any other (and a 404)
]
UNSAFE = [
    "/inbox\nSet-Cookie: stolen=1",
    "/inbox\r\n",
    "/inbox\r",
    "/\t/evil.example",  # browsers drop the tab: //evil.example
    "/\\evil.example",  # browsers read the backslash as a slash
    "/\\/evil.example",
    "//evil.example/phish",
    "https://evil.example/",
    "javascript:alert(1)",
    "inbox",
    " /inbox",
    "/in box",
    "/inbox\x00",
    "/inbox\x7f",
    "/inbox\u2028",
    "/caf\u00e9",
    "/" + "a" * 2000,
    "",
]


@pytest.mark.pure
@pytest.mark.parametrize("target", SAFE)
def test_a_path_of_this_site_is_kept(target):
    assert local_redirect_target(target) == target


@pytest.mark.pure
@pytest.mark.parametrize("target", [*UNSAFE, None])
def test_anything_else_is_refused(target):
    assert local_redirect_target(target) is None


@pytest.mark.parametrize("target", UNSAFE, ids=lambda target: repr(target)[:24])
def test_signing_in_with_a_bad_next_lands_on_the_home_page(world, client, target):
    client.get("/login")
    response = client.post(
        "/login", {"email": world.emails["food"], "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/inbox"


def test_signing_in_with_a_good_next_goes_there(world, client):
    client.get("/login")
    response = client.post(
        "/login",
        {"email": world.emails["food"], "password": PASSWORD, "next": "/inbox?status=accepted"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/inbox?status=accepted"


@pytest.mark.parametrize("target", ["/inbox\r\nX: 1", "//evil.example", "/\\evil.example"])
def test_the_sign_in_form_does_not_carry_a_bad_next(client, target):
    html = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert '<input type="hidden" name="next" value="">' in html
    assert "evil.example" not in html


def test_a_wrong_password_keeps_a_good_next_and_drops_a_bad_one(world, client):
    client.get("/login")
    for target, kept in (("/inbox?status=accepted", "/inbox?status=accepted"), ("//x.example", "")):
        html = client.post(
            "/login", {"email": world.emails["food"], "password": "wrong", "next": target}
        ).get_data(as_text=True)
        assert f'<input type="hidden" name="next" value="{kept}">' in html


def test_a_page_asked_for_before_signing_in_is_where_signing_in_leads(world, client):
    response = client.get("/inbox?status=accepted")
    assert response.status_code == 302
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/inbox?status=accepted"' in login_page
    signed_in = client.post(
        "/login",
        {"email": world.emails["food"], "password": PASSWORD, "next": "/inbox?status=accepted"},
    )
    assert signed_in.headers["Location"] == "/inbox?status=accepted"
