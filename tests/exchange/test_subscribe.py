"""Subscribing to a peer instead of polling it: the peer's handshake and id-only notifications
reach our endpoint over HTTP; each names a Task we read from the peer and mirror. Duplicate
notifications queue nothing new; a gap in the event numbers starts a polling pass; a caller
without our secret is refused."""

from __future__ import annotations

import copy
import json

import pytest
import requests
from sqlalchemy import select

from referrals.db import db
from referrals.exchange import service
from referrals.exchange.models import ExchangePeer
from referrals.exchange.notifications import FETCH_JOB, subscribe
from referrals.jobs import Job, run_due_jobs
from referrals.loop.models import Referral
from tests.exchange.conftest import CLIENT_ID
from tests.fakes.fhir_exchange import FakeExchange
from tests.helpers import SYSTEM, World, make_patient, send

REMOTE_ORG = "pantry-on-its-own-system"


@pytest.fixture
def peer_id(world: World, exchange: FakeExchange, live_url: str):
    peer = service.add_peer(
        SYSTEM,
        name="Food bank system",
        base_url=exchange.url,
        client_id=CLIENT_ID,
        push=True,
        poll=False,
        organizations={world.orgs["food"].name: REMOTE_ORG},
    )
    subscribe(SYSTEM, peer.id)
    exchange.wait_for_notifications()
    return peer.id


def peer(peer_id) -> ExchangePeer:
    db.session.remove()
    found = db.session().get(ExchangePeer, peer_id)
    db.session().expunge(found)
    db.session.remove()  # no read left open while the live server writes (SQLite)
    return found


def fetch_jobs() -> list[Job]:
    db.session.remove()
    found = list(db.session().scalars(select(Job).where(Job.kind == FETCH_JOB)))
    db.session.remove()
    return found


def test_the_handshake_makes_the_subscription_active(exchange, peer_id) -> None:
    subscription = exchange.resources("Subscription")[0]
    assert subscription["status"] == "active"
    assert subscription["channel"]["endpoint"].endswith(f"/exchange/peers/{peer_id}/notifications")
    handshake = exchange.notifications[0]
    assert handshake["type"] == "handshake" and handshake["status"] == 200
    here = peer(peer_id)
    assert here.subscription_id == subscription["id"] and here.subscription_status == "active"


def test_a_move_there_is_mirrored_here_on_notification(world, exchange, peer_id) -> None:
    referral = send(world, make_patient(world))
    run_due_jobs()  # the push; the peer then notifies us of the Task we created
    exchange.wait_for_notifications()
    run_due_jobs()
    task = copy.deepcopy(exchange.resources("Task")[0])
    exchange.put_resource({**task, "status": "accepted"})
    exchange.wait_for_notifications()
    last = exchange.notifications[-1]
    assert last["type"] == "event-notification" and last["status"] == 200
    run_due_jobs()
    db.session.remove()
    assert db.session().get(Referral, referral.id).task.status == "accepted"
    assert peer(peer_id).last_event_number == int(last["event_number"])


def test_duplicates_queue_nothing_and_a_gap_polls(world, exchange, peer_id, live_url) -> None:
    send(world, make_patient(world))
    run_due_jobs()
    exchange.wait_for_notifications()
    delivered = exchange.notifications[-1]
    secret = delivered["headers"]["Authorization"]
    before = len(fetch_jobs())
    url = f"{live_url}/exchange/peers/{peer_id}/notifications"
    again = requests.post(url, json=delivered["bundle"], headers={"Authorization": secret})
    assert again.status_code == 200 and len(fetch_jobs()) == before
    # Event 9 when we had seen fewer: some were missed, a polling pass is queued to catch up.
    later = copy.deepcopy(delivered["bundle"])
    for parameter in later["entry"][0]["resource"]["parameter"]:
        if parameter["name"] == "notification-event":
            parameter["part"][0]["valueString"] = "9"
    assert requests.post(url, json=later, headers={"Authorization": secret}).status_code == 200
    db.session.remove()
    polls = db.session().scalars(select(Job).where(Job.kind == service.POLL_JOB)).all()
    db.session.remove()
    assert len(polls) == 1 and peer(peer_id).last_event_number == 9


def test_a_caller_without_our_secret_is_refused(exchange, peer_id, live_url) -> None:
    url = f"{live_url}/exchange/peers/{peer_id}/notifications"
    bundle = exchange.notifications[0]["bundle"]
    wrong = requests.post(url, json=bundle, headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert wrong.json()["issue"][0]["diagnostics"] == "Unknown peer or wrong credentials."
    assert fetch_jobs() == []


def shapes_a_peer_might_send(bundle: dict) -> list[tuple[str, bytes]]:
    """A real notification with one part of another JSON shape, and bodies that are no JSON."""

    def variant(change) -> bytes:
        body = copy.deepcopy(bundle)
        change(body)
        return json.dumps(body).encode()

    def status(body: dict) -> dict:
        return body["entry"][0]["resource"]

    return [
        ("entry a string", variant(lambda b: b.update(entry="x"))),
        ("entry of strings", variant(lambda b: b.update(entry=["x", 1]))),
        ("resource a list", variant(lambda b: b["entry"][0].update(resource=[1]))),
        ("parameter an object", variant(lambda b: status(b).update(parameter={"name": "type"}))),
        ("parameters of numbers", variant(lambda b: status(b).update(parameter=[1, None]))),
        (
            "type named by a list",
            variant(
                lambda b: [
                    p.update(name=[p["name"]])
                    for p in status(b)["parameter"]
                    if p["name"] == "type"
                ]
            ),
        ),
        (
            "type a number",
            variant(lambda b: status(b).update(parameter=[{"name": "type", "valueCode": 5}])),
        ),
        ("no type", variant(lambda b: status(b).update(parameter=[]))),
        (
            "type unknown",
            variant(
                lambda b: status(b).update(parameter=[{"name": "type", "valueCode": "x" * 5000}])
            ),
        ),
        ("a list", b"[1, 2]"),
        ("not JSON", b"{nope"),
        ("not UTF-8", b"\xff\xfe{}"),
        ("deep", b"[" * 100_000 + b"]" * 100_000),
        ("NaN", b'{"resourceType": "Bundle", "total": NaN}'),
        ("NUL", b'{"resourceType": "Bundle", "id": "\\u0000"}'),
        ("empty", b""),
    ]


def test_a_body_that_is_no_notification_is_a_400_that_changes_nothing(
    exchange, peer_id, live_url
) -> None:
    url = f"{live_url}/exchange/peers/{peer_id}/notifications"
    delivered = exchange.notifications[0]
    secret = delivered["headers"]["Authorization"]
    before = peer(peer_id)
    for name, body in shapes_a_peer_might_send(delivered["bundle"]):
        answer = requests.post(
            url,
            data=body,
            headers={"Authorization": secret, "Content-Type": "application/fhir+json"},
        )
        assert answer.status_code == 400, (name, answer.status_code, answer.text[:200])
        issue = answer.json()["issue"][0]
        assert answer.json()["resourceType"] == "OperationOutcome", name
        assert issue["severity"] == "error" and issue["diagnostics"], name
        assert "Set-Cookie" not in answer.headers
    assert (
        "more than 64 levels"
        in requests.post(
            url, data=b"[" * 5000 + b"]" * 5000, headers={"Authorization": secret}
        ).json()["issue"][0]["diagnostics"]
    )
    after = peer(peer_id)
    assert after.subscription_status == before.subscription_status == "active"
    assert after.last_event_number == before.last_event_number
    assert fetch_jobs() == []


def test_a_stranger_is_refused_before_its_body_is_read(exchange, peer_id, live_url) -> None:
    url = f"{live_url}/exchange/peers/{peer_id}/notifications"
    answer = requests.post(url, data=b"[" * 100_000, headers={"Authorization": "Bearer guess"})
    assert answer.status_code == 401
    assert answer.json()["issue"][0]["diagnostics"] == "Unknown peer or wrong credentials."
