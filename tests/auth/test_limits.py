"""The rules of the limits on attempts, as plain values: counting, blocking, escalating, forgetting
and giving back."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.auth.limits import (
    LONGEST_BLOCK,
    Counter,
    Limit,
    attempt,
    forgotten_after,
    give_back,
    wait_in_words,
)

pytestmark = pytest.mark.pure

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ADDRESS = Limit(5, 86400, block=60, escalate=True)
NETWORK = Limit(3, 900)


def run(limit: Limit, times: list[float]) -> list[int]:
    """The waits answered to attempts made at these seconds after T0."""
    counter, waits = None, []
    for second in times:
        counter, wait = attempt(counter, limit, T0 + timedelta(seconds=second))
        waits.append(wait)
    return waits


def test_the_attempt_that_reaches_the_limit_goes_ahead_and_the_next_waits():
    assert run(ADDRESS, [0, 1, 2, 3, 4, 5]) == [0, 0, 0, 0, 0, 59]


def test_the_block_doubles_with_each_attempt_past_the_limit():
    counter = None
    for second in range(5):
        counter, _ = attempt(counter, ADDRESS, T0 + timedelta(seconds=second))
    blocks = []
    now = T0 + timedelta(seconds=4)
    for _ in range(5):
        blocks.append(round((counter.blocked_until - now).total_seconds()))
        now = counter.blocked_until  # waited out
        counter, wait = attempt(counter, ADDRESS, now)
        assert wait == 0
    assert blocks == [60, 120, 240, 480, 960]


def test_a_growing_block_stops_at_a_day():
    counter = Counter(40, T0)
    counter, _ = attempt(counter, ADDRESS, T0)
    assert counter.blocked_until - T0 == timedelta(seconds=LONGEST_BLOCK)


def test_an_attempt_while_blocked_is_not_counted():
    blocked = Counter(5, T0, T0 + timedelta(seconds=60))
    after, wait = attempt(blocked, ADDRESS, T0 + timedelta(seconds=30))
    assert (after, wait) == (blocked, 30)


def test_without_a_block_length_the_key_waits_for_the_window_to_end():
    assert run(NETWORK, [0, 100, 200, 300, 899, 900]) == [0, 0, 0, 600, 1, 0]


def test_the_count_starts_again_when_the_window_is_over():
    counter = Counter(4, T0)
    counter, wait = attempt(counter, ADDRESS, T0 + timedelta(days=1))
    assert wait == 0 and counter.hits == 1 and counter.window_start == T0 + timedelta(days=1)


def test_giving_back_the_attempt_that_reached_the_limit_lifts_its_block():
    counter, _ = attempt(Counter(2, T0), NETWORK, T0)
    assert counter.hits == 3 and counter.blocked_until is not None
    assert give_back(counter, NETWORK) == Counter(2, T0, None)
    assert give_back(Counter(0, T0), NETWORK).hits == 0


def test_a_counter_is_forgotten_when_its_window_and_its_block_are_over():
    assert forgotten_after(Counter(1, T0), NETWORK) == T0 + timedelta(seconds=900)
    late = T0 + timedelta(days=3)
    assert forgotten_after(Counter(9, T0, late), ADDRESS) == late


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 minute"), (60, "1 minute"), (61, "2 minutes"), (3600, "1 hour"), (3601, "2 hours")],
)
def test_waits_in_words(seconds, words):
    assert wait_in_words(seconds) == words


@given(
    attempts=st.integers(1, 8),
    window=st.integers(1, 3600),
    block=st.one_of(st.none(), st.integers(1, 600)),
    escalate=st.booleans(),
    gaps=st.lists(st.floats(0, 400), max_size=40),
)
def test_past_the_limit_attempts_are_at_least_a_block_apart(
    attempts, window, block, escalate, gaps
):
    """In one window: `attempts` at most without a block length; with one, every attempt past
    the limit comes a whole block (or more, escalating) after the one before."""
    limit = Limit(attempts, window, block=block, escalate=escalate)
    counter, now, allowed = None, T0, {}
    for gap in gaps:
        now += timedelta(seconds=gap)
        counter, wait = attempt(counter, limit, now)
        if wait == 0:
            allowed.setdefault(counter.window_start, []).append(now)
        else:
            assert counter.blocked_until > now and wait >= 1
    for times in allowed.values():
        if block is None:
            assert len(times) <= attempts
        past = times[attempts - 1 :]
        for earlier, later in itertools.pairwise(past):
            assert later - earlier >= timedelta(seconds=block)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_one_network_is_an_ipv4_address_or_an_ipv6_64(address, network):
    from referrals.auth.throttle import network_of

    assert network_of(address) == network
