"""Benchmarks: `make bench`. They print figures and never fail on timing."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import text

from referrals.db import db
from referrals.jobs import run_due_jobs
from referrals.loop.service import inbox, open_referral
from tests.helpers import make_patient, move, send

pytestmark = pytest.mark.bench

REFERRALS = 1000


def _timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _report(name: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(f"\n{name}: n={len(samples)} median={statistics.median(samples):.1f} ms p95={p95:.1f} ms")


def test_referral_loop_throughput_and_page_latency(world, client):
    patients = [make_patient(world, given_name=f"P{n}") for n in range(50)]
    start = time.perf_counter()
    referrals = [
        send(
            world,
            patients[n % 50],
            "food" if n % 3 else "housing",
            consent_given_by_name="Guardian",
        )
        for n in range(REFERRALS)
    ]
    elapsed = time.perf_counter() - start
    print(f"\nsend_referral: {REFERRALS} in {elapsed:.1f} s = {REFERRALS / elapsed:.0f}/s")

    start = time.perf_counter()
    for referral in referrals[:200]:
        if referral.performer_org_id == world.orgs["food"].id:
            move(world, "food", referral, "accept")
    print(
        f"accept (with version check, event, audit, job): "
        f"{(time.perf_counter() - start) * 1000 / 200:.1f} ms each"
    )

    food = world.actor("food")
    _report("inbox service, first page of ~670", _timed(lambda: inbox(food), 50))
    _report("inbox service, filtered to accepted", _timed(lambda: inbox(food, "accepted"), 50))
    _report("open_referral with timeline", _timed(lambda: open_referral(food, referrals[1].id), 50))

    if db.is_postgres:
        # The inbox's query plan at this size (DESIGN §3: indexes follow the pages' queries).
        db.session().execute(text("ANALYZE"))
        plan = db.session().execute(
            text(
                "EXPLAIN SELECT id FROM tasks WHERE owner_org_id = :org AND status = 'requested' "
                "ORDER BY authored_on DESC LIMIT 25"
            ),
            {"org": world.orgs["food"].id},
        )
        print("\ninbox plan:\n  " + "\n  ".join(row[0] for row in plan))
        db.session.remove()

    client.login(world, "food")
    _report("GET /inbox (full page)", _timed(lambda: client.get("/inbox"), 30))
    _report(
        "GET /inbox?status=requested (HTMX fragment)",
        _timed(lambda: client.get("/inbox?status=requested", htmx=True, target="inbox-table"), 30),
    )

    start = time.perf_counter()
    counts = run_due_jobs()
    elapsed = time.perf_counter() - start
    sent = sum(counts.values())
    print(f"worker: {sent} notices in {elapsed:.1f} s = {sent / elapsed:.0f}/s ({counts})")
