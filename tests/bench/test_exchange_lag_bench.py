"""Benchmark: the lag from a status change on instance B (a CBO's own system) to its
appearance on instance A (the referring clinic's), with A subscribed to B's Tasks: B's outbox
notifies A, A's outbox reads the Task from B and mirrors it. Both workers look for due jobs
every 0.2 s (WORKER_POLL_SECONDS). Figures only."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import pytest

from referrals.terminology import california_today
from tests.exchange.test_two_instances import Browser, eventually, two_instances
from tests.helpers import years_ago

pytestmark = pytest.mark.bench

REFERRALS = 10


def _seen(check, timeout: float = 30) -> float:
    """Seconds until `check()` is true, looking every 20 ms."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if check():
            return time.perf_counter() - began
        time.sleep(0.02)
    raise AssertionError("not seen on A")


@pytest.mark.parametrize(
    ("pacing", "env"),
    [
        ("texts not paced", {}),
        ("texts paced 1/s per sender, as deployed", {"SMS_RATE_PER_SECOND": "1"}),
    ],
)
def test_status_lag_between_two_instances_with_subscriptions(
    tmp_path: Path, pacing: str, env: dict
) -> None:
    for a, b, ids in two_instances(tmp_path, "subscribe", **env):
        _measure(a, b, ids, pacing)


def _measure(a, b, ids, pacing: str) -> None:
    if True:
        doctor = Browser(a, "doctor@sunrise.example")
        on_a = []
        for n in range(REFERRALS):
            page = doctor.post(
                "/patients/new",
                {
                    "given_name": f"Kid{n}",
                    "family_name": "Lag",
                    "birth_date": years_ago(8),
                    "language": "en",
                    "guardian_name": "Parent Lag",
                    "guardian_relationship": "mother",
                    "guardian_phone": "+15105550166",
                },
            )
            patient_id = re.search(r"/patients/([0-9a-f-]{36})", page.url).group(1)
            doctor.get(f"/patients/{patient_id}/referrals/new")
            sent = doctor.post(
                f"/patients/{patient_id}/referrals",
                {
                    "service_id": ids["service_id"],
                    "note": "Bench",
                    "consent_given_by": "guardian",
                    "consent_given_by_name": "Parent Lag",
                    "consent_method": "verbal",
                    "consent_date": california_today().isoformat(),
                },
            )
            on_a.append(sent.url.rsplit("/", 1)[-1])
        staff = Browser(b, "staff@pantry.example")
        eventually(
            lambda: staff.get("/inbox").text.count("Lag") >= REFERRALS, "all on B", logs=(a, b)
        )
        inbox = staff.get("/inbox").text
        on_b = list(dict.fromkeys(re.findall(r'href="/referrals/([0-9a-f-]{36})"', inbox)))
        lags = []
        for referral_b in on_b[:REFERRALS]:
            name = re.search(r"Kid\d+", staff.get(f"/referrals/{referral_b}").text).group(0)
            index = int(name.removeprefix("Kid"))
            accepted = staff.post(
                f"/referrals/{referral_b}/status", {"action": "accept", "version": "1"}
            )
            assert accepted.ok
            url = f"/referrals/{on_a[index]}"
            lags.append(_seen(lambda url=url: "Accepted" in doctor.get(url).text) * 1000)
        lags.sort()
        p95 = lags[max(0, int(len(lags) * 0.95) - 1)]
        print(
            f"\nstatus change on B seen on A (subscription, id-only; {pacing}): n={len(lags)} "
            f"median={statistics.median(lags):.0f} ms p95={p95:.0f} ms max={lags[-1]:.0f} ms"
        )
