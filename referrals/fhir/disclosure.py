"""What an organisation other than the patient's clinic may see of a Patient and of a
ServiceRequest: the same rules as the referral page (minimum necessary).

- No phone or guardian when none of the referrals it received lets it contact the family (the
  family must not be contacted, withdrew its consent, or did not agree to share its number).
- No guardian when its referrals are confidential, unless a guardian gave the consent.
- No referral note when the consent was withdrawn or does not cover the note."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from referrals.loop.models import Referral
from referrals.patients.models import Patient


def _withdrawn(referral: Referral) -> bool:
    return referral.consent is not None and not referral.consent.active


def _shares(referral: Referral, item: str) -> bool:
    consent = referral.consent
    return consent is None or not consent.scope or item in consent.scope


def may_contact(referral: Referral) -> bool:
    return (
        not referral.contact_prohibited
        and not _withdrawn(referral)
        and _shares(referral, "contact")
    )


def patient_for(
    resource: dict[str, Any], patient: Patient, org_id: uuid.UUID, referrals: Iterable[Referral]
) -> dict[str, Any]:
    """The Patient as `org_id` may see it, given the referrals between it and the patient."""
    if patient.organization_id == org_id:
        return resource
    received = [r for r in referrals if r.performer_org_id == org_id]
    reachable = [r for r in received if may_contact(r)]
    shown = dict(resource)
    if not reachable:
        shown.pop("telecom", None)
        shown.pop("contact", None)
    elif not any(
        not r.sensitive or (r.consent is not None and r.consent.granted_by == "guardian")
        for r in reachable
    ):
        shown.pop("contact", None)
    return shown


def service_request_for(
    resource: dict[str, Any], referral: Referral, org_id: uuid.UUID
) -> dict[str, Any]:
    """The ServiceRequest as `org_id` may see it: the referrer sees everything."""
    if referral.requester_org_id == org_id:
        return resource
    if _withdrawn(referral) or not _shares(referral, "note"):
        shown = dict(resource)
        shown.pop("note", None)
        return shown
    return resource
