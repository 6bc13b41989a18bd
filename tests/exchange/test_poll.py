"""Following a peer's Tasks by polling: a CBO that works on its own system (the peer) moves our
referral there; each pass mirrors the moves here through the lifecycle, by that organisation,
in order, once, and never sends them back. What the peer gets wrong is refused and logged."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from referrals.db import db
from referrals.exchange import service
from referrals.exchange.client import PeerUnavailable
from referrals.exchange.models import ExchangeLink, ExchangePeer
from referrals.jobs import run_due_jobs
from referrals.loop.models import Referral, ReferralEvent
from tests.exchange.conftest import CLIENT_ID
from tests.fakes.fhir_exchange import FakeExchange
from tests.helpers import SYSTEM, World, make_patient, move, send

REMOTE_ORG = "pantry-on-its-own-system"


@pytest.fixture
def peer_id(world: World, exchange: FakeExchange):
    """The food bank works on the peer, where it is Organization/REMOTE_ORG."""
    peer = service.add_peer(
        SYSTEM,
        name="Food bank system",
        base_url=exchange.url,
        client_id=CLIENT_ID,
        push=True,
        poll=True,
        organizations={world.orgs["food"].name: REMOTE_ORG},
    )
    return peer.id


def sent(world: World) -> Referral:
    referral = send(world, make_patient(world))
    run_due_jobs()  # the push; the first polling pass finds nothing to mirror
    db.session.remove()
    return referral


def remote_task(exchange: FakeExchange) -> dict:
    return copy.deepcopy(exchange.resources("Task")[0])


def moved_there(exchange: FakeExchange, **changes) -> dict:
    task = {**remote_task(exchange), **changes}
    return exchange.put_resource(task)


def ours(referral: Referral) -> Referral:
    db.session.remove()
    return db.session().get(Referral, referral.id)


def timeline(referral: Referral) -> list[tuple[str, str]]:
    db.session.remove()
    return [
        (e.action, e.actor_name)
        for e in db.session().scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral.id)
            .order_by(ReferralEvent.at)
        )
    ]


def test_the_referral_is_sent_to_the_cbos_own_system(world, exchange, peer_id) -> None:
    referral = sent(world)
    task = remote_task(exchange)
    assert task["owner"]["reference"] == f"Organization/{REMOTE_ORG}"
    request = exchange.resources("ServiceRequest")[0]
    assert (
        request["performer"]
        == [{"reference": f"Organization/{REMOTE_ORG}", "display": world.orgs["food"].name}]
        or request["performer"][0]["reference"] == f"Organization/{REMOTE_ORG}"
    )
    assert ours(referral).task.status == "requested"


def test_several_moves_there_are_mirrored_in_order_by_that_organisation(
    world, exchange, peer_id
) -> None:
    referral = sent(world)
    moved_there(
        exchange,
        status="completed",
        output=[
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                            "SDOHCC-CodeSystemTemporaryCodes",
                            "code": "resulting-activity",
                        }
                    ]
                },
                "valueCodeableConcept": {
                    "coding": [{"system": "http://snomed.info/sct", "code": "710925007"}]
                },
            }
        ],
    )
    counts = service.poll(peer_id)
    assert counts == {"seen": 1, "mirrored": 1, "failed": 0}
    here = ours(referral)
    assert here.task.status == "completed" and here.task.output_code == "710925007"
    by = f"{world.orgs['food'].name} on Food bank system"
    assert timeline(referral)[-2:] == [("accept", by), ("complete", by)]
    # Nothing new there: the next pass mirrors nothing, and nothing was pushed back.
    assert service.poll(peer_id)["mirrored"] == 0
    run_due_jobs()
    assert [r for r in exchange.requests if r["method"] == "PUT"] == []


def test_a_decline_there_carries_its_reason(world, exchange, peer_id) -> None:
    referral = sent(world)
    moved_there(
        exchange,
        status="rejected",
        statusReason={
            "coding": [{"system": "urn:referrals:status-reason", "code": "at-capacity"}],
            "text": "No more boxes this month",
        },
    )
    service.poll(peer_id)
    here = ours(referral)
    assert here.task.status == "rejected"
    assert here.task.status_reason_code == "at-capacity"
    assert here.task.status_reason == "No capacity / waiting list closed"


def test_duplicate_and_older_versions_change_nothing(world, exchange, peer_id) -> None:
    referral = sent(world)
    accepted = moved_there(exchange, status="accepted")
    service.poll(peer_id)
    started = moved_there(exchange, status="in-progress")
    assert service.mirror(peer_id, started) is True
    # The same version again, then the older one arriving late: versions decide.
    assert service.mirror(peer_id, started) is False
    assert service.mirror(peer_id, accepted) is False
    assert ours(referral).task.status == "in-progress"
    assert [a for a, _ in timeline(referral)] == ["send", "accept", "start"]


def test_an_invalid_task_is_refused_logged_and_retried_later(
    world, exchange, peer_id, caplog
) -> None:
    referral = sent(world)
    moved_there(exchange, status="bogus")
    counts = service.poll(peer_id)
    assert counts == {"seen": 1, "mirrored": 0, "failed": 1}
    assert ours(referral).task.status == "requested"
    assert "not mirrored" in caplog.text
    assert "Maya" not in caplog.text  # no patient data in the log
    # The cursor stayed: once the peer sends a valid version, it is mirrored.
    moved_there(exchange, status="accepted")
    assert service.poll(peer_id)["mirrored"] == 1
    assert ours(referral).task.status == "accepted"


def test_the_peer_down_is_an_error_on_the_peer_and_the_pass_waits(
    world, exchange, peer_id, app
) -> None:
    sent(world)
    exchange.down()
    with pytest.raises(PeerUnavailable):
        service.poll(peer_id)
    db.session.remove()
    assert "did not answer" in db.session().get(ExchangePeer, peer_id).last_error
    runner = app.test_cli_runner()
    result = runner.invoke(args=["exchange", "poll"])
    assert result.exit_code == 1 and "did not answer" in result.output
    exchange.up()
    result = runner.invoke(args=["exchange", "poll"])
    assert result.exit_code == 0, result.output
    # The Task we pushed is new there since the last pass, and already ours.
    assert "Food bank system: Tasks changed there 1, mirrored here 0, failed 0." in result.output


def test_a_cancel_here_still_reaches_the_peer_after_its_accept_is_read(
    world, exchange, peer_id
) -> None:
    """The clinic cancels here while the pantry accepts there: reading the accept does not
    mark the cancellation as sent; the push then puts it on top of the peer's version."""
    referral = sent(world)
    move(world, "clinician", referral, "cancel", reason="need-resolved")
    accepted = moved_there(exchange, status="accepted")
    service.mirror(peer_id, accepted)
    assert ours(referral).task.status == "cancelled"
    run_due_jobs()
    task = remote_task(exchange)
    assert task["status"] == "cancelled"
    put = [r for r in exchange.requests if r["method"] == "PUT"][-1]
    assert put["headers"]["If-Match"] == f'W/"{accepted["meta"]["versionId"]}"'


def test_a_peer_that_is_only_told_cannot_move_a_referral_here(world, exchange) -> None:
    """The exchange is told of the food bank's referrals; the food bank works here. Whatever
    the exchange does to its copy, nothing moves here."""
    peer = service.add_peer(
        SYSTEM,
        name="Exchange",
        base_url=exchange.url,
        client_id=CLIENT_ID,
        organizations={world.orgs["clinic"].name: None, world.orgs["food"].name: None},
    )
    referral = sent(world)
    accepted = moved_there(exchange, status="accepted")
    assert service.mirror(peer.id, accepted) is False
    assert ours(referral).task.status == "requested"


def test_a_notification_that_outruns_the_push_finds_the_referral_by_our_identifier(
    world, exchange, peer_id
) -> None:
    """The peer's copy is found by the identifier we gave its Task, even when the push's
    answer never reached us (a crash, a timeout)."""
    referral = sent(world)
    session = db.session()
    link = session.scalar(select(ExchangeLink).where(ExchangeLink.referral_id == referral.id))
    link.remote_task_id = link.remote_version = None  # as if the answer was lost
    session.commit()
    db.session.remove()
    accepted = moved_there(exchange, status="accepted")
    assert service.mirror(peer_id, accepted) is True
    assert ours(referral).task.status == "accepted"
