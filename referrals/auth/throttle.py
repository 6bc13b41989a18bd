"""The counters behind the limits on signing in and on asking for tokens, kept in one table that
every process and host shares (no other service needed). Each attempt is counted under a row
lock (PostgreSQL) or the database's write lock (SQLite), so attempts made at the same moment by
several processes are counted one after the other and never past a limit."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from referrals.auth.limits import Counter, Limit, attempt, forgotten_after, give_back
from referrals.auth.models import ThrottleCounter
from referrals.config import Settings
from referrals.db import transaction

PRUNE_BATCH = 500  # forgotten counters deleted at once, when a new one is made


def throttle_key(kind: str, value: str, secret: str) -> str:
    """The counter's name for `value` (an email address, a network address, a client id) of a
    kind: a keyed hash, so that the table never holds the address itself."""
    message = f"{kind}\x00{value}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def take(checks: Mapping[str, Limit], now: datetime) -> int:
    """Count one attempt under every key with its limit, or under none of them. Returns 0 when
    every limit allows the attempt, else the seconds to wait (the longest block)."""
    with transaction() as session:
        wait, created = _take(session, checks, now)
    if created:
        _prune(now)
    return wait


def succeeded(
    *, forget: Iterable[str] = (), give_back_to: Mapping[str, Limit] | None = None
) -> None:
    """After an attempt that went well: clear the counters in `forget` (an address that signed
    in), and uncount the attempt in `give_back_to` (its network, which counts failures)."""
    give_back_to = give_back_to or {}
    with transaction() as session:
        for key in sorted({*forget, *give_back_to}):  # the order `take` locks in
            if key not in give_back_to:
                session.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))
                continue
            counter = _locked(session, key)
            if counter is not None:
                _store(session, key, give_back(counter, give_back_to[key]), give_back_to[key])


def _take(session: Session, checks: Mapping[str, Limit], now: datetime) -> tuple[int, bool]:
    created = False
    outcomes: list[tuple[str, Counter, int]] = []
    # Every process locks in the same order: two attempts sharing keys queue, never deadlock.
    for key in sorted(checks):
        created = _create(session, key, now) or created
        counter, wait = attempt(_locked(session, key), checks[key], now)
        outcomes.append((key, counter, wait))
    wait = max((wait for _, _, wait in outcomes), default=0)
    if wait:
        return wait, created  # refused: counted nowhere
    for key, counter, _ in outcomes:
        _store(session, key, counter, checks[key])
    return 0, created


def _create(session: Session, key: str, now: datetime) -> bool:
    """Make the key's row unless it exists (so that there is a row to lock); True if made."""
    dialect = session.get_bind().dialect.name
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(ThrottleCounter)
    made = session.execute(
        insert.values(key=key, hits=0, window_start=now, blocked_until=None, expires_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(ThrottleCounter.key)
    ).first()
    return made is not None


def _locked(session: Session, key: str) -> Counter | None:
    row = session.execute(
        select(ThrottleCounter.hits, ThrottleCounter.window_start, ThrottleCounter.blocked_until)
        .where(ThrottleCounter.key == key)
        .with_for_update()
    ).first()
    return None if row is None else Counter(row.hits, row.window_start, row.blocked_until)


def _store(session: Session, key: str, counter: Counter, limit: Limit) -> None:
    session.execute(
        update(ThrottleCounter)
        .where(ThrottleCounter.key == key)
        .values(
            hits=counter.hits,
            window_start=counter.window_start,
            blocked_until=counter.blocked_until,
            expires_at=forgotten_after(counter, limit),
        )
    )


def _prune(now: datetime) -> None:
    """Delete counters that no longer matter, in a transaction of their own that waits for
    nobody (rows another attempt holds are left for next time)."""
    with transaction() as session:
        forgotten = (
            select(ThrottleCounter.key)
            .where(ThrottleCounter.expires_at < now)
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        session.execute(delete(ThrottleCounter).where(ThrottleCounter.key.in_(forgotten)))


def token_network_wait(ip: str | None, settings: Settings, now: datetime) -> int:
    """Count a request for an access token under its network address, before anything is
    checked: 0 to go on, else the seconds to wait."""
    if not ip:
        return 0
    key = throttle_key("token-network", network_of(ip), settings.secret_key)
    return take(
        {key: Limit(settings.oauth_token_max_per_ip, settings.oauth_token_window_seconds)}, now
    )


def token_client_wait(session: Session, client_id: str, settings: Settings, now: datetime) -> int:
    """Count a token request of a client that proved who it is, in the caller's transaction:
    0 to go on, else the seconds to wait. Only a proven client is counted, so nobody can use
    up another client's allowance by naming it."""
    key = throttle_key("token-client", client_id, settings.secret_key)
    limit = Limit(settings.oauth_token_max_per_client, settings.oauth_token_window_seconds)
    wait, _created = _take(session, {key: limit}, now)
    return wait


def network_of(ip: str) -> str:
    """What one network counts as: an IPv4 address, or an IPv6 /64 (one home or host gets a
    whole /64, so counting single IPv6 addresses lets one client rotate past its limit)."""
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)
