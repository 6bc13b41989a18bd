"""Reasons people pick when a referral is declined, held, cancelled, closed or corrected, the
progress steps staff record, and the one table that maps our statuses and reasons to
California DHCS closed-loop referral reporting. Pure data."""

from __future__ import annotations

from dataclasses import dataclass

from referrals.loop.lifecycle import Action, Status


@dataclass(frozen=True)
class Reason:
    code: str
    label: str
    # DHCS "Reason for Referral Loop Closure" when this reason closes the loop, else None.
    dhcs_closure: str | None = None


OTHER = "other"

REASONS: dict[Action, tuple[Reason, ...]] = {
    Action.DECLINE: (
        Reason("not-eligible", "Family is not eligible for this service", "Member Not Eligible"),
        Reason("at-capacity", "No capacity / waiting list closed", "Provider Unable to Serve"),
        Reason("service-not-offered", "We do not offer what was asked", "Provider Unable to Serve"),
        Reason("outside-area", "Family lives outside our service area", "Provider Unable to Serve"),
        Reason("family-declined", "Family declined the service", "Member Declined"),
        Reason("duplicate", "Duplicate of a referral we already have", "Duplicate Referral"),
        Reason(OTHER, "Other (explain below)", "Other"),
    ),
    Action.HOLD: (
        Reason("awaiting-family", "Waiting to hear from the family"),
        Reason("awaiting-documents", "Waiting for documents"),
        Reason("waitlist", "On our waiting list"),
        Reason(OTHER, "Other (explain below)"),
    ),
    Action.FAIL: (
        Reason("unreachable", "Family could not be reached", "Unable to Contact Member"),
        Reason("family-declined", "Family declined services", "Member Declined"),
        Reason("not-eligible", "Family turned out not to be eligible", "Member Not Eligible"),
        Reason("moved", "Family moved away", "Member Moved"),
        Reason("no-show", "Family did not come to appointments", "Unable to Contact Member"),
        Reason(OTHER, "Other (explain below)", "Other"),
    ),
    Action.CANCEL: (
        Reason("need-resolved", "The need has been met another way", "Need Resolved"),
        Reason(
            "family-withdrew", "Family withdrew consent or no longer wants help", "Member Declined"
        ),
        Reason(
            "referred-elsewhere", "Referred to another organisation instead", "Referral Cancelled"
        ),
        Reason("sent-in-error", "Sent to the wrong organisation", "Referral Cancelled"),
        Reason(OTHER, "Other (explain below)", "Referral Cancelled"),
    ),
    Action.ENTER_IN_ERROR: (
        Reason("wrong-patient", "Recorded for the wrong patient"),
        Reason("duplicate", "Duplicate entry"),
        Reason(OTHER, "Other (explain below)"),
    ),
}

# Fine-grained progress (Task.businessStatus, our own code system): FHIR has no status for
# these, and partners may ignore them.
BUSINESS_STATUS_SYSTEM = "urn:referrals:business-status"
PROGRESS_STEPS: dict[str, str] = {
    "contact-attempted": "Tried to reach the family (left voicemail or message)",
    "family-contacted": "Spoke with the family",
    "appointment-scheduled": "Appointment booked",
    "documents-requested": "Asked the family for documents",
    "service-started": "Service has started",
}
BUSINESS_STATUS_LABELS: dict[str, str] = {
    **PROGRESS_STEPS,
    "cancellation-requested": "The referrer asked to cancel",
}

# DHCS closed-loop referral reporting (Medi-Cal managed care, from July 2025): Referral Status
# per Task status. Entered-in-error referrals are withdrawn from reporting.
DHCS_REFERRAL_STATUS: dict[Status, str | None] = {
    Status.DRAFT: None,
    Status.REQUESTED: "Pending",
    Status.ACCEPTED: "Accepted",
    Status.IN_PROGRESS: "In Progress",
    Status.ON_HOLD: "In Progress",
    Status.REJECTED: "Declined",
    Status.CANCELLED: "Closed",
    Status.FAILED: "Closed",
    Status.COMPLETED: "Closed",
    Status.ENTERED_IN_ERROR: None,
}


def reasons_for(action: Action) -> tuple[Reason, ...]:
    return REASONS.get(action, ())


def find_reason(action: Action, code: str) -> Reason | None:
    return next((r for r in reasons_for(action) if r.code == code), None)


def reason_text(action: Action, code: str, detail: str) -> str:
    """The status reason people read: the picked reason, with the explanation if any."""
    reason = find_reason(action, code)
    if reason is None:
        return detail.strip()
    if reason.code == OTHER:
        return detail.strip()
    return f"{reason.label}. {detail.strip()}".strip() if detail.strip() else reason.label


def dhcs_closure_reason(status: Status, action: Action | None, code: str | None) -> str | None:
    """DHCS "Reason for Referral Loop Closure" for a closed referral, or None while open."""
    if status is Status.COMPLETED:
        return "Services Received"
    if status not in {Status.REJECTED, Status.CANCELLED, Status.FAILED}:
        return None
    reason = find_reason(action, code or "") if action else None
    return reason.dhcs_closure if reason and reason.dhcs_closure else "Other"


def dhcs_reporting(task: object) -> tuple[str | None, str | None]:
    """(Referral Status, Reason for Referral Loop Closure) for a Task, as DHCS asks for them."""
    status = Status(task.status)  # type: ignore[attr-defined]
    action = task.status_action  # type: ignore[attr-defined]
    return DHCS_REFERRAL_STATUS[status], dhcs_closure_reason(
        status,
        Action(action) if action else None,
        task.status_reason_code,  # type: ignore[attr-defined]
    )
