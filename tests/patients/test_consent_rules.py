"""Who may consent to a disclosure for whom (California minor-consent rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.patients.consent_rules import (
    ADULT_AGE,
    MINOR_CONSENT_MIN_AGE,
    consent_problem,
)

pytestmark = pytest.mark.pure

OK = None

# (age, who gives consent, sensitive minor-consent service) -> OK, or a word the problem contains.
TABLE = [
    # Adults consent for themselves, sensitive or not.
    (18, "patient", False, OK),
    (18, "patient", True, OK),
    (45, "patient", False, OK),
    (90, "patient", True, OK),
    (18, "guardian", False, "adult"),
    (18, "guardian", True, "adult"),
    (40, "guardian", False, "adult"),
    # A minor's ordinary referral: a parent or guardian consents.
    (0, "guardian", False, OK),
    (5, "guardian", False, OK),
    (11, "guardian", False, OK),
    (12, "guardian", False, OK),
    (17, "guardian", False, OK),
    (5, "patient", False, "parent or guardian"),
    (12, "patient", False, "parent or guardian"),
    (17, "patient", False, "parent or guardian"),
    # Sensitive (minor-consent) services: the adolescent aged 12 or over, never the guardian.
    (12, "patient", True, OK),
    (15, "patient", True, OK),
    (17, "patient", True, OK),
    (12, "guardian", True, "not a parent or guardian"),
    (17, "guardian", True, "not a parent or guardian"),
    # Under 12 no one can consent to a confidential referral.
    (11, "patient", True, "12 or over"),
    (11, "guardian", True, "12 or over"),
    (0, "patient", True, "12 or over"),
    (6, "guardian", True, "12 or over"),
]


def row_id(row) -> str:
    age, giver, sensitive, outcome = row
    kind = "sensitive" if sensitive else "ordinary"
    verdict = "allowed" if outcome is OK else "refused"
    return f"age-{age}-{giver}-{kind}-{verdict}"


@pytest.mark.parametrize(
    ("age", "giver", "sensitive", "outcome"), TABLE, ids=[row_id(r) for r in TABLE]
)
def test_consent_table(age, giver, sensitive, outcome):
    problem = consent_problem(age=age, giver=giver, sensitive=sensitive)
    if outcome is OK:
        assert problem is None
    else:
        assert problem is not None
        assert outcome in problem


def test_age_limits_are_californias():
    assert MINOR_CONSENT_MIN_AGE == 12
    assert ADULT_AGE == 18


def test_under_twelve_problem_states_the_patients_age():
    assert "this patient is 9" in consent_problem(age=9, giver="patient", sensitive=True)


@pytest.mark.parametrize("giver", ["", "parent", "Patient", "clinician"])
@pytest.mark.parametrize(("age", "sensitive"), [(30, False), (15, True), (15, False)])
def test_anyone_other_than_the_right_giver_is_refused(age, sensitive, giver):
    assert consent_problem(age=age, giver=giver, sensitive=sensitive) is not None


@given(
    age=st.integers(min_value=0, max_value=120),
    giver=st.sampled_from(["patient", "guardian"]),
    sensitive=st.booleans(),
)
def test_exactly_one_giver_may_consent_at_every_age_from_twelve(age, giver, sensitive):
    problem = consent_problem(age=age, giver=giver, sensitive=sensitive)
    if age >= ADULT_AGE or (sensitive and age >= MINOR_CONSENT_MIN_AGE):
        assert (problem is None) == (giver == "patient")
    elif sensitive:
        assert problem is not None
    else:
        assert (problem is None) == (giver == "guardian")
