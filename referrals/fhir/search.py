"""Searching Tasks, the way referral recipients poll (`GET /fhir/Task?owner=...&_lastUpdated=
gt...`): only Tasks the client's organisation sent or works, newest change last, in pages.
Every search is audited."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import joinedload

from referrals import audit
from referrals.auth.actor import Actor
from referrals.db import transaction
from referrals.fhir import mapping
from referrals.loop.lifecycle import Status
from referrals.loop.models import Referral, Task

TASK_PARAMS = frozenset(
    {
        "_id",
        "_lastUpdated",
        "code",
        "focus",
        "owner",
        "patient",
        "requester",
        "status",
        "_count",
        "_offset",
        "_include",
        "_format",
    }
)
DEFAULT_COUNT, MAX_COUNT = 50, 200
PREFIXES = ("gt", "ge", "lt", "le", "eq")


class SearchProblem(ValueError):
    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass
class TaskPage:
    resources: list[dict]
    included: list[dict]
    total: int
    offset: int
    count: int


def _uuid(value: str, parameter: str) -> uuid.UUID:
    """An id from `Type/id`, an absolute reference, or a bare id."""
    try:
        return uuid.UUID(value.rstrip("/").rsplit("/", 1)[-1])
    except ValueError:
        raise SearchProblem(
            f"{parameter}={value} does not name a resource of ours.", parameter
        ) from None


def _instant(value: str, parameter: str) -> tuple[str, datetime, datetime]:
    """The prefix and the span a dateTime stands for at its precision: `gt…:05.123Z` means
    after the whole millisecond, not after its first microsecond."""
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    text = value[2:] if value[:2] in PREFIXES else value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SearchProblem(
            f"{parameter}={value}: use a FHIR dateTime, e.g. gt2026-11-24T08:00:00Z.", parameter
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if "T" not in text:
        unit = timedelta(days=1)
    else:
        clock = text.split("T", 1)[1]
        fraction = clock.split(".", 1)[1] if "." in clock else ""
        digits = len(fraction.rstrip("Z").split("+")[0].split("-")[0])
        unit = timedelta(microseconds=10 ** max(0, 6 - digits)) if digits else timedelta(seconds=1)
    return prefix, moment, moment + unit


def search_tasks(actor: Actor, params: Mapping[str, list[str]], base: str) -> TaskPage:
    unknown = sorted(set(params) - TASK_PARAMS)
    if unknown:
        raise SearchProblem(
            f"Unknown search parameter {unknown[0]} for Task; we support "
            f"{', '.join(sorted(TASK_PARAMS - {'_format'}))}.",
            unknown[0],
        )
    conditions = [or_(Task.owner_org_id == actor.org_id, Task.requester_org_id == actor.org_id)]
    for value in params.get("_id", []):
        conditions.append(Task.id.in_([_uuid(v, "_id") for v in value.split(",")]))
    for value in params.get("owner", []):
        conditions.append(Task.owner_org_id == _uuid(value, "owner"))
    for value in params.get("requester", []):
        conditions.append(Task.requester_org_id == _uuid(value, "requester"))
    for value in params.get("focus", []):
        conditions.append(Task.referral_id == _uuid(value, "focus"))
    patients = [_uuid(value, "patient") for value in params.get("patient", [])]
    for patient_id in patients:
        conditions.append(Referral.patient_id == patient_id)
    for value in params.get("status", []):
        statuses = ["requested" if s == "received" else s for s in value.split(",")]
        for status in statuses:
            if status not in {s.value for s in Status}:
                raise SearchProblem(f"status={status} is not a Task status.", "status")
        conditions.append(Task.status.in_(statuses))
    for value in params.get("code", []):
        if value.rsplit("|", 1)[-1] != "fulfill":
            conditions.append(Task.id.is_(None))  # all our Tasks are fulfil Tasks
    for value in params.get("_lastUpdated", []):
        prefix, start, end = _instant(value, "_lastUpdated")
        column = Task.updated_at
        conditions.append(
            {
                "gt": column >= end,
                "ge": column >= start,
                "lt": column < start,
                "le": column < end,
                "eq": and_(column >= start, column < end),
            }[prefix]
        )
    includes = params.get("_include", [])
    if any(value != "Task:focus" for value in includes):
        raise SearchProblem("Only _include=Task:focus is supported.", "_include")
    count = _number(params, "_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _number(params, "_offset", 0, 0, 10**9)

    with transaction() as session:
        base_query = select(Task)
        if patients:  # the only condition on the ServiceRequest's side
            base_query = base_query.join(Task.referral)
        base_query = base_query.where(and_(*conditions))
        total = session.scalar(select(func.count()).select_from(base_query.subquery())) or 0
        tasks = list(
            session.scalars(
                base_query.options(joinedload(Task.referral))
                .order_by(Task.updated_at, Task.id)
                .offset(offset)
                .limit(count)
            ).unique()
        )
        resources = [mapping.task_to_fhir(task, base) for task in tasks]
        included = (
            [mapping.service_request_to_fhir(task.referral, base) for task in tasks]
            if includes
            else []
        )
        audit.record(
            session,
            actor,
            "fhir.search",
            "Task",
            detail={"parameters": sorted(params), "results": len(tasks)},
        )
    return TaskPage(resources, included, total, offset, count)


def _number(params: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = params.get(name)
    if not values:
        return default
    value = values[-1]
    if not value.isdigit():
        raise SearchProblem(f"{name}={value}: a whole number is expected.", name)
    return max(low, min(high, int(value)))
