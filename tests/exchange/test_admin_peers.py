"""Network admins configure exchange peers on the Exchange page (add, edit, subscribe), or
from a JSON file with `flask exchange load-peers`; nobody else can."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.exchange import service
from referrals.exchange.models import ExchangePeer
from referrals.jobs import Job
from tests.exchange.conftest import CLIENT_ID
from tests.fakes.fhir_exchange import FakeExchange
from tests.helpers import SYSTEM, WebClient, World

PAGE = "/admin/exchange"


def text(response) -> str:
    return response.get_data(as_text=True)


def all_peers() -> list[ExchangePeer]:
    db.session.remove()
    found = list(db.session().scalars(select(ExchangePeer).order_by(ExchangePeer.name)))
    for peer in found:
        assert peer.organizations is not None  # loaded before the session goes
    db.session.remove()
    return found


def poll_jobs() -> list[Job]:
    db.session.remove()
    return list(db.session().scalars(select(Job).where(Job.kind == service.POLL_JOB)))


def audit_actions() -> list[str]:
    db.session.remove()
    return list(db.session().scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def peer_row(html: str, peer_id) -> str:
    return html.split(f'<tr id="peer-{peer_id}">', 1)[1].split("</tr>", 1)[0]


def a_peer(world: World, **fields) -> ExchangePeer:
    settings = {
        "name": "Bay Area HIE",
        "base_url": "https://hie.example/fhir",
        "client_id": "referrals",
        "organizations": {world.orgs["clinic"].name: None},
    }
    return service.add_peer(SYSTEM, **(settings | fields))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_admin_adds_a_peer_with_the_form_and_sees_it_listed(
    world: World, client: WebClient
) -> None:
    food, housing = world.orgs["food"], world.orgs["housing"]
    client.login(world, "admin")
    page = text(client.get(PAGE))
    assert 'action="/admin/exchange/peers"' in page and "Add peer</button>" in page
    assert f'name="remote-{housing.id}"' in page  # the directory's organisations to pick from
    response = client.post(
        f"{PAGE}/peers",
        {
            "name": "Bay Area HIE",
            "base_url": "https://hie.example/fhir/",
            "client_id": "referrals-platform",
            "token_url": "",
            "scope": "system/*.read system/*.write",
            "push": "y",
            "active": "y",
            "serves": [str(food.id), str(housing.id)],
            f"remote-{housing.id}": "hh-42",
        },
    )
    [peer] = all_peers()
    assert response.status_code == 302
    assert response.headers["Location"] == f"{PAGE}#peer-{peer.id}"
    assert peer.base_url == "https://hie.example/fhir" and peer.push and not peer.poll
    assert {(o.organization_id, o.remote_id) for o in peer.organizations} == {
        (food.id, None),
        (housing.id, "hh-42"),
    }
    html = text(client.get(PAGE))
    assert "Added Bay Area HIE." in html
    row = peer_row(html, peer.id)
    assert "Bay Area HIE" in row and "https://hie.example/fhir" in row
    assert '<span class="tag">Push</span>' in row and '<span class="tag">Poll</span>' not in row
    assert "Community Food Bank" in row and "works here" in row
    assert "works there as <code>Organization/hh-42</code>" in row
    assert "Not subscribed" in row and ">Subscribe</button>" in row
    assert "exchange.peer.create" in audit_actions()
    assert poll_jobs() == []  # not polled


def test_a_bad_url_is_refused_next_to_its_field_and_nothing_is_written(
    world: World, client: WebClient
) -> None:
    client.login(world, "admin")
    client.get(PAGE)
    response = client.post(
        f"{PAGE}/peers",
        {
            "name": "Bay Area HIE",
            "base_url": "hie.example/fhir",
            "client_id": "",
            "scope": "system/*.read",
            "poll": "y",
            "serves": [str(world.orgs["food"].id)],
            f"remote-{world.orgs['food'].id}": "not an id!",
        },
    )
    html = text(response)
    assert response.status_code == 422
    base_url_error = 'id="base_url-error">The peer&#39;s FHIR base is an http(s) URL'
    assert base_url_error in html
    assert 'aria-invalid="true" aria-describedby="base_url-error"' in html
    assert '<p class="field-error" id="client_id-error">The client id is needed.</p>' in html
    assert "Community Food Bank: its Organization id there is letters, digits" in html
    # The form comes back as it was typed.
    assert 'value="hie.example/fhir"' in html and 'value="not an id!"' in html
    assert f'value="{world.orgs["food"].id}" checked' in html
    assert 'id="poll" name="poll" value="y" checked' in html
    assert all_peers() == [] and poll_jobs() == []
    assert "exchange.peer.create" not in audit_actions()


def test_editing_a_peer_turns_polling_on_and_a_pass_is_queued(
    world: World, client: WebClient
) -> None:
    peer = a_peer(world)
    clinic, food = world.orgs["clinic"], world.orgs["food"]
    client.login(world, "admin")
    url = f"{PAGE}/peers/{peer.id}"
    form = text(client.get(url))
    assert f'action="{url}"' in form and 'value="https://hie.example/fhir"' in form
    assert f'value="{clinic.id}" checked' in form and 'id="poll" name="poll" value="y" >' in form
    response = client.post(
        url,
        {
            "name": "Bay Area HIE",
            "base_url": "https://hie.example/fhir",
            "client_id": "referrals",
            "scope": "system/*.read system/*.write",
            "push": "y",
            "poll": "y",
            "active": "y",
            "serves": [str(food.id)],  # the clinic unticked, the food bank added on the peer
            f"remote-{food.id}": "pantry-1",
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == f"{PAGE}#peer-{peer.id}"
    [saved] = all_peers()
    assert saved.poll and [(o.organization_id, o.remote_id) for o in saved.organizations] == [
        (food.id, "pantry-1")
    ]
    [job] = poll_jobs()
    assert job.payload == {"peer_id": str(peer.id)} and job.status == "queued"
    actions = audit_actions()
    assert "exchange.peer.update" in actions and "exchange.peer.organizations" in actions
    row = peer_row(text(client.get(PAGE)), peer.id)
    assert '<span class="tag">Poll</span>' in row and "Not yet" in row

    # A served organisation is removed from the row itself (htmx: the row comes back).
    remove = f"{url}/organizations/{food.id}/remove"
    answer = client.post(remove, htmx=True)
    assert answer.status_code == 200
    assert text(answer).lstrip().startswith(f'<tr id="peer-{peer.id}"')
    assert "Organisation removed." in text(answer) and "pantry-1" not in text(answer)
    assert all_peers()[0].organizations == []
    assert client.post(remove).status_code == 404  # served no more


def test_an_edit_with_a_taken_name_is_refused_and_nothing_changes(
    world: World, client: WebClient
) -> None:
    a_peer(world, name="Other peer", base_url="https://other.example/fhir")
    peer = a_peer(world)
    client.login(world, "admin")
    url = f"{PAGE}/peers/{peer.id}"
    client.get(url)
    response = client.post(
        url,
        {"name": "Other peer", "base_url": "https://hie.example/fhir", "client_id": "x"}
        | {"scope": "s", "poll": "y", "active": "y"},
    )
    assert response.status_code == 422 and "Another peer has that name." in text(response)
    assert [p.name for p in all_peers()] == ["Bay Area HIE", "Other peer"]
    assert not all_peers()[0].poll and poll_jobs() == []


def test_subscribe_from_the_page_shows_the_subscription(
    world: World,
    exchange: FakeExchange,
    client: WebClient,
    live_url: str,
) -> None:
    peer = a_peer(
        world,
        base_url=exchange.url,
        client_id=CLIENT_ID,
        organizations={world.orgs["food"].name: "pantry-on-its-own-system"},
    )
    client.login(world, "admin")
    client.get(PAGE)
    answer = client.post(f"{PAGE}/peers/{peer.id}/subscribe", htmx=True)
    [subscription] = exchange.resources("Subscription")
    row = text(answer)
    assert answer.status_code == 200 and row.lstrip().startswith(f'<tr id="peer-{peer.id}"')
    assert f"Subscribed: Subscription/{subscription['id']}." in row and "<html" not in row
    exchange.wait_for_notifications()
    db.session.remove()  # no read left open while the live server writes (SQLite)
    row = peer_row(text(client.get(PAGE)), peer.id)
    assert f"<code>Subscription/{subscription['id']}</code>" in row
    assert '<span class="tag">active</span>' in row and "Last event 0" in row
    # The handshake reached us over HTTP, and the peer made the Subscription active.
    assert exchange.notifications[0]["type"] == "handshake"
    assert exchange.notifications[0]["status"] == 200
    assert exchange.resources("Subscription")[0]["status"] == "active"
    assert '<span class="tag">Subscribe</span>' in row


def test_subscribing_to_a_peer_that_is_down_shows_its_error(
    world: World, client: WebClient
) -> None:
    peer = a_peer(world, base_url=f"http://127.0.0.1:{closed_port()}/fhir")
    client.login(world, "admin")
    client.get(PAGE)
    answer = client.post(f"{PAGE}/peers/{peer.id}/subscribe", htmx=True)
    assert answer.status_code == 200 and "Not subscribed: " in text(answer)
    assert 'role="status" class="field-error"' in text(answer)
    # Without JavaScript: back to the page, which says so.
    response = client.post(f"{PAGE}/peers/{peer.id}/subscribe")
    assert response.headers["Location"] == f"{PAGE}#peer-{peer.id}"
    html = text(client.get(PAGE))
    assert 'class="flash flash-error">Not subscribed: ' in html
    assert "Not subscribed</span>" in peer_row(html, peer.id)
    assert all_peers()[0].subscription_id is None


def test_the_page_shows_our_public_key_only(world: World, client: WebClient) -> None:
    from referrals.exchange.client import public_jwks

    client.login(world, "admin")
    html = text(client.get(PAGE))
    assert "Give this to a peer to register us as its client" in html
    [key] = public_jwks()["keys"]
    assert key["n"] in html and key["kid"] in html
    assert '"d":' not in html and "PRIVATE KEY" not in html


@pytest.mark.parametrize("who", ["clinician", "food", "food_admin"])
def test_only_network_admins_change_peers(world: World, client: WebClient, who: str) -> None:
    peer = a_peer(world)
    clinic = world.orgs["clinic"]
    client.login(world, who)
    form = {"name": "Hijacked", "base_url": "https://evil.example/fhir", "client_id": "x"}
    for method, url, data in (
        ("post", f"{PAGE}/peers", form),
        ("get", f"{PAGE}/peers/{peer.id}", None),
        ("post", f"{PAGE}/peers/{peer.id}", form | {"poll": "y", "active": "y"}),
        ("post", f"{PAGE}/peers/{peer.id}/subscribe", {}),
        ("post", f"{PAGE}/peers/{peer.id}/organizations/{clinic.id}/remove", {}),
    ):
        response = client.get(url) if method == "get" else client.post(url, data)
        assert response.status_code == 403, url
    [unchanged] = all_peers()
    assert unchanged.name == "Bay Area HIE" and unchanged.base_url == "https://hie.example/fhir"
    assert len(unchanged.organizations) == 1 and poll_jobs() == []


# --- flask exchange load-peers ----------------------------------------------------------------


def load(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["exchange", "load-peers", *args])


def write(path: Path, entries) -> Path:
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


def test_load_peers_creates_then_updates_by_name(
    world: World, app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    food, housing = world.orgs["food"], world.orgs["housing"]
    hie = {
        "name": "Bay Area HIE",
        "base_url": "https://hie.example/fhir",
        "client_id": "referrals",
        "organizations": {world.orgs["clinic"].name: None, food.name: None},
    }
    pantry = {
        "name": "Pantry system",
        "base_url": "https://pantry.example/fhir",
        "client_id": "us",
        "push": True,
        "poll": False,
        "organizations": {str(housing.id): "hh-42"},
    }
    path = write(tmp_path / "peers.json", [hie, pantry])
    result = load(app, str(path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["Added Bay Area HIE.", "Added Pantry system."]
    hie_peer, pantry_peer = all_peers()
    assert [o.remote_id for o in pantry_peer.organizations] == ["hh-42"]
    assert len(hie_peer.organizations) == 2

    # The file named by EXCHANGE_PEERS, changed: polling on, the food bank no longer served.
    settings = app.config["SETTINGS"]
    monkeypatch.setitem(
        app.config, "SETTINGS", dataclasses.replace(settings, exchange_peers=str(path))
    )
    write(path, [hie | {"poll": True, "organizations": {world.orgs["clinic"].name: None}}, pantry])
    result = load(app)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["Updated Bay Area HIE.", "Pantry system: unchanged."]
    hie_peer, _ = all_peers()
    assert hie_peer.poll and [o.organization_id for o in hie_peer.organizations] == [
        world.orgs["clinic"].id
    ]
    assert [j.payload["peer_id"] for j in poll_jobs()] == [str(hie_peer.id)]


@pytest.mark.parametrize(
    "content, message",
    [
        ("[{", "cannot be read as JSON: Expecting"),
        ('{"name": "x"}', "A peers file is a JSON list of objects, one per peer."),
        (
            [
                {"name": "New", "base_url": "https://new.example/fhir", "client_id": "us"},
                {
                    "name": "Bay Area HIE",
                    "base_url": "https://hie.example/fhir",
                    "client_id": "changed",
                    "organizations": {"Nowhere Shelter": None},
                },
            ],
            "Nowhere Shelter is not in the directory.",
        ),
        (
            [{"name": "Bay Area HIE", "base_url": "gopher://hie", "client_id": "changed"}],
            "The peer's FHIR base is an http(s) URL",
        ),
        ([{"name": "New", "base_url": "https://n.example", "secret": "x"}], "'secret' is not"),
    ],
    ids=["malformed", "not-a-list", "unknown-organisation", "bad-url", "unknown-key"],
)
def test_a_bad_peers_file_writes_nothing(
    world: World, app: Flask, tmp_path: Path, content, message: str
) -> None:
    a_peer(world, client_id="referrals")
    before = audit_actions()
    result = load(app, str(write(tmp_path / "peers.json", content)))
    assert result.exit_code == 1
    assert message in result.output
    [peer] = all_peers()  # "New" not added, and the existing peer unchanged
    assert peer.client_id == "referrals" and audit_actions() == before


def test_load_peers_without_a_file_says_what_to_do(app: Flask) -> None:
    result = load(app)
    assert result.exit_code == 1 and "set EXCHANGE_PEERS" in result.output
    missing = load(app, "/nonexistent/peers.json")
    assert missing.exit_code == 1 and "cannot be read as JSON" in missing.output
