"""Our referrals pushed to the exchange: a transaction with conditional creates when one is
sent, versioned Task updates as it moves, retries while the exchange is down or failing, and
dead-lettered pushes an admin can retry."""

from __future__ import annotations

from sqlalchemy import select

from referrals.db import db
from referrals.exchange import service
from referrals.exchange.models import ExchangeLink
from referrals.jobs import DEAD, DONE, QUEUED, Job, run_due_jobs
from referrals.loop.models import Referral
from tests.exchange.conftest import CLIENT_ID
from tests.fakes.fhir_exchange import FakeExchange
from tests.fhir.schema_check import assert_valid_r4
from tests.helpers import SYSTEM, World, make_patient, move, send


def configure(world: World, exchange: FakeExchange, **options) -> None:
    """The exchange is told of the clinic's and the food bank's referrals."""
    service.add_peer(
        SYSTEM,
        name="Exchange",
        base_url=exchange.url,
        client_id=CLIENT_ID,
        organizations={world.orgs["clinic"].name: None, world.orgs["food"].name: None},
        **options,
    )


def drain() -> dict[str, int]:
    counts = run_due_jobs()
    db.session.remove()
    return counts


def link_of(referral: Referral) -> ExchangeLink:
    db.session.remove()
    return db.session().scalar(select(ExchangeLink).where(ExchangeLink.referral_id == referral.id))


def push_jobs(status: str | None = None) -> list[Job]:
    db.session.remove()
    query = select(Job).where(Job.kind == service.PUSH_JOB)
    if status:
        query = query.where(Job.status == status)
    return list(db.session().scalars(query))


def due_now() -> None:
    """Make waiting jobs due (their backoff is what is tested elsewhere)."""
    from referrals.db import utcnow

    session = db.session()
    for job in session.scalars(select(Job).where(Job.status == QUEUED)):
        job.run_after = utcnow()
    session.commit()
    db.session.remove()


def test_a_sent_referral_is_pushed_as_a_transaction(world: World, exchange: FakeExchange) -> None:
    configure(world, exchange)
    referral = send(world, make_patient(world))
    assert drain().get(DONE, 0) >= 1
    posts = [r for r in exchange.requests if r["method"] == "POST" and r["path"].endswith("/fhir")]
    assert len(posts) == 1
    bundle = posts[0]["json"]
    assert_valid_r4(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Patient", "Consent", "ServiceRequest", "Task"]
    assert all(e["request"]["ifNoneExist"].startswith("identifier=") for e in bundle["entry"])
    tasks = exchange.resources("Task")
    assert len(tasks) == 1 and tasks[0]["status"] == "requested"
    # The exchange resolved our references between entries to its own ids.
    request = exchange.resources("ServiceRequest")[0]
    assert tasks[0]["focus"]["reference"] == f"ServiceRequest/{request['id']}"
    # What stays here is named by absolute references on our server.
    assert tasks[0]["owner"]["reference"].endswith(f"/fhir/Organization/{world.orgs['food'].id}")
    link = link_of(referral)
    assert link.remote_task_id == tasks[0]["id"] and link.remote_version == "1"
    assert link.pushed_version == 1 and link.last_error == ""


def test_each_move_updates_the_exchange_task_with_its_version(
    world: World, exchange: FakeExchange
) -> None:
    configure(world, exchange)
    referral = send(world, make_patient(world))
    drain()
    move(world, "food", referral, "accept")
    move(world, "food", referral, "start")
    drain()
    # Two changes, two jobs: the first sends the latest state, the second finds nothing new.
    puts = [r for r in exchange.requests if r["method"] == "PUT"]
    assert [r["headers"].get("If-Match") for r in puts] == ['W/"1"']
    task = exchange.resources("Task")[0]
    assert task["status"] == "in-progress" and task["meta"]["versionId"] == "2"
    assert link_of(referral).pushed_version == 3
    move(world, "food", referral, "complete", output_code="710925007")
    drain()
    puts = [r for r in exchange.requests if r["method"] == "PUT"]
    assert puts[-1]["headers"].get("If-Match") == 'W/"2"'
    task = exchange.resources("Task")[0]
    assert task["status"] == "completed"
    assert task["output"][0]["valueCodeableConcept"]["coding"][0]["code"] == "710925007"


def test_the_exchange_down_then_back_loses_nothing(world: World, exchange: FakeExchange) -> None:
    configure(world, exchange)
    exchange.down()
    referrals = [send(world, make_patient(world, given_name=f"Kid{n}")) for n in range(3)]
    move(world, "food", referrals[0], "accept")
    drain()
    assert not exchange.resources("Task")
    waiting = push_jobs(QUEUED)
    assert len(waiting) == 4 and all("did not answer" in j.last_error for j in waiting)
    assert "did not answer" in link_of(referrals[0]).last_error
    exchange.up()
    due_now()
    drain()
    statuses = sorted(t["status"] for t in exchange.resources("Task"))
    assert statuses == ["accepted", "requested", "requested"]
    assert all(link_of(r).last_error == "" for r in referrals)


def test_a_412_rereads_and_updates(world: World, exchange: FakeExchange) -> None:
    configure(world, exchange)
    referral = send(world, make_patient(world))
    drain()
    remote = exchange.resources("Task")[0]
    exchange.put_resource({**remote, "businessStatus": {"text": "seen by the exchange"}})
    move(world, "food", referral, "accept")
    drain()
    task = exchange.resources("Task")[0]
    assert task["status"] == "accepted" and task["meta"]["versionId"] == "3"
    assert link_of(referral).remote_version == "3"


def test_a_refused_push_is_dead_at_once_and_an_admin_retries_it(
    world: World, exchange: FakeExchange
) -> None:
    configure(world, exchange)
    exchange.fail_next(1, status=422)
    referral = send(world, make_patient(world))
    drain()
    dead = push_jobs(DEAD)
    assert len(dead) == 1 and "answered 422" in dead[0].last_error
    assert "answered 422" in link_of(referral).last_error
    service.retry_push(SYSTEM, dead[0].id)
    drain()
    assert len(exchange.resources("Task")) == 1
    assert link_of(referral).last_error == ""


def test_intermittent_500s_are_retried(world: World, exchange: FakeExchange) -> None:
    configure(world, exchange)
    exchange.fail_next(2, status=500)
    send(world, make_patient(world))
    drain()
    due_now()
    drain()
    due_now()
    drain()
    assert len(exchange.resources("Task")) == 1
    assert len(push_jobs(DONE)) == 1


def test_a_peer_that_is_not_told(world: World, exchange: FakeExchange) -> None:
    service.add_peer(
        SYSTEM,
        name="Exchange",
        base_url=exchange.url,
        client_id=CLIENT_ID,
        organizations={world.orgs["housing"].name: None},
    )
    send(world, make_patient(world))
    assert push_jobs() == []


def test_a_long_outage_is_waited_for_and_caught_up_in_order(
    world: World, exchange: FakeExchange
) -> None:
    """Twenty failed tries (hours of backoff in real time) and the pushes still wait; when the
    exchange is back, each referral arrives once, in its latest state."""
    configure(world, exchange)
    exchange.down()
    first = send(world, make_patient(world, given_name="First"))
    second = send(world, make_patient(world, given_name="Second"))
    move(world, "food", first, "accept")
    move(world, "food", first, "start")
    for _ in range(20):
        due_now()
        drain()
    waiting = push_jobs(QUEUED)
    assert len(waiting) == 4 and min(j.attempts for j in waiting) >= 20
    assert push_jobs(DEAD) == []
    exchange.up()
    due_now()
    drain()
    tasks = exchange.resources("Task")
    assert sorted(t["status"] for t in tasks) == ["in-progress", "requested"]
    assert link_of(first).pushed_version == 3 and link_of(second).pushed_version == 1
    creates = [
        r
        for r in exchange.requests
        if r["method"] == "POST" and r["path"].endswith("/fhir") and r["status"] == 200
    ]
    assert len(creates) == 2  # one transaction each, nothing sent twice


def test_a_confidential_referral_stays_labelled_restricted_on_the_peer(
    world: World, exchange: FakeExchange
) -> None:
    from tests.helpers import years_ago

    service.add_peer(
        SYSTEM,
        name="Exchange",
        base_url=exchange.url,
        client_id=CLIENT_ID,
        organizations={world.orgs["youth"].name: None},
    )
    teen = make_patient(world, birth_date=years_ago(15), phone="+15105550177")
    send(
        world,
        teen,
        "youth",
        category="intimate-partner-violence",
        sensitive="y",
        consent_given_by="patient",
        consent_given_by_name="Teen",
    )
    drain()
    for kind in ("ServiceRequest", "Task"):
        [resource] = exchange.resources(kind)
        assert {"code": "R"}.items() <= resource["meta"]["security"][0].items(), kind
