"""Benchmark: drain 10,000 queued family notices through the real twilio client and a fake
Twilio API on 127.0.0.1, with `flask worker --once` in its own process (`make bench`). Prints
messages per second and the worker's peak memory; never fails on timing."""

from __future__ import annotations

import resource
import time
import uuid

import pytest
from sqlalchemy import func, insert, select

from referrals.db import db, utcnow
from referrals.jobs import Job
from referrals.loop.models import ReferralEvent
from referrals.notify.models import Message
from referrals.notify.service import NOTICE_JOB
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import make_patient, send
from tests.notify.test_twilio_delivery import _worker

pytestmark = pytest.mark.bench

NOTICES = 10_000
FAMILIES = 50


def test_drain_10000_notices_through_twilio(world, database_url):
    referrals = [
        send(world, make_patient(world, given_name=f"B{n}", guardian_phone=f"+1510555{n:04d}"))
        for n in range(FAMILIES)
    ]
    session = db.session()
    session.execute(Job.__table__.delete())  # the sends' own notices: replaced below
    now = utcnow()
    events, jobs = [], []
    for n in range(NOTICES):
        referral = referrals[n % FAMILIES]
        event_id = uuid.uuid4()
        events.append(
            dict(
                id=event_id,
                referral_id=referral.id,
                at=now,
                actor_name="Bench",
                actor_org_name="Bench",
                action="send",
                to_status="requested",
                note="",
                reason="",
            )
        )
        jobs.append(
            dict(
                id=uuid.uuid4(),
                kind=NOTICE_JOB,
                payload={"event_id": str(event_id)},
                dedupe_key=f"{NOTICE_JOB}:{event_id}",
                status="queued",
                attempts=0,
                max_attempts=8,
                run_after=now,
                last_error="",
                created_at=now,
            )
        )
    session.execute(insert(ReferralEvent), events)
    session.execute(insert(Job), jobs)
    session.commit()
    db.session.remove()

    with FakeTwilio() as fake:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        worker = _worker(database_url, fake, rate="1000000")
        out, err = worker.communicate(timeout=1800)
        elapsed = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        assert worker.returncode == 0, err
        sent = db.session().scalar(select(func.count(Message.id)).where(Message.status == "sent"))
        print(
            f"\nnotices through the fake Twilio: {sent} sent in {elapsed:.1f} s = "
            f"{sent / elapsed:.0f}/s; worker peak RSS {peak_kib / 1024:.0f} MiB "
            f"(before: {before / 1024:.0f} MiB); provider requests {len(fake.requests)}; "
            f"worker said: {out.strip()}"
        )
        assert sent == NOTICES
