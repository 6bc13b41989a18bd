"""When an unanswered referral becomes overdue: N business days after it was sent. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from referrals.terminology import CALIFORNIA


def business_days_before(now: datetime, days: int, tz: ZoneInfo = CALIFORNIA) -> datetime:
    """The instant `days` business days (Monday to Friday) before `now`, on the local calendar.

    A referral sent before this instant and still unanswered is overdue."""
    local = now.astimezone(tz)
    if local.weekday() >= 5:  # at a weekend, the clock stands at the end of Friday
        local = (local - timedelta(days=local.weekday() - 5)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
    remaining = days
    while remaining > 0:
        local -= timedelta(days=1)
        if local.weekday() < 5:
            remaining -= 1
    return local.astimezone(now.tzinfo)
