"""Benchmarks of the screening flow: `make bench`. Figures only; never fails on timing."""

from __future__ import annotations

import time

import pytest

from referrals.loop.from_screening import refer_for_needs, suggest_services
from referrals.patients.screening import complete_screening, save_answers, start_screening
from tests.bench.test_bench import _report, _timed
from tests.helpers import make_patient

pytestmark = pytest.mark.bench

SCREENINGS = 200
AHC_FOOD_AND_HOUSING = {
    "q-71802-3": "LA31994-9",
    "q-88122-7": "LA28397-0",
    "q-88123-5": "LA6729-3",
}


def test_screening_to_referrals(world, client):
    clinician = world.actor("clinician")
    patients = [make_patient(world, given_name=f"S{n}") for n in range(SCREENINGS)]
    finished = []
    start = time.perf_counter()
    for patient in patients:
        screening = start_screening(
            clinician, patient.id, {"respondent": f"guardian:{patient.guardians[0].id}"}
        )
        save_answers(clinician, screening.id, AHC_FOOD_AND_HOUSING, rest_negative=True)
        finished.append(complete_screening(clinician, screening.id, {}))
    elapsed = time.perf_counter() - start
    print(
        f"\nAHC screening start + save + finish (10 observations, 2 needs): {SCREENINGS} in "
        f"{elapsed:.1f} s = {elapsed * 1000 / SCREENINGS:.1f} ms each"
    )

    start = time.perf_counter()
    for patient, screening in zip(patients, finished, strict=True):
        food = next(n for n in screening.needs if n.domain == "food-insecurity")
        housing = next(n for n in screening.needs if n.domain == "housing-instability")
        guardian = patient.guardians[0]
        refer_for_needs(
            clinician,
            screening.id,
            {
                f"need-{food.id}": "help-now",
                f"need-{housing.id}": "help-now",
                f"service-{food.id}": str(world.service_ids["food"]),
                f"service-{housing.id}": str(world.service_ids["housing"]),
                "consent_by": f"guardian:{guardian.id}",
                "consent_method": "verbal",
                "sms_to": f"guardian:{guardian.id}",
            },
        )
    elapsed = time.perf_counter() - start
    print(
        f"refer_for_needs, 2 needs -> 2 referrals + 2 consents: "
        f"{elapsed * 1000 / SCREENINGS:.1f} ms each"
    )

    last = finished[-1]
    _report(
        "suggest_services for 2 needs", _timed(lambda: suggest_services(patients[-1], last), 30)
    )
    client.login(world, "clinician")
    _report(
        "GET /screenings/<id> (needs page with suggestions)",
        _timed(lambda: client.get(f"/screenings/{last.id}"), 30),
    )
