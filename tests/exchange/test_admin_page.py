"""The network admins' Exchange page: the peers, the pushes that ran out of tries with a retry
button, and each referral's sync state; for network admins only, and nothing about patients."""

from __future__ import annotations

import re

import pytest

from referrals.jobs import DEAD, QUEUED
from tests.exchange.test_push import configure, drain, link_of, push_jobs
from tests.fakes.fhir_exchange import FakeExchange
from tests.helpers import SYSTEM, WebClient, World, make_patient, send

PAGE = "/admin/exchange"


def text(response) -> str:
    return response.get_data(as_text=True)


def failed_section(html: str) -> str:
    return html.split('id="failed-heading"', 1)[1].split('id="sync-heading"', 1)[0]


def test_the_page_lists_the_peers_and_each_pushed_referrals_sync_state(
    world: World, exchange: FakeExchange, client: WebClient
) -> None:
    from referrals.exchange import service

    configure(world, exchange)
    service.add_peer(
        SYSTEM,
        name="Food bank case system",
        base_url="https://cases.foodbank.example/fhir",
        client_id="referrals",
        poll=True,
        organizations={world.orgs["housing"].name: "hh-42"},
    )
    referral = send(world, make_patient(world))
    drain()
    link = link_of(referral)
    client.login(world, "admin")
    response = client.get(PAGE)
    html = text(response)
    assert response.status_code == 200
    assert 'href="/admin/exchange" aria-current="page">Exchange</a>' in html
    assert "Exchange" in html and exchange.url in html
    assert "Food bank case system" in html and "https://cases.foodbank.example/fhir" in html
    assert "Community Food Bank" in html and "works here" in html
    assert "works there as <code>Organization/hh-42</code>" in html
    assert "No failed pushes." in html
    sync = html.split('id="sync-heading"', 1)[1]
    assert str(referral.id)[:8] in sync and f"Task/{link.remote_task_id}" in sync
    assert "Requested" in sync  # the referral's status, by its label


def test_a_refused_push_is_listed_and_an_admin_retries_it(
    world: World, exchange: FakeExchange, client: WebClient
) -> None:
    configure(world, exchange)
    exchange.fail_next(1, status=422)
    referral = send(world, make_patient(world))
    drain()
    [dead] = push_jobs(DEAD)
    client.login(world, "admin")
    failed = failed_section(text(client.get(PAGE)))
    assert f'id="push-{dead.id}"' in failed and str(referral.id)[:8] in failed
    assert "answered 422" in failed and ">Retry</button>" in failed
    retry = f"/admin/exchange/pushes/{dead.id}/retry"
    assert f'action="{retry}"' in failed and f'hx-post="{retry}"' in failed
    # The sync state says so too, problems first.
    sync = text(client.get(PAGE)).split('id="sync-heading"', 1)[1]
    assert "answered 422" in sync and "Not there yet" in sync

    # With htmx, the row alone comes back, saying the push is queued again.
    response = client.post(retry, htmx=True)
    row = text(response)
    assert response.status_code == 200
    assert row.lstrip().startswith(f'<tr id="push-{dead.id}"') and "Queued again." in row
    assert "<html" not in row and ">Retry</button>" not in row
    assert [j.id for j in push_jobs(QUEUED)] == [dead.id]

    drain()
    assert len(exchange.resources("Task")) == 1
    html = text(client.get(PAGE))
    assert "No failed pushes." in html and f'id="push-{dead.id}"' not in html
    assert "answered 422" not in html  # the sync state's error is cleared by the push


def test_retry_without_javascript_redirects_back_to_the_page(
    world: World, exchange: FakeExchange, client: WebClient
) -> None:
    configure(world, exchange)
    exchange.fail_next(1, status=422)
    send(world, make_patient(world))
    drain()
    [dead] = push_jobs(DEAD)
    client.login(world, "admin")
    client.get(PAGE)
    response = client.post(f"/admin/exchange/pushes/{dead.id}/retry")
    assert response.status_code == 302 and response.headers["Location"] == PAGE
    assert "The push will be tried again." in text(client.get(PAGE))
    # Retrying what is no longer dead is refused, and nothing changes.
    again = client.post(f"/admin/exchange/pushes/{dead.id}/retry")
    assert again.status_code == 404
    assert [j.id for j in push_jobs(QUEUED)] == [dead.id]


def test_a_retry_needs_the_forms_csrf_token(
    world: World, exchange: FakeExchange, client: WebClient
) -> None:
    configure(world, exchange)
    exchange.fail_next(1, status=422)
    send(world, make_patient(world))
    drain()
    [dead] = push_jobs(DEAD)
    client.login(world, "admin")
    response = client.post(f"/admin/exchange/pushes/{dead.id}/retry", csrf=False)
    assert response.status_code == 400
    assert [j.id for j in push_jobs(DEAD)] == [dead.id]


@pytest.mark.parametrize("who", ["clinician", "food", "food_admin"])
def test_only_network_admins_see_the_page_or_retry(
    world: World, exchange: FakeExchange, client: WebClient, who: str
) -> None:
    configure(world, exchange)
    exchange.fail_next(1, status=422)
    send(world, make_patient(world))
    drain()
    [dead] = push_jobs(DEAD)
    client.login(world, who)
    page = client.get(PAGE)
    assert page.status_code == 403 and "answered 422" not in text(page)
    assert 'href="/admin/exchange"' not in text(client.get("/directory"))
    response = client.post(f"/admin/exchange/pushes/{dead.id}/retry")
    assert response.status_code == 403
    assert [j.id for j in push_jobs(DEAD)] == [dead.id]


def test_the_page_names_no_patient(world: World, exchange: FakeExchange, client: WebClient) -> None:
    configure(world, exchange)
    patient = make_patient(world, given_name="Zelinda", family_name="Quarrington")
    send(world, patient, note="Private clinical detail")
    exchange.fail_next(1, status=422)
    send(world, patient)
    drain()
    client.login(world, "admin")
    html = text(client.get(PAGE))
    assert "answered 422" in html  # there is something to show
    for secret in ("Zelinda", "Quarrington", "Ana Lopez", "Private clinical detail", "5550142"):
        assert secret not in html
    assert str(patient.id) not in html
    # Referrals are named by their id only, never linked to a page admins cannot open.
    assert not re.search(r'href="/referrals/', html)
