"""Who may consent to a disclosure for whom. Pure.

California lets minors 12 and over consent alone to some services (Family Code 6924 mental
health, 6926 sexual and reproductive health, 6929 substance use; Health & Safety Code 124260),
and the parent has no right to those records (H&S Code 123110(a)). Otherwise a parent or
guardian consents for a minor."""

from __future__ import annotations

from datetime import date

MINOR_CONSENT_MIN_AGE = 12
ADULT_AGE = 18

# Needs whose referrals are confidential whatever the service: a text or a printout about them
# can put someone in danger. Partner violence: an adolescent of 12 or over also consents alone
# (Family Code 6930); for a younger child the parent consents, and still no notice goes to a
# guardian's phone.
SENSITIVE_DOMAINS = frozenset({"intimate-partner-violence"})


def is_sensitive(*, marked: bool, service_sensitive: bool, domain: str | None) -> bool:
    """A referral is confidential when the clinician marks it so, when the directory flags the
    service, or when the need is one of SENSITIVE_DOMAINS."""
    return marked or service_sensitive or domain in SENSITIVE_DOMAINS


def is_minor_consent(*, marked: bool, domain: str | None, age: int) -> bool:
    """Whether the adolescent, not a parent, gives the consent: when the clinician marks the
    referral as a minor-consent one, and for a sensitive need from age 12. (A parent may consent
    to a service the directory flags sensitive; the referral stays confidential all the same.)"""
    if marked:
        return True
    return domain in SENSITIVE_DOMAINS and age >= MINOR_CONSENT_MIN_AGE


def age_on(birth_date: date, today: date) -> int:
    """Age in whole years on a given day."""
    years = today.year - birth_date.year
    if (today.month, today.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def consent_problem(*, age: int, giver: str, sensitive: bool) -> str | None:
    """Why this person cannot give this consent, or None when they can."""
    if age >= ADULT_AGE:
        if giver != "patient":
            return "The patient is an adult: the consent must come from the patient."
        return None
    if sensitive:
        if age < MINOR_CONSENT_MIN_AGE:
            return (
                f"A confidential (minor-consent) referral needs a patient aged "
                f"{MINOR_CONSENT_MIN_AGE} or over; this patient is {age}."
            )
        if giver != "patient":
            return (
                "A confidential (minor-consent) referral is consented to by the adolescent, "
                "not a parent or guardian."
            )
        return None
    if giver != "guardian":
        return "The patient is a minor: a parent or guardian must give the consent."
    return None
