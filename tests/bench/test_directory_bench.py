"""Directory search at 100,000 services: `make bench`. Prints figures, never fails on timing.

Method: generate a synthetic California directory (generate.py), ANALYZE, then time
`search_services` (the whole search: the ranked query plus loading the page of results) for
need + ZIP + 10-mile radius + language over 300 varied queries drawn with a fixed seed, and
print p50 and p95, with the query plan."""

from __future__ import annotations

import os
import random
import statistics
import time

import pytest
from sqlalchemy import text

from referrals.db import db, utcnow
from referrals.directory.generate import generate_directory
from referrals.directory.geo import zips_in_state
from referrals.directory.search import PAGE_SIZE, parse_search, ranked_services, search_services
from referrals.terminology import SDOH_CATEGORIES

pytestmark = pytest.mark.bench

SERVICES = int(os.environ.get("BENCH_DIRECTORY_SERVICES", "100000"))
QUERIES = 300
LANGUAGES = ("es", "es", "es", "en", "zh", "vi", "tl", "ko")


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(len(ordered) * share) - 1)]


def _queries(rng: random.Random, county: str | None = None) -> list[dict[str, str]]:
    zips = [z.code for z in zips_in_state("CA") if z.county and county in (None, z.county)]
    return [
        {
            "need": rng.choice(list(SDOH_CATEGORIES)),
            "zip": rng.choice(zips),
            "radius": "10",
            "language": rng.choice(LANGUAGES),
        }
        for _ in range(QUERIES)
    ]


def _measure(label: str, queries: list[dict[str, str]]) -> None:
    session = db.session()
    searches = [parse_search(q) for q in queries]
    for search in searches[:20]:  # warm the caches
        search_services(session, search)
    samples, found = [], []
    for search in searches:
        begin = time.perf_counter()
        page = search_services(session, search)
        samples.append((time.perf_counter() - begin) * 1000)
        found.append(len(page.results))
    print(
        f"{label}: n={len(samples)} p50={statistics.median(samples):.1f} ms "
        f"p95={_percentile(samples, 0.95):.1f} ms max={max(samples):.1f} ms; results per "
        f"query: median {statistics.median(found):.0f}, max {max(found)}, empty {found.count(0)}"
    )


def _plan(search) -> list[str]:
    session = db.session()
    stmt = ranked_services(search, utcnow(), PAGE_SIZE + 1)
    sql = str(stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN ANALYZE " if db.is_postgres else "EXPLAIN QUERY PLAN "
    return [" | ".join(str(c) for c in row) for row in session.execute(text(explain + sql))]


def test_directory_search_at_100k_services(world, client):
    session = db.session()
    start = time.perf_counter()
    made = generate_directory(session, SERVICES, seed=42)
    elapsed = time.perf_counter() - start
    backend = "PostgreSQL" if db.is_postgres else "SQLite"
    print(
        f"\n[{backend}] gen-directory: {made.services} services, {made.organizations} "
        f"organisations in {elapsed:.1f} s ({made.services / elapsed:.0f}/s)"
    )
    session.execute(text("ANALYZE"))
    session.commit()
    rows = session.scalar(text("SELECT count(*) FROM directory_search_rows"))
    print(f"search rows: {rows}")

    _measure(
        "search need + ZIP + 10 mi + language, ZIPs across California", _queries(random.Random(5))
    )
    _measure(
        "the same in Los Angeles County only (densest)",
        _queries(random.Random(6), "Los Angeles County"),
    )
    _measure(
        "ZIP + 10 mi alone (a ZIP typed first), ZIPs across California",
        [{"zip": q["zip"]} for q in _queries(random.Random(7))],
    )
    # The busiest place: food in Spanish around South Los Angeles.
    busy = parse_search(
        {"need": "food-insecurity", "zip": "90011", "radius": "10", "language": "es"}
    )
    print("plan (food, 90011, 10 mi, Spanish):\n  " + "\n  ".join(_plan(busy)))
    session.rollback()
    db.session.remove()

    client.login(world, "clinician")
    pages = []
    for q in _queries(random.Random(9))[:50]:
        url = "/directory?" + "&".join(f"{k}={v}" for k, v in q.items())
        begin = time.perf_counter()
        response = client.get(url, htmx=True, target="results")
        pages.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200
    print(
        f"GET /directory results fragment: n={len(pages)} p50={statistics.median(pages):.1f} ms "
        f"p95={_percentile(pages, 0.95):.1f} ms"
    )
