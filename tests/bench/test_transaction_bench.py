"""Benchmark of referrals sent as transaction Bundles: `make bench`. Figures only.

Each Bundle is a new patient with a need, a consent, a ServiceRequest and its Task, posted to
/fhir with a bearer token: structure (R4B models) and profile checks, the referral rules, the
writes, audit entries, partner identifiers and the family's notice, in one transaction."""

from __future__ import annotations

import json
import time

import pytest

from tests.bench.test_bench import _report
from tests.fhir.test_transaction import post, referral_bundle, token

pytestmark = pytest.mark.bench

BUNDLES = 300


def test_referral_bundles_per_second(app, world):
    bearer = token(app, world)
    bundles = [referral_bundle(world, tag=f"B{n}") for n in range(BUNDLES)]
    for n, bundle in enumerate(bundles):  # a different family each time
        patient = bundle["entry"][0]["resource"]
        patient["name"][0]["given"] = [f"Child{n}"]
    samples = []
    start = time.perf_counter()
    for bundle in bundles:
        began = time.perf_counter()
        response = post(app, json.dumps(bundle), bearer)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.get_json()
    elapsed = time.perf_counter() - start
    print(
        f"\nreferral transaction Bundles (5 entries, new patient): {BUNDLES} in {elapsed:.1f} s "
        f"= {BUNDLES / elapsed:.0f} per second"
    )
    _report("one new referral Bundle", samples)

    retries = []
    start = time.perf_counter()
    for bundle in bundles[:100]:
        began = time.perf_counter()
        response = post(app, json.dumps(bundle), bearer)
        retries.append((time.perf_counter() - began) * 1000)
        assert response.get_json()["entry"][3]["response"]["status"] == "200 OK"
    elapsed = time.perf_counter() - start
    print(f"\nretried Bundles (nothing written): 100 in {elapsed:.1f} s = {100 / elapsed:.0f}/s")
    _report("one retried Bundle", retries)
