"""The terminology of needs: the SNOMED CT finding and ICD-10-CM code a need (an SDOHCC-Condition)
carries for each SDOH domain, and what the goal of helping with it (an SDOHCC-Goal) aims at.
Pure: no Flask, no database.

Where a code could not be confirmed against the SDOHCC IG (2.3.0) or the ICD-10-CM code list, it
is left out (None) and the comment says why: a need is then recorded with its SDOH category and
text only, never with a guessed code.
"""

from __future__ import annotations

from dataclasses import dataclass

from referrals.terminology import SDOH_CATEGORIES, SNOMED

ICD_10_CM = "http://hl7.org/fhir/sid/icd-10-cm"


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str


@dataclass(frozen=True)
class NeedCodes:
    domain: str  # SDOHCC-ValueSetSDOHCategory code
    display: str  # what the clinician and the family read
    snomed: Coding | None
    icd10cm: Coding | None

    @property
    def codings(self) -> tuple[Coding, ...]:
        return tuple(coding for coding in (self.snomed, self.icd10cm) if coding is not None)


def _sct(code: str, display: str) -> Coding:
    return Coding(SNOMED, code, display)


def _icd(code: str, display: str) -> Coding:
    return Coding(ICD_10_CM, code, display)


NEED_CODES: dict[str, NeedCodes] = {
    need.domain: need
    for need in (
        # SDOHCC-ConditionFoodInsecurityExample: 733423003. It pairs it with Z59.4, which
        # ICD-10-CM split in FY2023; Z59.41 "Food insecurity" is the current code.
        NeedCodes(
            "food-insecurity",
            "Food insecurity",
            _sct("733423003", "Food insecurity"),
            _icd("Z59.41", "Food insecurity"),
        ),
        NeedCodes(
            "housing-instability",
            "Housing instability",
            _sct("1156191002", "Housing instability"),
            _icd("Z59.811", "Housing instability, housed, with risk of homelessness"),
        ),
        # SDOHCC-ConditionHomelessExample: 32911000 with Z59.0, split in FY2022 into
        # Z59.00 / Z59.01 (sheltered) / Z59.02 (unsheltered); a screening does not tell which.
        NeedCodes(
            "homelessness",
            "Homelessness",
            _sct("32911000", "Homeless"),
            _icd("Z59.00", "Homelessness, unspecified"),
        ),
        # No SNOMED CT finding confirmed for inadequate housing.
        NeedCodes(
            "inadequate-housing",
            "Inadequate housing",
            None,
            _icd("Z59.10", "Inadequate housing, unspecified"),
        ),
        # 160695008 is the SDOHCC IG's transportation-insecurity assessment example.
        NeedCodes(
            "transportation-insecurity",
            "Transportation insecurity",
            _sct("160695008", "Transport too expensive"),
            _icd("Z59.82", "Transportation insecurity"),
        ),
        # SNOMED CT 105536009 (GRAVITY.md's example) could not be confirmed: left out.
        NeedCodes(
            "utility-insecurity",
            "Utility insecurity",
            None,
            _icd("Z59.12", "Inadequate housing utilities"),
        ),
        # GRAVITY.md suggests T74.11, but that means confirmed adult physical abuse and needs a
        # seventh character: not a screening-level code, so no ICD-10-CM code here.
        NeedCodes(
            "intimate-partner-violence",
            "Intimate partner violence",
            _sct("706893006", "Victim of intimate partner abuse"),
            None,
        ),
        # SDOHCC-ConditionUnemployedExample.
        NeedCodes(
            "employment-status",
            "Unemployment",
            _sct("73438004", "Unemployed"),
            _icd("Z56.0", "Unemployment, unspecified"),
        ),
        # 422650009 is the SDOHCC IG's social-isolation assessment example. GRAVITY.md's Z60.2
        # means "problems related to living alone", not isolation: left out.
        NeedCodes(
            "social-connection",
            "Social isolation",
            _sct("422650009", "Social isolation"),
            None,
        ),
        # The SDOHCC IG files PRAPARE's unmet clothing need here; no condition codes confirmed.
        NeedCodes("material-hardship", "Material hardship", None, None),
    )
}


def need_codes(domain: str) -> NeedCodes:
    """The condition codes for a positive SDOH domain; category and label only when none are
    confirmed. A domain outside the SDOHCC category value set is an error."""
    if domain in NEED_CODES:
        return NEED_CODES[domain]
    if domain not in SDOH_CATEGORIES:
        raise ValueError(f"{domain!r} is not an SDOH domain of the SDOHCC category value set.")
    return NeedCodes(domain, SDOH_CATEGORIES[domain], None, None)


# --- goals --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoalCodes:
    """What an SDOHCC-Goal for a need of this domain aims at: Goal.description."""

    domain: str  # SDOHCC-ValueSetSDOHCategory code
    display: str  # Goal.description.text
    snomed: Coding | None


# The IG binds Goal.description per domain to Gravity's VSAC goal value sets, whose members are
# not in the IG's source: a code is used only where an HL7 example confirms it; every other
# domain's goal is described in words (the IG: "If no code is available, use
# CodeableConcept.text").
GOAL_CODES: dict[str, GoalCodes] = {
    goal.domain: goal
    for goal in (
        # SDOHCC-GoalFoodSecurityExample (it addresses SDOHCC-ConditionFoodInsecurityExample).
        GoalCodes("food-insecurity", "Food security", _sct("1078229009", "Food security")),
        GoalCodes("housing-instability", "Housing stability", None),
        GoalCodes("homelessness", "Stable housing", None),
        GoalCodes("inadequate-housing", "Adequate housing", None),
        GoalCodes("transportation-insecurity", "Transportation security", None),
        GoalCodes("utility-insecurity", "Utility security", None),
        GoalCodes("intimate-partner-violence", "Safety from intimate partner violence", None),
        # US Core's SDOH goal example (goal-sdoh-2, in HL7/US-Core input/examples).
        GoalCodes(
            "employment-status", "In paid employment", _sct("406156006", "In paid employment")
        ),
        GoalCodes("social-connection", "Social connection", None),
        GoalCodes("material-hardship", "Material needs met", None),
    )
}


def goal_codes(domain: str) -> GoalCodes:
    """The goal for a need of an SDOH domain; in words naming the domain when we have none of
    our own. A domain outside the SDOHCC category value set is an error."""
    if domain in GOAL_CODES:
        return GOAL_CODES[domain]
    if domain not in SDOH_CATEGORIES:
        raise ValueError(f"{domain!r} is not an SDOH domain of the SDOHCC category value set.")
    return GoalCodes(domain, f"{SDOH_CATEGORIES[domain]} addressed", None)
