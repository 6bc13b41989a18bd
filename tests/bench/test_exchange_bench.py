"""Benchmarks of the exchange: `make bench`. Figures only; never fails on timing.

Push throughput: referrals sent here, then one worker pass pushing each to the local exchange
double over HTTP (token, transaction Bundle of 4 resources with conditional creates, the
answer recorded on the referral's link); then each accepted, pushed as a versioned update."""

from __future__ import annotations

import time

import pytest

from referrals.db import db
from referrals.exchange import service
from referrals.exchange.client import public_jwks
from referrals.jobs import run_due_jobs
from tests.fakes.fhir_exchange import FakeExchange
from tests.helpers import SYSTEM, make_patient, move, send

pytestmark = pytest.mark.bench

REFERRALS = 200


def _only_pushes() -> None:
    """Set the families' text notices aside: only the pushes are timed."""
    from sqlalchemy import update

    from referrals.jobs import DONE, Job

    session = db.session()
    session.execute(update(Job).where(Job.kind == "sms.notice").values(status=DONE))
    session.commit()
    db.session.remove()


def test_push_throughput(world):
    with FakeExchange() as exchange:
        exchange.register_client("bench", public_jwks())
        service.add_peer(
            SYSTEM,
            name="Exchange",
            base_url=exchange.url,
            client_id="bench",
            organizations={world.orgs["clinic"].name: None, world.orgs["food"].name: None},
        )
        patients = [make_patient(world, given_name=f"B{n}") for n in range(REFERRALS)]
        referrals = [send(world, patient) for patient in patients]
        _only_pushes()
        start = time.perf_counter()
        counts = run_due_jobs()
        elapsed = time.perf_counter() - start
        assert counts.get("done") == REFERRALS and len(exchange.resources("Task")) == REFERRALS
        print(
            f"\nexchange push, new referrals (transaction of 4): {REFERRALS} in {elapsed:.1f} s "
            f"= {REFERRALS / elapsed:.0f} per second"
        )
        for referral in referrals:
            move(world, "food", referral, "accept")
        _only_pushes()
        start = time.perf_counter()
        run_due_jobs()
        elapsed = time.perf_counter() - start
        accepted = [t for t in exchange.resources("Task") if t["status"] == "accepted"]
        assert len(accepted) == REFERRALS
        print(
            f"exchange push, Task updates (If-Match): {REFERRALS} in {elapsed:.1f} s "
            f"= {REFERRALS / elapsed:.0f} per second"
        )
