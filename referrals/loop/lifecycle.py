"""The referral Task lifecycle (Gravity SDOHCC TaskForReferralManagement): which side may make
which move from which status, and what each move requires. Pure: values in, a decision out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from referrals.auth.roles import OrgKind, Permission, Role, permissions_for


class Status(StrEnum):
    DRAFT = "draft"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    FAILED = "failed"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"


STATUS_LABELS: dict[Status, str] = {
    Status.DRAFT: "Draft",
    Status.REQUESTED: "Requested",
    Status.ACCEPTED: "Accepted",
    Status.REJECTED: "Declined",
    Status.CANCELLED: "Cancelled",
    Status.IN_PROGRESS: "In progress",
    Status.ON_HOLD: "On hold",
    Status.FAILED: "Could not be completed",
    Status.COMPLETED: "Completed",
    Status.ENTERED_IN_ERROR: "Entered in error",
}

TERMINAL = frozenset(
    {Status.REJECTED, Status.CANCELLED, Status.COMPLETED, Status.FAILED, Status.ENTERED_IN_ERROR}
)
OPEN = frozenset(Status) - TERMINAL
WORKING = frozenset({Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD})


class Side(StrEnum):
    REQUESTER = "requester"  # the organisation that sent the referral
    RECIPIENT = "recipient"  # the organisation that owns the Task
    NETWORK = "network"  # a network administrator


class Action(StrEnum):
    SEND = "send"
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    HOLD = "hold"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    ENTER_IN_ERROR = "enter-in-error"
    NOTE = "note"


ACTION_LABELS: dict[Action, str] = {
    Action.SEND: "Send",
    Action.ACCEPT: "Accept",
    Action.DECLINE: "Decline",
    Action.START: "Start work",
    Action.HOLD: "Put on hold",
    Action.COMPLETE: "Complete",
    Action.FAIL: "Close as not completed",
    Action.CANCEL: "Cancel referral",
    Action.ENTER_IN_ERROR: "Mark entered in error",
    Action.NOTE: "Add progress note",
}

# Event names the timeline shows for moves that change no status.
CANCEL_REQUESTED = "cancel-requested"
CONSENT_REVOKED = "consent-revoked"
TEXT_NOT_DELIVERED = "text-not-delivered"  # the family's notice did not reach them
FAMILY_REPLIED = "family-replied"  # a text from the family, attached to the referral

# What the timeline says happened, per event.
EVENT_LABELS: dict[str, str] = {
    "send": "Sent the referral",
    "accept": "Accepted",
    "decline": "Declined",
    "start": "Started work",
    "hold": "Put on hold",
    "complete": "Completed",
    "fail": "Closed as not completed",
    "cancel": "Cancelled",
    "enter-in-error": "Marked entered in error",
    "note": "Progress note",
    CANCEL_REQUESTED: "Asked to cancel",
    CONSENT_REVOKED: "Consent to share withdrawn",
    TEXT_NOT_DELIVERED: "Text to the family not delivered",
    FAMILY_REPLIED: "The family replied by text",
}
CANCELLATION_REQUESTED_BUSINESS_STATUS = "cancellation-requested"


@dataclass(frozen=True)
class Rule:
    sources: frozenset[Status]
    target: Status | None  # None: the status stays (a note)
    sides: frozenset[Side]
    needs_reason: bool = False
    needs_output: bool = False


_RECIPIENT = frozenset({Side.RECIPIENT})
_REQUESTER = frozenset({Side.REQUESTER})

RULES: dict[Action, Rule] = {
    Action.SEND: Rule(frozenset({Status.DRAFT}), Status.REQUESTED, _REQUESTER),
    Action.ACCEPT: Rule(frozenset({Status.REQUESTED}), Status.ACCEPTED, _RECIPIENT),
    Action.DECLINE: Rule(
        frozenset({Status.REQUESTED}), Status.REJECTED, _RECIPIENT, needs_reason=True
    ),
    Action.START: Rule(
        frozenset({Status.ACCEPTED, Status.ON_HOLD}), Status.IN_PROGRESS, _RECIPIENT
    ),
    Action.HOLD: Rule(
        frozenset({Status.ACCEPTED, Status.IN_PROGRESS}),
        Status.ON_HOLD,
        _RECIPIENT,
        needs_reason=True,
    ),
    Action.COMPLETE: Rule(WORKING, Status.COMPLETED, _RECIPIENT, needs_output=True),
    Action.FAIL: Rule(WORKING, Status.FAILED, _RECIPIENT, needs_reason=True),
    Action.CANCEL: Rule(
        WORKING | {Status.REQUESTED},
        Status.CANCELLED,
        frozenset({Side.REQUESTER, Side.RECIPIENT}),
        needs_reason=True,
    ),
    # A correction, not a workflow step: allowed from any status, terminal ones included.
    Action.ENTER_IN_ERROR: Rule(
        frozenset(Status) - {Status.ENTERED_IN_ERROR},
        Status.ENTERED_IN_ERROR,
        frozenset({Side.REQUESTER, Side.NETWORK}),
        needs_reason=True,
    ),
    Action.NOTE: Rule(OPEN, None, frozenset({Side.REQUESTER, Side.RECIPIENT})),
}

SIDE_WORDS = {
    Side.REQUESTER: "the referring organisation",
    Side.RECIPIENT: "the receiving organisation",
    Side.NETWORK: "a network administrator",
}


@dataclass(frozen=True)
class Transition:
    action: Action
    from_status: Status
    to_status: Status
    event: str  # what the timeline calls it: the action, or CANCEL_REQUESTED
    business_status: str | None = None  # set on the Task when not None
    service_request_status: str | None = None  # set on the ServiceRequest when not None

    @property
    def changes_status(self) -> bool:
        return self.from_status != self.to_status


class Refusal(Exception):
    """A move the lifecycle does not allow; the message is for the person who tried it."""


def normalize_status(value: str) -> Status:
    """Statuses from partners: `received` was removed in SDOHCC 2.1 and means `requested`."""
    if value == "received":
        return Status.REQUESTED
    try:
        return Status(value)
    except ValueError:
        raise Refusal(f"'{value}' is not a Task status this referral network uses.") from None


def side_of(
    role: Role, org_kind: OrgKind, *, is_requester_org: bool, is_owner_org: bool
) -> Side | None:
    """The side a member acts on for one referral, or None when it has no part in it."""
    perms = permissions_for(role, org_kind)
    if Permission.VIEW_NETWORK in perms:
        return Side.NETWORK
    if is_owner_org and Permission.WORK_REFERRALS in perms:
        return Side.RECIPIENT
    if is_requester_org and Permission.SEND_REFERRALS in perms:
        return Side.REQUESTER
    return None


def decide(
    status: Status,
    action: Action,
    side: Side,
    *,
    reason: str = "",
    has_output: bool = False,
    note: str = "",
) -> Transition:
    """The move `action` makes from `status` when taken by `side`, or a Refusal saying why not."""
    rule = RULES[action]
    label = STATUS_LABELS[status].lower()
    if status in TERMINAL and action is not Action.ENTER_IN_ERROR:
        raise Refusal(
            f"This referral is {label}, which is final; it cannot be changed. "
            "Send a new referral if the family still needs help."
        )
    if side not in rule.sides:
        who = " or ".join(SIDE_WORDS[s] for s in sorted(rule.sides))
        raise Refusal(f"Only {who} can {ACTION_LABELS[action].lower()} this referral.")
    if status not in rule.sources:
        allowed = ", ".join(STATUS_LABELS[s].lower() for s in Status if s in rule.sources)
        raise Refusal(
            f"A referral that is {label} cannot be changed with "
            f"“{ACTION_LABELS[action]}”; that is possible only when it is {allowed}."
        )
    if rule.needs_reason and not reason.strip():
        raise Refusal(f"Give a reason to {ACTION_LABELS[action].lower()}.")
    if rule.needs_output and not has_output:
        raise Refusal("Record what was provided (the service delivered) to complete the referral.")
    if action is Action.NOTE and not note.strip():
        raise Refusal("Write the progress note, or pick a progress step.")

    if action is Action.CANCEL and side is Side.REQUESTER and status in WORKING:
        # Work has begun: the referrer's cancel is a request the recipient confirms
        # (SDOHCC: the requester revokes, the owner closes its Task).
        return Transition(
            action,
            status,
            status,
            CANCEL_REQUESTED,
            business_status=CANCELLATION_REQUESTED_BUSINESS_STATUS,
        )
    target = rule.target if rule.target is not None else status
    sr_status = None
    if target is Status.COMPLETED:
        sr_status = "completed"
    elif target is Status.CANCELLED and side is Side.REQUESTER:
        sr_status = "revoked"
    elif target is Status.ENTERED_IN_ERROR:
        sr_status = "entered-in-error"
    business = None
    if target is not status:
        business = ""  # a status change clears the fine-grained progress step
    return Transition(action, status, target, str(action), business, sr_status)


def available_actions(status: Status, side: Side | None) -> list[Action]:
    """The actions the side could take now (their reasons and outputs still to be given)."""
    if side is None:
        return []
    return [
        action
        for action, rule in RULES.items()
        if side in rule.sides
        and status in rule.sources
        and (status not in TERMINAL or action is Action.ENTER_IN_ERROR)
    ]


def path(side: Side, start: Status, goal: Status) -> list[Action]:
    """The fewest moves `side` may make to take a Task from `start` to `goal` (a partner's copy
    that moved several steps between two looks: requested → accepted → completed); [] when
    already there or when no path exists."""
    if start == goal:
        return []
    frontier: list[tuple[Status, list[Action]]] = [(start, [])]
    seen = {start}
    while frontier:
        status, moves = frontier.pop(0)
        for action, rule in RULES.items():
            if rule.target is None or side not in rule.sides or status not in rule.sources:
                continue
            if action is Action.ENTER_IN_ERROR and goal is not Status.ENTERED_IN_ERROR:
                continue
            if rule.target == goal:
                return [*moves, action]
            if rule.target not in seen and rule.target not in TERMINAL:
                seen.add(rule.target)
                frontier.append((rule.target, [*moves, action]))
    return []
