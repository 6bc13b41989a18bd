"""The audit trail: append-only, each entry chained to the one before it with a keyed hash
(HMAC-SHA-256, the key AUDIT_KEY kept outside the database) over every one of its columns, so
that an edited, removed, inserted or reordered entry shows. Signed checkpoints of the trail's
head, kept outside the database as well, show the newest entries removed or the trail emptied.
`record` is called by the services inside the transaction of the change it describes."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import BigInteger, Index, Integer, String, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from referrals import jobs
from referrals.auth.actor import Actor
from referrals.db import Base, utcnow

# Any 64-bit number of our own: the PostgreSQL advisory lock that orders the chain.
_CHAIN_LOCK = 0x52454641554449

# How an entry's hash was made (its `scheme` column).
SHA256 = 1  # before the keyed chain: SHA-256 over some columns (not id, org_name, scheme)
HMAC_SHA256 = 2  # HMAC-SHA-256 over every column but the hash, with a key from AUDIT_KEY
SCHEME = HMAC_SHA256  # what `record` writes

# The entry with which the upgrade to the keyed chain sealed the entries hashed before it.
SEAL_ACTION = "audit.keyed"
CHECKPOINT_JOB = "audit.checkpoint"
MIN_KEY_LENGTH = 32

checkpoint_log = logging.getLogger("referrals.audit.checkpoint")
# Operators ship these lines elsewhere: they are written whatever LOG_LEVEL says.
checkpoint_log.setLevel(logging.INFO)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_at", "actor_user_id", "at"),
        Index("ix_audit_events_patient_at", "patient_id", "at"),
    )

    # Given by `record` (the last id + 1, under the chain's lock): no gap but a removed entry.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    scheme: Mapped[int]  # SHA256 | HMAC_SHA256: how `hash` was made
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[uuid.UUID | None]
    org_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[uuid.UUID | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="success")  # success | denied | failed
    detail: Mapped[dict] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# Every column is hashed but the hash itself, read from the table: a column added later is
# hashed without anyone having to remember it. Such a column must be nullable: the entries
# written before it hold NULL there, and a NULL is left out of the message, so their hashes
# still hold.
HASHED_COLUMNS: tuple[str, ...] = tuple(
    column.name for column in AuditEvent.__table__.columns if column.name != "hash"
)


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """What AUDIT_KEY gives (HKDF-SHA-256): a key that chains entries, another that signs
    checkpoints, and a short id that names AUDIT_KEY without revealing it."""

    chain: bytes
    checkpoint: bytes
    key_id: str


@functools.lru_cache(maxsize=8)
def keys(audit_key: str) -> Keys:
    """The keys derived from AUDIT_KEY (computed once per key)."""
    if not audit_key:
        raise RuntimeError("AUDIT_KEY is not set: the audit trail cannot be chained or checked.")

    def derive(purpose: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            audit_key.encode()
        )

    return Keys(
        chain=derive(b"referrals audit chain"),
        checkpoint=derive(b"referrals audit checkpoint"),
        key_id=derive(b"referrals audit key id").hex()[:12],
    )


def _our_key() -> str:
    return current_app.config["SETTINGS"].audit_key


class _AuditSettings(Protocol):
    env: str
    audit_key: str
    audit_checkpoint_minutes: float
    audit_checkpoint_file: str


def config_problems(settings: _AuditSettings) -> list[str]:
    """What is wrong with the audit settings, one sentence each (empty when nothing is)."""
    problems = []
    if not settings.audit_key:
        if settings.env == "production":
            problems.append(
                "AUDIT_KEY must be set in production (REFERRALS_ENV=production): a secret of at "
                f"least {MIN_KEY_LENGTH} characters, the same on every host, kept outside the "
                "database (e.g. python -c 'import secrets; print(secrets.token_hex(32))')."
            )
    elif len(settings.audit_key) < MIN_KEY_LENGTH:
        problems.append(
            f"AUDIT_KEY is too short: use at least {MIN_KEY_LENGTH} random characters "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')."
        )
    if settings.audit_checkpoint_minutes < 0:
        problems.append("AUDIT_CHECKPOINT_MINUTES must be 0 (no checkpoints) or more.")
    if settings.audit_checkpoint_file:
        folder = Path(settings.audit_checkpoint_file).parent
        if not folder.is_dir():
            problems.append(
                f"AUDIT_CHECKPOINT_FILE={settings.audit_checkpoint_file}: "
                f"its folder {folder} does not exist."
            )
    return problems


# --- hashing ----------------------------------------------------------------------------------


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def message(values: Mapping[str, Any]) -> bytes:
    """What the keyed hash covers: every column but the hash, by name, as canonical JSON."""
    body = {name: _plain(values[name]) for name in HASHED_COLUMNS if values.get(name) is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def keyed_hash(values: Mapping[str, Any], chain_key: bytes) -> str:
    return hmac.digest(chain_key, message(values), "sha256").hex()


def _sha256_hash(values: Mapping[str, Any]) -> str:
    """How entries were hashed before the keyed chain (kept to check them)."""
    entry = {
        "at": values["at"].isoformat(),
        "actor_user_id": str(values["actor_user_id"] or ""),
        "actor_name": values["actor_name"],
        "org_id": str(values["org_id"] or ""),
        "action": values["action"],
        "target_type": values["target_type"],
        "target_id": values["target_id"],
        "patient_id": str(values["patient_id"] or ""),
        "ip": values["ip"] or "",
        "outcome": values["outcome"],
        "detail": values["detail"],
    }
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((values["prev_hash"] + body).encode()).hexdigest()


def entry_hash(values: Mapping[str, Any], chain_key: bytes) -> str:
    """An entry's hash as its scheme makes it."""
    if values["scheme"] == HMAC_SHA256:
        return keyed_hash(values, chain_key)
    if values["scheme"] == SHA256:
        return _sha256_hash(values)
    raise ValueError(f"unknown audit hash scheme {values['scheme']!r}")


# --- writing ----------------------------------------------------------------------------------


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object = "",
    *,
    patient_id: uuid.UUID | None = None,
    outcome: str = "success",
    detail: dict | None = None,
) -> AuditEvent:
    """Append one entry to the trail, chained to the one before it. Never log PHI in `detail`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    head = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    values: dict[str, Any] = {
        "id": head.id + 1 if head else 1,
        "scheme": SCHEME,
        "at": utcnow(),
        "actor_user_id": actor.user_id,
        "actor_name": actor.user_name,
        "org_id": actor.org_id,
        "org_name": actor.org_name,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "patient_id": patient_id,
        "ip": actor.ip,
        "outcome": outcome,
        "detail": detail or {},
        "prev_hash": head.hash if head else "",
    }
    event = AuditEvent(**values, hash=keyed_hash(values, keys(_our_key()).chain))
    session.add(event)
    session.flush()
    return event


def deny(session: Session, actor: Actor, action: str, target_type: str, target_id: object) -> None:
    """Keep a refused access on the trail even though the caller is about to fail."""
    record(session, actor, action, target_type, target_id, outcome="denied")
    session.commit()


def seal(head_id: int, head_hash: str, entries: int, audit_key: str, at: datetime) -> dict:
    """The entry with which the upgrade to the keyed chain seals the `entries` entries hashed
    before it: it follows the last of them, under the key, so none of them can be changed or
    removed, nor more added, without its hash failing."""
    values: dict[str, Any] = {
        "id": head_id + 1,
        "scheme": HMAC_SHA256,
        "at": at,
        "actor_user_id": None,
        "actor_name": "database upgrade",
        "org_id": None,
        "org_name": "",
        "action": SEAL_ACTION,
        "target_type": "AuditEvent",
        "target_id": "",
        "patient_id": None,
        "ip": None,
        "outcome": "success",
        "detail": {"sealed_entries": entries, "from_scheme": SHA256, "to_scheme": HMAC_SHA256},
        "prev_hash": head_hash,
    }
    values["hash"] = keyed_hash(values, keys(audit_key).chain)
    return values


# --- checking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Where the trail does not hold and why, in words without patient data."""

    entry_id: int | None  # None: a checkpoint line, not an entry
    reason: str

    def __str__(self) -> str:
        return self.reason if self.entry_id is None else f"entry {self.entry_id} {self.reason}"


@dataclass(frozen=True)
class Checkpoint:
    """What the trail held at one moment (entries, last id, the hash of that entry), signed
    with a key from AUDIT_KEY. Kept outside the database, it shows entries removed after it."""

    at: str
    entries: int
    last_id: int
    head_hash: str
    key_id: str
    signature: str = ""

    def _body(self) -> dict:
        return {
            "audit_checkpoint": 1,
            "at": self.at,
            "entries": self.entries,
            "last_id": self.last_id,
            "head_hash": self.head_hash,
            "key_id": self.key_id,
        }

    def expected_signature(self, checkpoint_key: bytes) -> str:
        body = json.dumps(self._body(), sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(checkpoint_key, body, hashlib.sha256).hexdigest()

    def line(self) -> str:
        """One line of JSON: what is logged and appended to AUDIT_CHECKPOINT_FILE."""
        return json.dumps({**self._body(), "signature": self.signature})


@dataclass
class Report:
    """What checking the trail found: the first problem, or what holds."""

    problem: Problem | None = None
    entries: int = 0
    last_id: int | None = None
    sha256_entries: int = 0  # hashed the way entries were before the keyed chain
    seal_id: int | None = None
    checkpoints: int = 0


def _gap(before: int, after: int) -> str:
    if after - before == 2:
        return f"entry {before + 1} is missing"
    return f"entries {before + 1} to {after - 1} are missing"


def _entry_problem(
    row: Mapping[str, Any],
    prev: Mapping[str, Any] | None,
    expected_prev: str | None,
    chain_key: bytes,
    report: Report,
    whole: bool,
) -> str | None:
    """Why this entry does not hold in its place, or None."""
    scheme = row["scheme"]
    if scheme not in (SHA256, HMAC_SHA256):
        return f"names an unknown hash scheme ({scheme})"
    if prev is not None:
        if scheme < prev["scheme"]:
            return (
                "is hashed the old, unkeyed way although keyed entries come before it: "
                "it was forged or re-hashed"
            )
        if prev["scheme"] == HMAC_SHA256 and row["id"] != prev["id"] + 1:
            return f"does not follow entry {prev['id']}: {_gap(prev['id'], row['id'])}"
    if expected_prev is not None and row["prev_hash"] != expected_prev:
        if prev is None:
            return "does not start the trail: the entries before it were removed"
        return (
            f"does not follow entry {prev['id']}: an entry between them was removed, "
            "or an entry was changed and re-hashed"
        )
    if prev is not None and prev["scheme"] == SHA256 and scheme == HMAC_SHA256:
        if row["action"] != SEAL_ACTION:
            return "follows entries hashed the old way but is not the upgrade's seal"
        detail = row["detail"]
        sealed = detail.get("sealed_entries") if isinstance(detail, dict) else None
        if whole and sealed != report.sha256_entries:
            return (
                f"is the upgrade's seal of {sealed} entries hashed the old way, "
                f"but {report.sha256_entries} come before it"
            )
    try:
        expected = entry_hash(row, chain_key)
    except (KeyError, TypeError, AttributeError, ValueError):
        expected = ""
    if not hmac.compare_digest(expected.encode(), str(row["hash"]).encode()):
        if scheme == HMAC_SHA256:
            return (
                "does not match its keyed hash: it was altered, or written without AUDIT_KEY "
                "(or AUDIT_KEY is not the key the trail was written with)"
            )
        return "does not match its hash: it was altered"
    return None


def _checkpoint_problem(
    row: Mapping[str, Any], vouching: Iterable[Checkpoint], entries: int
) -> str | None:
    for checkpoint in vouching:
        if row["hash"] != checkpoint.head_hash:
            return (
                f"is not the entry the checkpoint of {checkpoint.at} vouched for: the trail "
                "was rewritten up to here"
            )
        if entries != checkpoint.entries:
            return (
                f"ends {entries} entries, where the checkpoint of {checkpoint.at} vouched for "
                f"{checkpoint.entries}"
            )
    return None


def check_trail(
    session: Session,
    audit_key: str,
    *,
    last: int | None = None,
    checkpoints: Iterable[Checkpoint] = (),
) -> Report:
    """Check the trail in order with the key: each entry's hash, its link to the one before,
    ids without gaps, schemes that never go back; and that the trail still holds what each
    (already verified) checkpoint vouches for. With `last`, only the newest entries are
    checked, without checkpoints (a page can afford that)."""
    chain_key = keys(audit_key).chain
    checkpoints = list(checkpoints)
    if last is not None and checkpoints:
        raise ValueError("checkpoints vouch for the whole trail: check it whole")
    table = AuditEvent.__table__
    stmt = select(table).order_by(table.c.id)
    expected_prev: str | None = ""
    if last is not None:
        first_id = session.scalar(
            select(table.c.id).order_by(table.c.id.desc()).offset(last - 1).limit(1)
        )
        if first_id is not None:
            stmt = stmt.where(table.c.id >= first_id)
            expected_prev = None  # the first entry's predecessor is outside the window
    whole = expected_prev is not None
    vouched: dict[int, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        if checkpoint.entries:
            vouched.setdefault(checkpoint.last_id, []).append(checkpoint)
    report = Report(checkpoints=len(checkpoints))
    prev: dict[str, Any] | None = None
    result = session.execute(stmt.execution_options(yield_per=1000))
    try:
        for mapping in result.mappings():
            row = dict(mapping)
            report.entries += 1
            why = _entry_problem(row, prev, expected_prev, chain_key, report, whole)
            why = why or _checkpoint_problem(row, vouched.pop(row["id"], ()), report.entries)
            if why:
                report.problem = Problem(row["id"], why)
                return report
            if row["scheme"] == SHA256:
                report.sha256_entries += 1
            elif prev is not None and prev["scheme"] == SHA256:
                report.seal_id = row["id"]
            expected_prev = row["hash"]
            prev = {key: row[key] for key in ("id", "scheme", "hash")}
    finally:
        result.close()
    if prev is not None:
        report.last_id = prev["id"]
        if prev["scheme"] == SHA256:
            report.problem = Problem(
                prev["id"],
                "ends entries hashed the old, unkeyed way that no keyed seal follows: they were "
                "rewritten the old way, or the upgrade to the keyed chain did not seal them",
            )
            return report
    if vouched:
        missing = min(vouched)
        checkpoint = vouched[missing][0]
        ends = f"entry {report.last_id}" if report.last_id else "nothing: it is empty"
        report.problem = Problem(
            missing,
            f"is missing: the checkpoint of {checkpoint.at} vouched for {checkpoint.entries} "
            f"entries up to it, and the trail ends at {ends}",
        )
    return report


def verify_chain(session: Session, *, last: int | None = None) -> int | None:
    """The id of the first entry where the trail does not hold, or None when it holds.

    With `last`, only the newest entries are checked (a page can afford that; the
    `audit-verify` command checks the whole trail, and the checkpoints)."""
    problem = check_trail(session, _our_key(), last=last).problem
    return None if problem is None else problem.entry_id


# --- checkpoints ------------------------------------------------------------------------------


def take_checkpoint(session: Session, audit_key: str) -> Checkpoint:
    """A signed checkpoint of the trail's committed head."""
    table = AuditEvent.__table__
    head = session.execute(
        select(table.c.id, table.c.hash).order_by(table.c.id.desc()).limit(1)
    ).first()
    # Entries commit in id order (the chain's lock): all those up to the head are there.
    entries = (
        session.scalar(select(func.count()).select_from(table).where(table.c.id <= head.id))
        if head
        else 0
    )
    k = keys(audit_key)
    checkpoint = Checkpoint(
        at=utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        entries=entries or 0,
        last_id=head.id if head else 0,
        head_hash=head.hash if head else "",
        key_id=k.key_id,
    )
    return replace(checkpoint, signature=checkpoint.expected_signature(k.checkpoint))


def write_checkpoint(session: Session) -> Checkpoint:
    """Take a checkpoint and keep it outside the database: one log line on the logger
    `referrals.audit.checkpoint`, and one line appended to AUDIT_CHECKPOINT_FILE when set."""
    settings = current_app.config["SETTINGS"]
    checkpoint = take_checkpoint(session, settings.audit_key)
    line = checkpoint.line()
    checkpoint_log.info("audit checkpoint %s", line)
    if settings.audit_checkpoint_file:
        with open(settings.audit_checkpoint_file, "a", encoding="utf-8") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())
    return checkpoint


def read_checkpoints(
    lines: Iterable[str], audit_key: str
) -> tuple[list[Checkpoint], Problem | None]:
    """The checkpoints in a file of them (or in log lines: each from its first `{`), each with
    its signature checked; or the first line that is not a good one."""
    k = keys(audit_key)
    found = []
    for number, raw in enumerate(lines, 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            data = json.loads(raw[raw.index("{") :])
            checkpoint = Checkpoint(
                at=str(data["at"]),
                entries=int(data["entries"]),
                last_id=int(data["last_id"]),
                head_hash=str(data["head_hash"]),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
            )
            if data.get("audit_checkpoint") != 1:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return found, Problem(None, f"line {number} is not an audit checkpoint")
        expected = checkpoint.expected_signature(k.checkpoint)
        if not hmac.compare_digest(expected.encode(), checkpoint.signature.encode()):
            if checkpoint.key_id != k.key_id:
                why = (
                    f"was signed with another AUDIT_KEY (key id {checkpoint.key_id}; "
                    f"ours is {k.key_id})"
                )
            else:
                why = "does not match its signature: it was edited"
            return found, Problem(None, f"line {number} {why}")
        found.append(checkpoint)
    return found, None


def schedule_checkpoint(
    session: Session, *, delay: float | None = None, after_slot: int | None = None
) -> None:
    """Queue the next checkpoint, AUDIT_CHECKPOINT_MINUTES from now unless `delay` (seconds)
    says otherwise: one per time slot, later than `after_slot`; none when the setting is 0."""
    minutes = current_app.config["SETTINGS"].audit_checkpoint_minutes
    if minutes <= 0:
        return
    interval = minutes * 60
    when = utcnow() + timedelta(seconds=interval if delay is None else delay)
    slot = int(when.timestamp() // interval)
    if after_slot is not None and slot <= after_slot:
        # A checkpoint that ran before its time (retried by hand): the next one is its own.
        slot = after_slot + 1
        when = datetime.fromtimestamp(slot * interval, UTC)
    job = jobs.enqueue(
        session, CHECKPOINT_JOB, {"slot": slot}, f"{CHECKPOINT_JOB}:{int(interval)}:{slot}"
    )
    if job.status == jobs.QUEUED and job.attempts == 0:
        job.run_after = max(job.run_after, when)


def _checkpoint_again(session: Session, payload: dict, _error: str = "") -> None:
    schedule_checkpoint(session, after_slot=payload.get("slot"))


@jobs.handler(CHECKPOINT_JOB, on_dead=_checkpoint_again)
def checkpoint_job(session: Session, payload: dict) -> None:
    """Write a checkpoint, then queue the next one (also when this one is given up)."""
    write_checkpoint(session)
    _checkpoint_again(session, payload)


@jobs.on_worker_start
def _first_checkpoint(session: Session) -> None:
    schedule_checkpoint(session)
