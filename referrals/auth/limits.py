"""How often something may be tried: signing in for one email address or from one network,
asking for a token for one API client or from one network. Pure rules over one counter per key;
`throttle.py` keeps the counters in a table that every process shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

LONGEST_BLOCK = 86400  # seconds: a growing block stops at one day


@dataclass(frozen=True)
class Limit:
    """At most `attempts` within `window` seconds (counted from the first). The attempt that
    reaches the limit blocks the key: for `block` seconds, doubled for each attempt past the
    limit when `escalate` (at most a day); without `block`, until the window ends."""

    attempts: int
    window: int
    block: int | None = None
    escalate: bool = False


@dataclass(frozen=True)
class Counter:
    """What is known of one key: attempts in the current window, and any block."""

    hits: int
    window_start: datetime
    blocked_until: datetime | None = None


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from now to a moment in the future (at least 1), as Retry-After counts."""
    return max(1, math.ceil((moment - now).total_seconds()))


def attempt(counter: Counter | None, limit: Limit, now: datetime) -> tuple[Counter, int]:
    """Count one attempt. Returns the counter to keep and how many seconds to wait: 0 when the
    attempt may go ahead (and is counted), else the time the key stays blocked (and the attempt
    is not counted, so waiting out a block is enough)."""
    if counter is not None and counter.blocked_until is not None and counter.blocked_until > now:
        return counter, seconds_until(counter.blocked_until, now)
    if counter is None or counter.window_start <= now - timedelta(seconds=limit.window):
        counter = Counter(0, now)
    hits = counter.hits + 1
    blocked_until = None
    if hits >= limit.attempts:
        if limit.block is None:
            blocked_until = counter.window_start + timedelta(seconds=limit.window)
        else:
            doubling = 2 ** min(hits - limit.attempts, 32) if limit.escalate else 1
            blocked_until = now + timedelta(seconds=min(limit.block * doubling, LONGEST_BLOCK))
    return Counter(hits, counter.window_start, blocked_until), 0


def give_back(counter: Counter, limit: Limit) -> Counter:
    """Uncount an attempt that turned out well (a sign-in that succeeded), lifting the block
    it set when it was the one that reached the limit."""
    hits = max(0, counter.hits - 1)
    blocked_until = counter.blocked_until if hits >= limit.attempts else None
    return replace(counter, hits=hits, blocked_until=blocked_until)


def forgotten_after(counter: Counter, limit: Limit) -> datetime:
    """When a counter no longer matters: its window is over and it blocks nothing."""
    window_end = counter.window_start + timedelta(seconds=limit.window)
    return max(window_end, counter.blocked_until or window_end)


def wait_in_words(seconds: int) -> str:
    """'1 minute', '5 minutes', '2 hours': a wait as a person reads it, rounded up."""
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(minutes / 60)
    return f"{hours} hour{'s' if hours != 1 else ''}"
