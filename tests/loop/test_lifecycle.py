"""The referral Task lifecycle, checked cell by cell against GRAVITY.md's "Task lifecycle" table.

The expected table below is written out by hand from GRAVITY.md (and our deliberate rules in
DESIGN.md §4); it is not derived from `lifecycle.RULES`, so a change to the rules that the
specification does not make shows up here as a failing cell.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referrals.auth.roles import OrgKind, Role
from referrals.loop.lifecycle import (
    Action,
    Refusal,
    Side,
    Status,
    available_actions,
    decide,
    normalize_status,
    path,
    side_of,
)

pytestmark = pytest.mark.pure

# --------------------------------------------------------------------------------------------
# The expected table
# --------------------------------------------------------------------------------------------

# Column order of the matrix below.
ACTIONS = (
    "send",
    "accept",
    "decline",
    "start",
    "hold",
    "complete",
    "fail",
    "cancel",
    "enter-in-error",
    "note",
)

# Who may take each action from each status: Q = requester (the referring org),
# R = recipient (the org that owns the Task), N = network admin, - = nobody.
#
#                      send accept decline start hold complete fail cancel eie  note
MATRIX = {
    "draft":            "Q    -      -       -     -    -        -    -      QN   QR",
    "requested":        "-    R      R       -     -    -        -    QR     QN   QR",
    "accepted":         "-    -      -       R     R    R        R    QR     QN   QR",
    "in-progress":      "-    -      -       -     R    R        R    QR     QN   QR",
    "on-hold":          "-    -      -       R     -    R        R    QR     QN   QR",
    "rejected":         "-    -      -       -     -    -        -    -      QN   -",
    "cancelled":        "-    -      -       -     -    -        -    -      QN   -",
    "failed":           "-    -      -       -     -    -        -    -      QN   -",
    "completed":        "-    -      -       -     -    -        -    -      QN   -",
    "entered-in-error": "-    -      -       -     -    -        -    -      -    -",
}  # fmt: skip

# Where each action leads (None: the status stays, as for a progress note).
TARGET = {
    "send": "requested",
    "accept": "accepted",
    "decline": "rejected",
    "start": "in-progress",
    "hold": "on-hold",
    "complete": "completed",
    "fail": "failed",
    "cancel": "cancelled",
    "enter-in-error": "entered-in-error",
    "note": None,
}

SIDE_LETTER = {"Q": "requester", "R": "recipient", "N": "network"}

TERMINAL_STATUSES = {"rejected", "cancelled", "failed", "completed", "entered-in-error"}
OPEN_STATUSES = {"draft", "requested", "accepted", "in-progress", "on-hold"}
WORKING_STATUSES = {"accepted", "in-progress", "on-hold"}
NEEDS_REASON = {"decline", "hold", "fail", "cancel", "enter-in-error"}

# How a person reads each status (what refusal messages must name).
STATUS_WORDS = {
    "draft": "draft",
    "requested": "requested",
    "accepted": "accepted",
    "rejected": "declined",
    "cancelled": "cancelled",
    "in-progress": "in progress",
    "on-hold": "on hold",
    "failed": "could not be completed",
    "completed": "completed",
    "entered-in-error": "entered in error",
}


def allowed_sides(status: str, action: str) -> set[str]:
    cell = MATRIX[status].split()[ACTIONS.index(action)]
    return set() if cell == "-" else {SIDE_LETTER[c] for c in cell}


def expected(status: str, action: str, side: str) -> tuple[str, str] | None:
    """(to_status, event) the spec expects, or None when the move must be refused."""
    if side not in allowed_sides(status, action):
        return None
    if action == "cancel" and side == "requester" and status in WORKING_STATUSES:
        return status, "cancel-requested"  # a request the recipient confirms
    return (TARGET[action] or status), action


ALL_STATUSES = tuple(MATRIX)
ALL_SIDES = ("requester", "recipient", "network")
CELLS = list(itertools.product(ALL_STATUSES, ACTIONS, ALL_SIDES))
ALLOWED_CELLS = [c for c in CELLS if expected(*c) is not None]
REFUSED_CELLS = [c for c in CELLS if expected(*c) is None]


def cell_id(cell: tuple[str, str, str]) -> str:
    return "{}-{}-by-{}".format(*cell)


def full_decide(status: str, action: str, side: str):
    """decide() with everything a move could need supplied: a reason, an output, a note."""
    return decide(
        Status(status),
        Action(action),
        Side(side),
        reason="Family asked us to",
        has_output=True,
        note="Called the family",
    )


def test_the_expected_table_covers_every_status_action_and_side():
    assert set(MATRIX) == {s.value for s in Status}
    assert set(ACTIONS) == {a.value for a in Action}
    assert set(ALL_SIDES) == {s.value for s in Side}
    assert all(len(row.split()) == len(ACTIONS) for row in MATRIX.values())
    assert len(CELLS) == len(Status) * len(Action) * len(Side)


# --------------------------------------------------------------------------------------------
# Every cell
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "action", "side"), ALLOWED_CELLS, ids=cell_id)
def test_allowed_move_reaches_the_status_the_spec_names(status, action, side):
    to_status, event = expected(status, action, side)
    transition = full_decide(status, action, side)
    assert transition.to_status == Status(to_status)
    assert transition.from_status == Status(status)
    assert transition.action == Action(action)
    assert transition.event == event
    assert transition.changes_status == (to_status != status)


@pytest.mark.parametrize(("status", "action", "side"), REFUSED_CELLS, ids=cell_id)
def test_move_outside_the_spec_is_refused_even_with_everything_supplied(status, action, side):
    with pytest.raises(Refusal) as refused:
        full_decide(status, action, side)
    message = str(refused.value)
    assert message.strip()
    if status in TERMINAL_STATUSES and action != "enter-in-error":
        # "This referral is completed, which is final ..."
        assert STATUS_WORDS[status] in message.lower()
        assert "final" in message.lower()
    elif any(side in allowed_sides(s, action) for s in ALL_STATUSES):
        # The side may take this action, only not from this status: say which status it is in.
        assert STATUS_WORDS[status] in message.lower()
    else:
        # The side may never take this action: say who can.
        assert message.startswith("Only ")


# --------------------------------------------------------------------------------------------
# Deliberate rules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(WORKING_STATUSES))
def test_requester_cancel_of_work_under_way_is_a_request_that_keeps_the_status(status):
    transition = full_decide(status, "cancel", "requester")
    assert transition.to_status == Status(status)
    assert not transition.changes_status
    assert transition.event == "cancel-requested"
    assert transition.business_status == "cancellation-requested"
    assert transition.service_request_status is None  # revoked only once the recipient confirms


def test_requester_cancel_of_an_unanswered_referral_cancels_it_and_revokes_the_request():
    transition = full_decide("requested", "cancel", "requester")
    assert transition.to_status is Status.CANCELLED
    assert transition.event == "cancel"
    assert transition.service_request_status == "revoked"


@pytest.mark.parametrize("status", sorted(WORKING_STATUSES | {"requested"}))
def test_recipient_cancel_closes_the_task_but_leaves_the_service_request_to_the_requester(status):
    transition = full_decide(status, "cancel", "recipient")
    assert transition.to_status is Status.CANCELLED
    assert transition.service_request_status is None


@pytest.mark.parametrize("side", ["requester", "network"])
@pytest.mark.parametrize("status", sorted(set(ALL_STATUSES) - {"entered-in-error"}))
def test_entered_in_error_is_allowed_from_every_other_status_and_marks_the_request(status, side):
    transition = full_decide(status, "enter-in-error", side)
    assert transition.to_status is Status.ENTERED_IN_ERROR
    assert transition.service_request_status == "entered-in-error"


@pytest.mark.parametrize("side", ALL_SIDES)
def test_entered_in_error_cannot_be_entered_in_error_again(side):
    with pytest.raises(Refusal, match="entered in error"):
        full_decide("entered-in-error", "enter-in-error", side)


@pytest.mark.parametrize("side", ["requester", "recipient"])
@pytest.mark.parametrize("status", sorted(OPEN_STATUSES))
def test_progress_note_keeps_the_status_and_the_business_status(status, side):
    transition = full_decide(status, "note", side)
    assert transition.to_status == Status(status)
    assert not transition.changes_status
    assert transition.event == "note"
    assert transition.business_status is None
    assert transition.service_request_status is None


def test_completing_marks_the_service_request_completed():
    transition = full_decide("in-progress", "complete", "recipient")
    assert transition.service_request_status == "completed"


@pytest.mark.parametrize(
    ("status", "action", "side"),
    [
        ("draft", "send", "requester"),
        ("requested", "accept", "recipient"),
        ("requested", "decline", "recipient"),
        ("accepted", "start", "recipient"),
        ("in-progress", "hold", "recipient"),
        ("on-hold", "fail", "recipient"),
    ],
    ids=cell_id,
)
def test_other_moves_leave_the_service_request_status_alone(status, action, side):
    assert full_decide(status, action, side).service_request_status is None


@pytest.mark.parametrize(
    ("status", "action", "side"),
    [c for c in ALLOWED_CELLS if expected(*c)[0] != c[0]],
    ids=cell_id,
)
def test_a_status_change_clears_the_fine_grained_progress_step(status, action, side):
    assert full_decide(status, action, side).business_status == ""


# --------------------------------------------------------------------------------------------
# What each move requires
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"], ids=["empty", "spaces", "whitespace"])
@pytest.mark.parametrize(
    ("status", "action", "side"),
    [c for c in ALLOWED_CELLS if c[1] in NEEDS_REASON],
    ids=cell_id,
)
def test_move_that_needs_a_reason_is_refused_without_one(status, action, side, blank):
    with pytest.raises(Refusal, match="reason"):
        decide(
            Status(status),
            Action(action),
            Side(side),
            reason=blank,
            has_output=True,
            note="Called the family",
        )


@pytest.mark.parametrize(
    ("status", "action", "side"),
    [c for c in ALLOWED_CELLS if c[1] not in NEEDS_REASON],
    ids=cell_id,
)
def test_move_that_needs_no_reason_is_allowed_without_one(status, action, side):
    transition = decide(
        Status(status), Action(action), Side(side), has_output=True, note="Called the family"
    )
    assert transition.to_status == Status(expected(status, action, side)[0])


@pytest.mark.parametrize("status", sorted(WORKING_STATUSES))
def test_complete_without_an_output_is_refused(status):
    with pytest.raises(Refusal, match="provided"):
        decide(Status(status), Action.COMPLETE, Side.RECIPIENT, reason="Done", has_output=False)


@pytest.mark.parametrize("blank", ["", "  "])
def test_progress_note_without_text_is_refused(blank):
    with pytest.raises(Refusal):
        decide(Status.ACCEPTED, Action.NOTE, Side.RECIPIENT, note=blank)


def test_refusal_for_a_completed_referral_says_it_is_completed_and_final():
    with pytest.raises(Refusal) as refused:
        full_decide("completed", "cancel", "requester")
    assert "completed" in str(refused.value)
    assert "final" in str(refused.value)


def test_refusal_for_a_declined_referral_uses_the_word_people_see():
    with pytest.raises(Refusal, match="declined"):
        full_decide("rejected", "accept", "recipient")


# --------------------------------------------------------------------------------------------
# Statuses from partners
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_task_status_we_use_is_read_as_itself(status):
    assert normalize_status(status) == Status(status)


def test_received_from_a_partner_is_read_as_requested():
    assert normalize_status("received") is Status.REQUESTED


@pytest.mark.parametrize("value", ["ready", "", "Requested", "REQUESTED", "unknown", "in_progress"])
def test_unknown_task_status_is_refused_naming_the_value(value):
    with pytest.raises(Refusal) as refused:
        normalize_status(value)
    assert f"'{value}'" in str(refused.value)


# --------------------------------------------------------------------------------------------
# available_actions agrees with decide
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "side"),
    list(itertools.product(ALL_STATUSES, ALL_SIDES)),
    ids=["-by-".join(c) for c in itertools.product(ALL_STATUSES, ALL_SIDES)],
)
def test_offered_actions_are_exactly_the_moves_decide_allows(status, side):
    offered = available_actions(Status(status), Side(side))
    allowed = []
    for action in Action:
        try:
            full_decide(status, action.value, side)
        except Refusal:
            continue
        allowed.append(action)
    assert set(offered) == set(allowed)
    assert len(offered) == len(set(offered))
    assert {a.value for a in offered} == {
        a for a in ACTIONS if expected(status, a, side) is not None
    }


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_nothing_is_offered_to_someone_with_no_part_in_the_referral(status):
    assert available_actions(Status(status), None) == []


# --------------------------------------------------------------------------------------------
# side_of: which side a member acts on
# --------------------------------------------------------------------------------------------

# The part each role plays in each kind of organisation, written from the brief:
# network admins act for the network everywhere; CBO and school staff work the referrals their
# own org receives; clinicians send referrals; an org admin acts as its org kind does.
CAPACITY = {
    (Role.NETWORK_ADMIN, OrgKind.CLINIC): "network",
    (Role.NETWORK_ADMIN, OrgKind.CBO): "network",
    (Role.NETWORK_ADMIN, OrgKind.SCHOOL): "network",
    (Role.NETWORK_ADMIN, OrgKind.NETWORK): "network",
    (Role.CLINICIAN, OrgKind.CLINIC): "requester",
    (Role.CLINICIAN, OrgKind.CBO): "requester",
    (Role.CLINICIAN, OrgKind.SCHOOL): "requester",
    (Role.CLINICIAN, OrgKind.NETWORK): "requester",
    (Role.CBO_STAFF, OrgKind.CLINIC): "recipient",
    (Role.CBO_STAFF, OrgKind.CBO): "recipient",
    (Role.CBO_STAFF, OrgKind.SCHOOL): "recipient",
    (Role.CBO_STAFF, OrgKind.NETWORK): "recipient",
    (Role.SCHOOL_STAFF, OrgKind.CLINIC): "recipient",
    (Role.SCHOOL_STAFF, OrgKind.CBO): "recipient",
    (Role.SCHOOL_STAFF, OrgKind.SCHOOL): "recipient",
    (Role.SCHOOL_STAFF, OrgKind.NETWORK): "recipient",
    (Role.ORG_ADMIN, OrgKind.CLINIC): "requester",
    (Role.ORG_ADMIN, OrgKind.CBO): "recipient",
    (Role.ORG_ADMIN, OrgKind.SCHOOL): "recipient",
    (Role.ORG_ADMIN, OrgKind.NETWORK): None,
    # The exchange has no people here; its machine client acts as a clinic's (requester).
    (Role.NETWORK_ADMIN, OrgKind.EXCHANGE): "network",
    (Role.CLINICIAN, OrgKind.EXCHANGE): "requester",
    (Role.CBO_STAFF, OrgKind.EXCHANGE): "recipient",
    (Role.SCHOOL_STAFF, OrgKind.EXCHANGE): "recipient",
    (Role.ORG_ADMIN, OrgKind.EXCHANGE): None,
}


def expected_side(role, kind, is_requester_org, is_owner_org):
    capacity = CAPACITY[(role, kind)]
    if capacity == "network":
        return Side.NETWORK
    if capacity == "recipient" and is_owner_org:
        return Side.RECIPIENT
    if capacity == "requester" and is_requester_org:
        return Side.REQUESTER
    return None


SIDE_CASES = list(itertools.product(Role, OrgKind, [True, False], [True, False]))


def side_case_id(case) -> str:
    role, kind, is_requester_org, is_owner_org = case
    orgs = [n for n, flag in (("requester", is_requester_org), ("owner", is_owner_org)) if flag]
    return f"{role}-at-{kind}-of-{'+'.join(orgs) or 'neither'}"


def test_side_table_covers_every_role_and_org_kind():
    assert set(CAPACITY) == set(itertools.product(Role, OrgKind))


@pytest.mark.parametrize(
    ("role", "kind", "is_requester_org", "is_owner_org"),
    SIDE_CASES,
    ids=[side_case_id(c) for c in SIDE_CASES],
)
def test_member_acts_on_the_side_their_role_and_org_give_them(
    role, kind, is_requester_org, is_owner_org
):
    side = side_of(role, kind, is_requester_org=is_requester_org, is_owner_org=is_owner_org)
    assert side == expected_side(role, kind, is_requester_org, is_owner_org)


# --------------------------------------------------------------------------------------------
# Properties over random histories
# --------------------------------------------------------------------------------------------

MOVES = st.tuples(st.sampled_from(list(Action)), st.sampled_from(list(Side)))
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(moves=st.lists(MOVES, max_size=30), reasoned=st.lists(st.booleans(), min_size=30))
def test_random_histories_from_requested_never_leave_a_terminal_state_except_into_error(
    moves, reasoned
):
    status = Status.REQUESTED
    for (action, side), with_reason in zip(moves, reasoned, strict=False):
        try:
            transition = decide(
                status,
                action,
                side,
                reason="Because" if with_reason else "",
                has_output=with_reason,
                note="A note",
            )
        except Refusal:
            continue
        assert isinstance(transition.to_status, Status)
        assert transition.from_status is status
        if status.value in TERMINAL_STATUSES:
            assert status is not Status.ENTERED_IN_ERROR
            assert transition.to_status is Status.ENTERED_IN_ERROR
        assert expected(status.value, action.value, side.value) is not None
        status = transition.to_status
        assert status.value in MATRIX


@PROPERTY_SETTINGS
@given(
    status=st.sampled_from(list(Status)),
    action=st.sampled_from(list(Action)),
    side=st.sampled_from(list(Side)),
    reason=st.text(max_size=5),
    has_output=st.booleans(),
    note=st.text(max_size=5),
)
def test_decide_answers_every_input_with_a_transition_or_a_refusal(
    status, action, side, reason, has_output, note
):
    try:
        transition = decide(status, action, side, reason=reason, has_output=has_output, note=note)
    except Refusal as refusal:
        assert str(refusal).strip()
        return
    assert expected(status.value, action.value, side.value) is not None
    assert transition.to_status in set(Status)


# --------------------------------------------------------------------------------------------
# Catching up with a partner's copy that moved several steps between two looks
# --------------------------------------------------------------------------------------------

R, A, IP, OH = Status.REQUESTED, Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD


@pytest.mark.parametrize(
    ("start", "goal", "moves"),
    [
        (R, R, []),
        (R, A, ["accept"]),
        (R, IP, ["accept", "start"]),
        (R, Status.COMPLETED, ["accept", "complete"]),
        (R, Status.REJECTED, ["decline"]),
        (OH, Status.COMPLETED, ["complete"]),
        (A, Status.REJECTED, []),  # a Task once accepted is not declined
        (Status.COMPLETED, IP, []),  # nothing leaves a closed Task
    ],
)
def test_the_fewest_moves_between_two_statuses(start, goal, moves) -> None:
    found = path(Side.RECIPIENT, start, goal)
    assert [m.value for m in found] == moves
    status = start
    for action in found:  # every step is one the lifecycle allows, in that order
        status = decide(
            status, action, Side.RECIPIENT, reason="at-capacity", has_output=True
        ).to_status
    assert status == (goal if moves or start == goal else start)
