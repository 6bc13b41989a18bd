"""Benchmark: the IG's polling query, `GET /fhir/Task?owner=...&_lastUpdated=gt...`, over HTTP
with a bearer token, at 1,000,000 Tasks on PostgreSQL (generated in the database). Prints p50
and p95; never fails on timing. (`make bench`; on SQLite it is skipped.)"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from referrals.db import db, utcnow
from referrals.directory.service import register_organization
from tests.bench.test_bench import _report
from tests.fhir.test_api import get, token
from tests.helpers import SYSTEM, make_patient, send

pytestmark = pytest.mark.bench

TASKS = 1_000_000
OWNERS = 200


def test_task_polling_at_a_million_tasks(app, world):
    if not db.is_postgres:
        pytest.skip("the polling benchmark runs on PostgreSQL (TEST_DATABASE_URL)")
    referral = send(world, make_patient(world))
    owners = [
        register_organization(SYSTEM, name=f"Bench CBO {n}", kind="cbo", hipaa_covered=False).id
        for n in range(OWNERS - 1)
    ]
    owners.append(world.orgs["food"].id)
    session = db.session()
    start = time.perf_counter()
    session.execute(text("CREATE TEMP TABLE bench_owners (n int, id uuid)"))
    session.execute(
        text("INSERT INTO bench_owners VALUES (:n, :id)"),
        [{"n": n, "id": owner} for n, owner in enumerate(owners)],
    )
    now = utcnow()
    session.execute(
        text(
            """
            INSERT INTO referrals (id, patient_id, requester_org_id, requester_user_id,
                performer_org_id, service_id, status, intent, category, code, code_display,
                priority, note, sensitive, contact_prohibited, sms_allowed, created_at, updated_at)
            SELECT gen_random_uuid(), r.patient_id, r.requester_org_id, r.requester_user_id,
                o.id, r.service_id, 'active', 'order', r.category, r.code, r.code_display,
                'routine', '', false, false, true,
                :now - make_interval(secs => g), :now - make_interval(secs => g)
            FROM generate_series(1, :n) AS g
            JOIN bench_owners o ON o.n = g % :owners
            CROSS JOIN (SELECT * FROM referrals WHERE id = :referral) r
            """
        ),
        {"n": TASKS, "owners": OWNERS, "referral": referral.id, "now": now},
    )
    session.execute(
        text(
            """
            INSERT INTO tasks (id, referral_id, owner_org_id, requester_org_id, status,
                status_reason, business_status, outcome_note, authored_on, updated_at, version)
            SELECT gen_random_uuid(), r.id, r.performer_org_id, r.requester_org_id,
                (ARRAY['requested','accepted','in-progress','completed'])[1 + (random() * 3)::int],
                '', '', '', r.created_at, r.updated_at, 1
            FROM referrals r WHERE r.id <> :referral
            """
        ),
        {"referral": referral.id},
    )
    session.execute(text("ANALYZE referrals"))
    session.execute(text("ANALYZE tasks"))
    session.commit()
    print(f"\ngenerated {TASKS} tasks for {OWNERS} owners in {time.perf_counter() - start:.0f} s")

    bearer = token(app, world, "food")
    owner = world.orgs["food"].id
    since = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    url = f"/fhir/Task?owner=Organization/{owner}&_lastUpdated=gt{since}"
    first = get(app, url, bearer).get_json()
    print(f"polling answer: total {first['total']}, {len(first.get('entry', []))} in the page")
    plan = db.session().execute(
        text(
            "EXPLAIN ANALYZE SELECT id FROM tasks"
            " WHERE (owner_org_id = :o OR requester_org_id = :o)"
            " AND owner_org_id = :o AND updated_at > :t ORDER BY updated_at, id LIMIT 50"
        ),
        {"o": owner, "t": now - timedelta(hours=1)},
    )
    print("plan:\n  " + "\n  ".join(row[0] for row in plan))
    db.session.remove()
    _report(
        "GET /fhir/Task?owner&_lastUpdated=gt (1 h of changes)",
        _timed_get(app, url, bearer, 50),
    )
    latest = now.isoformat().replace("+00:00", "Z")
    quiet = f"/fhir/Task?owner=Organization/{owner}&_lastUpdated=gt{latest}"
    _report(
        "GET /fhir/Task?owner&_lastUpdated=gt (nothing new)", _timed_get(app, quiet, bearer, 50)
    )


def _timed_get(app, url: str, bearer: str, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = get(app, url, bearer)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return samples
