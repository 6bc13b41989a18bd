"""The inbox filtered by status, as a browser gets it: through the test client and over a real
HTTP connection, where a malformed status line would show. The filter's name is also the HTTP
status's, which is why both are checked: the page must say 200 and list only what was chosen."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from flask import Flask
from werkzeug.serving import make_server

from referrals.db import db
from tests.helpers import PASSWORD, make_patient, move, send

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SELECTED = re.compile(r'<option value="([a-z-]*)"\s+selected>')
REFRESH = {"HX-Request": "true", "HX-Target": "inbox-table", "HX-Trigger": "inbox-table"}


def listed(html: str) -> list[str]:
    """The patients' names in the inbox's rows, in order."""
    rows = re.findall(r'<tr id="task-[^"]+".*?</tr>', html, re.S)
    return [re.search(r">([^<]+ Lopez)</a>", row).group(1) for row in rows]


@pytest.fixture
def two_referrals(world) -> None:
    """One referral waiting for the food bank, one it accepted."""
    accepted = send(world, make_patient(world, given_name="Accepted"))
    send(world, make_patient(world, given_name="Waiting"))
    move(world, "food", accepted, "accept")
    db.session.remove()


class TestThroughTheTestClient:
    def test_the_filter_lists_only_requested_referrals_and_shows_the_choice(
        self, world, client, two_referrals
    ):
        client.login(world, "food")
        response = client.get("/inbox?status=requested")
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert response.status == "200 OK"
        assert listed(html) == ["Waiting Lopez"]
        assert SELECTED.findall(html) == ["requested"]
        # The table refreshes itself with the same filter.
        assert 'hx-get="/inbox?status=requested&amp;page=1"' in html

    def test_the_auto_refresh_keeps_the_filter(self, world, client, two_referrals):
        client.login(world, "food")
        response = client.get("/inbox?status=requested&page=1", headers=dict(REFRESH))
        html = response.get_data(as_text=True)
        assert response.status == "200 OK"
        assert html.lstrip().startswith('<div id="inbox-table"')
        assert "<html" not in html
        assert listed(html) == ["Waiting Lopez"]

    def test_another_filter_and_none(self, world, client, two_referrals):
        client.login(world, "food")
        accepted = client.get("/inbox?status=accepted")
        assert accepted.status == "200 OK"
        assert listed(accepted.get_data(as_text=True)) == ["Accepted Lopez"]
        everything = client.get("/inbox?status=")
        assert everything.status == "200 OK"
        assert sorted(listed(everything.get_data(as_text=True))) == [
            "Accepted Lopez",
            "Waiting Lopez",
        ]
        assert SELECTED.findall(everything.get_data(as_text=True)) == []


# --- over a real connection --------------------------------------------------------------------


@pytest.fixture
def server(app: Flask) -> Iterator[tuple[str, int]]:
    """The app served on a free port of 127.0.0.1, as a browser would reach it."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_port
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


class RawResponse:
    """A response read byte for byte: the status line exactly as the server wrote it."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = [tuple(line.split(": ", 1)) for line in lines[1:]]

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode()


def exchange(
    address: tuple[str, int], method: str, path: str, headers: dict[str, str], body: str = ""
) -> RawResponse:
    """Send one request with http.client and read the whole answer off the socket."""
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers={**headers, "Connection": "close"})
        chunks = []
        while chunk := conn.sock.recv(65536):
            chunks.append(chunk)
    finally:
        conn.close()
    return RawResponse(b"".join(chunks))


def sign_in(address: tuple[str, int], email: str) -> dict[str, str]:
    """Sign in through the real form; the headers a browser then sends (its cookie)."""
    page = exchange(address, "GET", "/login", {})
    jar = SimpleCookie()
    for value in page.header("Set-Cookie"):
        jar.load(value)
    cookie = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in jar.items())}
    form = urlencode(
        {"csrf_token": CSRF.search(page.text).group(1), "email": email, "password": PASSWORD}
    )
    signed_in = exchange(
        address,
        "POST",
        "/login",
        {**cookie, "Content-Type": "application/x-www-form-urlencoded"},
        form,
    )
    assert signed_in.status_line == "HTTP/1.1 302 FOUND", signed_in.text[-500:]
    for value in signed_in.header("Set-Cookie"):
        jar.load(value)
    return {"Cookie": "; ".join(f"{k}={m.value}" for k, m in jar.items())}


class TestOverHttp:
    def test_the_filtered_inbox_answers_200_ok(self, world, server, two_referrals):
        cookie = sign_in(server, world.emails["food"])
        page = exchange(server, "GET", "/inbox?status=requested", cookie)
        assert page.status_line == "HTTP/1.1 200 OK"
        assert listed(page.text) == ["Waiting Lopez"]
        assert SELECTED.findall(page.text) == ["requested"]

    def test_the_filtered_auto_refresh_answers_200_ok_with_the_table(
        self, world, server, two_referrals
    ):
        cookie = sign_in(server, world.emails["food"])
        table = exchange(server, "GET", "/inbox?status=requested&page=1", {**cookie, **REFRESH})
        assert table.status_line == "HTTP/1.1 200 OK"
        assert table.text.lstrip().startswith('<div id="inbox-table"')
        assert listed(table.text) == ["Waiting Lopez"]
        assert "HX-Request" in ", ".join(table.header("Vary"))
