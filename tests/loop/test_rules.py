"""When a referral is overdue, the reasons people pick, and the DHCS reporting table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referrals.loop import lifecycle
from referrals.loop.lifecycle import Action, Status
from referrals.loop.overdue import business_days_before
from referrals.loop.reasons import (
    BUSINESS_STATUS_LABELS,
    DHCS_REFERRAL_STATUS,
    OTHER,
    REASONS,
    dhcs_closure_reason,
    find_reason,
    reason_text,
    reasons_for,
)

pytestmark = pytest.mark.pure

LA = ZoneInfo("America/Los_Angeles")


def la(y, m, d, hh=0, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LA)


# June 2024: Fri 7, Sat 8, Sun 9, Mon 10, Tue 11, Wed 12 (Pacific Daylight Time throughout).
FRI, SAT, SUN, MON, TUE, WED = 7, 8, 9, 10, 11, 12


def is_overdue(sent: datetime, now: datetime, days: int) -> bool:
    return sent < business_days_before(now, days)


# --------------------------------------------------------------------------------------------
# Business days
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "days", "cutoff"),
    [
        (la(2024, 6, WED, 10), 1, la(2024, 6, TUE, 10)),
        (la(2024, 6, WED, 10), 2, la(2024, 6, MON, 10)),
        (la(2024, 6, WED, 10), 3, la(2024, 6, FRI, 10)),
        (la(2024, 6, MON, 10), 1, la(2024, 6, FRI, 10)),
        (la(2024, 6, TUE, 10), 2, la(2024, 6, FRI, 10)),
        (la(2024, 6, MON, 10), 5, la(2024, 6, 3, 10)),  # a whole week back, Monday to Monday
        (la(2024, 6, MON, 10), 10, la(2024, 5, 27, 10)),
    ],
    ids=["wed-1", "wed-2", "wed-3-skips-weekend", "mon-1", "tue-2", "mon-5", "mon-10"],
)
def test_business_days_count_monday_to_friday_and_skip_weekends(now, days, cutoff):
    assert business_days_before(now, days) == cutoff


def test_zero_business_days_on_a_weekday_is_now():
    now = la(2024, 6, TUE, 14, 30)
    assert business_days_before(now, 0) == now


@pytest.mark.parametrize("now", [la(2024, 6, SAT, 9), la(2024, 6, SUN, 23, 59)], ids=["sat", "sun"])
def test_at_a_weekend_the_clock_stands_at_the_end_of_friday(now):
    end_of_friday = la(2024, 6, SAT, 0)
    assert business_days_before(now, 0) == end_of_friday
    assert business_days_before(now, 1) == la(2024, 6, FRI, 0)  # end of Thursday
    assert business_days_before(now, 2) == la(2024, 6, 6, 0)  # end of Wednesday


def test_friday_send_with_two_days_becomes_overdue_on_tuesday_at_the_same_time():
    sent = la(2024, 6, FRI, 16)
    assert not is_overdue(sent, la(2024, 6, FRI, 23), 2)
    assert not is_overdue(sent, la(2024, 6, SAT, 12), 2)
    assert not is_overdue(sent, la(2024, 6, SUN, 12), 2)
    assert not is_overdue(sent, la(2024, 6, MON, 23, 59), 2)
    assert not is_overdue(sent, la(2024, 6, TUE, 15, 59), 2)
    assert is_overdue(sent, la(2024, 6, TUE, 16, 1), 2)


def test_friday_send_with_one_day_is_not_overdue_over_the_weekend():
    sent = la(2024, 6, FRI, 16)
    assert not is_overdue(sent, la(2024, 6, SAT, 12), 1)
    assert not is_overdue(sent, la(2024, 6, SUN, 23), 1)
    assert not is_overdue(sent, la(2024, 6, MON, 15, 59), 1)
    assert is_overdue(sent, la(2024, 6, MON, 16, 1), 1)


def test_weekend_send_starts_counting_on_monday():
    sent = la(2024, 6, SAT, 10)
    assert not is_overdue(sent, la(2024, 6, TUE, 23, 59), 2)
    assert is_overdue(sent, la(2024, 6, WED, 0, 1), 2)


def test_the_local_pacific_calendar_decides_the_weekday_not_utc():
    # Monday 19:00 in Los Angeles is already Tuesday 02:00 in UTC.
    now = datetime(2024, 6, 11, 2, 0, tzinfo=UTC)
    cutoff = business_days_before(now, 1)
    assert cutoff == la(2024, 6, FRI, 19)
    assert cutoff.tzinfo is UTC  # answered in the caller's zone


def test_saturday_in_utc_that_is_still_friday_in_los_angeles_counts_as_friday():
    now = datetime(2024, 6, 8, 3, 0, tzinfo=UTC)  # Friday 20:00 PDT
    assert business_days_before(now, 1) == la(2024, 6, 6, 20)  # Thursday 20:00


def test_spring_forward_keeps_the_wall_clock_time_across_the_dst_change():
    # DST began Sunday 2024-03-10 in Los Angeles: Friday is PST, Monday is PDT.
    now = datetime(2024, 3, 11, 17, 0, tzinfo=UTC)  # Monday 10:00 PDT
    cutoff = business_days_before(now, 1)
    local = cutoff.astimezone(LA)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2024-03-08", 10, 0)
    assert cutoff == datetime(2024, 3, 8, 18, 0, tzinfo=UTC)  # 10:00 PST
    assert now - cutoff == timedelta(hours=71)


def test_fall_back_keeps_the_wall_clock_time_across_the_dst_change():
    # DST ended Sunday 2024-11-03: Friday is PDT, Monday is PST.
    now = datetime(2024, 11, 4, 18, 0, tzinfo=UTC)  # Monday 10:00 PST
    cutoff = business_days_before(now, 1)
    local = cutoff.astimezone(LA)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2024-11-01", 10, 0)
    assert now - cutoff == timedelta(hours=73)


def test_weekend_now_on_the_dst_sunday_stands_at_the_end_of_friday():
    now = datetime(2024, 3, 10, 20, 0, tzinfo=UTC)  # Sunday 13:00 PDT
    assert business_days_before(now, 0) == la(2024, 3, 9, 0)
    assert business_days_before(now, 1) == la(2024, 3, 8, 0)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=15),
)
def test_cutoff_is_earlier_for_more_days_and_lands_on_a_weekday(now, days):
    cutoff = business_days_before(now, days)
    assert cutoff < now
    assert business_days_before(now, days + 1) < cutoff
    assert cutoff.astimezone(LA).weekday() < 5
    # Never more than `days` business days plus the weekends in between (plus a DST hour).
    assert now - cutoff <= timedelta(days=days + 2 * (days // 5 + 1), hours=1)


# --------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------

ACTIONS_NEEDING_A_REASON = [a for a, rule in lifecycle.RULES.items() if rule.needs_reason]


def test_the_actions_that_need_a_reason_are_the_ones_gravity_names():
    assert set(ACTIONS_NEEDING_A_REASON) == {
        Action.DECLINE,
        Action.HOLD,
        Action.FAIL,
        Action.CANCEL,
        Action.ENTER_IN_ERROR,
    }


@pytest.mark.parametrize("action", ACTIONS_NEEDING_A_REASON, ids=str)
def test_every_action_needing_a_reason_offers_a_list_ending_in_other(action):
    reasons = reasons_for(action)
    assert reasons
    assert OTHER in [r.code for r in reasons]
    assert reasons[-1].code == OTHER
    assert all(r.label.strip() for r in reasons)
    assert len({r.code for r in reasons}) == len(reasons)  # codes are unique per action


@pytest.mark.parametrize("action", [a for a in Action if a not in ACTIONS_NEEDING_A_REASON])
def test_actions_without_a_reason_offer_no_reason_list(action):
    assert reasons_for(action) == ()
    assert action not in REASONS


def test_picked_reason_reads_as_its_label():
    assert reason_text(Action.DECLINE, "outside-area", "") == (
        "Family lives outside our service area"
    )


def test_picked_reason_with_an_explanation_reads_as_label_then_explanation():
    assert reason_text(Action.DECLINE, "outside-area", "  Lives in Marin.  ") == (
        "Family lives outside our service area. Lives in Marin."
    )


def test_other_reason_reads_as_the_explanation_alone():
    assert reason_text(Action.HOLD, OTHER, " Waiting for the school year ") == (
        "Waiting for the school year"
    )


def test_other_reason_without_an_explanation_is_blank_so_the_lifecycle_refuses_it():
    assert reason_text(Action.CANCEL, OTHER, "   ") == ""


def test_unknown_reason_code_reads_as_the_explanation():
    assert reason_text(Action.FAIL, "no-such-code", "Family moved abroad") == "Family moved abroad"
    assert find_reason(Action.FAIL, "no-such-code") is None


def test_same_code_means_the_reason_of_that_action():
    assert find_reason(Action.DECLINE, "family-declined").label == "Family declined the service"
    assert find_reason(Action.FAIL, "family-declined").label == "Family declined services"


# --------------------------------------------------------------------------------------------
# DHCS closed-loop reporting
# --------------------------------------------------------------------------------------------


def test_dhcs_referral_status_has_an_entry_for_every_task_status():
    assert set(DHCS_REFERRAL_STATUS) == set(Status)


@pytest.mark.parametrize(
    ("status", "dhcs"),
    [
        (Status.REQUESTED, "Pending"),
        (Status.ACCEPTED, "Accepted"),
        (Status.IN_PROGRESS, "In Progress"),
        (Status.ON_HOLD, "In Progress"),
        (Status.REJECTED, "Declined"),
        (Status.CANCELLED, "Closed"),
        (Status.FAILED, "Closed"),
        (Status.COMPLETED, "Closed"),
        (Status.DRAFT, None),  # not sent yet: not reported
        (Status.ENTERED_IN_ERROR, None),  # withdrawn from reporting
    ],
    ids=str,
)
def test_dhcs_referral_status_per_task_status(status, dhcs):
    assert DHCS_REFERRAL_STATUS[status] == dhcs


@pytest.mark.parametrize("code", [None, "", "anything"])
def test_completed_referral_closes_the_loop_as_services_received(code):
    assert dhcs_closure_reason(Status.COMPLETED, Action.COMPLETE, code) == "Services Received"


@pytest.mark.parametrize(
    "status",
    [Status.DRAFT, Status.REQUESTED, Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD],
    ids=str,
)
def test_open_referral_has_no_closure_reason(status):
    assert dhcs_closure_reason(status, Action.HOLD, "waitlist") is None
    assert dhcs_closure_reason(status, None, None) is None


def test_entered_in_error_referral_has_no_closure_reason():
    assert dhcs_closure_reason(Status.ENTERED_IN_ERROR, Action.ENTER_IN_ERROR, "duplicate") is None


@pytest.mark.parametrize(
    ("status", "action", "code", "closure"),
    [
        (Status.REJECTED, Action.DECLINE, "family-declined", "Member Declined"),
        (Status.REJECTED, Action.DECLINE, "at-capacity", "Provider Unable to Serve"),
        (Status.FAILED, Action.FAIL, "unreachable", "Unable to Contact Member"),
        (Status.CANCELLED, Action.CANCEL, "need-resolved", "Need Resolved"),
        (Status.CANCELLED, Action.CANCEL, OTHER, "Referral Cancelled"),
        (Status.REJECTED, Action.DECLINE, "no-such-code", "Other"),
        (Status.FAILED, None, None, "Other"),
    ],
)
def test_closed_referral_reports_the_closure_reason_of_the_picked_reason(
    status, action, code, closure
):
    assert dhcs_closure_reason(status, action, code) == closure


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (Action.DECLINE, Status.REJECTED),
        (Action.FAIL, Status.FAILED),
        (Action.CANCEL, Status.CANCELLED),
    ],
    ids=str,
)
def test_every_reason_that_closes_a_referral_has_a_dhcs_closure_value(action, status):
    for reason in reasons_for(action):
        assert reason.dhcs_closure, reason.code
        assert dhcs_closure_reason(status, action, reason.code) == reason.dhcs_closure


def test_cancellation_request_has_a_business_status_label():
    assert lifecycle.CANCELLATION_REQUESTED_BUSINESS_STATUS in BUSINESS_STATUS_LABELS
