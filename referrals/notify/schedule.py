"""When a text may go: quiet hours in the family's time zone, and the pace of a sender. Pure."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_clock(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, zone: str, start: str, end: str) -> datetime | None:
    """The moment quiet hours end, if `now` falls inside them (from `start` to `end`, local
    time; the window may span midnight); None when a text may go now."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    opens, closes = parse_clock(start), parse_clock(end)
    clock = local.time()
    if opens == closes:
        return None
    if opens > closes:  # e.g. 21:00 -> 08:00, across midnight
        if clock >= opens:
            day = local.date() + timedelta(days=1)
        elif clock < closes:
            day = local.date()
        else:
            return None
    else:  # e.g. 00:00 -> 06:00 within one day
        if not opens <= clock < closes:
            return None
        day = local.date()
    # Built in local time so that a daylight-saving change lands on the local clock hour.
    return datetime.combine(day, closes, tzinfo=tz)


def take_slot(
    now: datetime, next_free: datetime | None, rate_per_second: float
) -> tuple[datetime, datetime]:
    """For a sender allowed `rate_per_second` texts, whose next free moment is `next_free`
    (None: never sent): the moment this text may go, and the sender's next free moment after."""
    slot = now if next_free is None or next_free < now else next_free
    return slot, slot + timedelta(seconds=1 / rate_per_second)
