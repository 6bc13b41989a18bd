"""Searching Tasks, the way referral recipients poll (`GET /fhir/Task?owner=...&_lastUpdated=
gt...`): only Tasks the client's organisation sent or works, newest change last, in pages.
And searching the other referral resources (Patient, ServiceRequest, Procedure, Condition,
Goal, Observation, QuestionnaireResponse, Consent) with the organisation scoping of reads.py, as
SQL conditions; an organisation's own people (PractitionerRole); and the directory
(Organization, HealthcareService, Location), which every client reads, the way partners find
where to refer. Every search is audited."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, func, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql.functions import FunctionElement

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.models import Membership, Organization, User
from referrals.db import db, transaction
from referrals.directory.models import Address, Location, Service, ServiceAtLocation
from referrals.fhir import disclosure, mapping
from referrals.fhir.capability import CHAINED, INCLUDES, SERVED
from referrals.fhir.profiles import (
    OBSERVATION_CATEGORY,
    ORGANIZATION_TYPE,
    US_CORE_CATEGORY,
    US_CORE_CONDITION_CATEGORY,
)
from referrals.loop.lifecycle import Status
from referrals.loop.models import Referral, Task
from referrals.patients.instruments import INSTRUMENTS
from referrals.patients.models import Consent, Need, Patient, Screening, ScreeningObservation
from referrals.terminology import SDOH_CATEGORIES, SDOHCC_CODES, SNOMED, SOCIAL_SERVICE_CATEGORY
from referrals.text_values import later, shown, utc_moment, whole_number

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
        "_sort",
    }
)
DEFAULT_COUNT, MAX_COUNT = 50, 200
PREFIXES = ("gt", "ge", "lt", "le", "eq")


class SearchProblem(ValueError):
    """A parameter we cannot search by; the message says which and why, quoting what was sent
    only as `shown` writes it."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = shown(parameter)


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
            f"{parameter}={shown(value)} does not name a resource of ours.", parameter
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
            f"{parameter}={shown(value)}: use a FHIR dateTime, e.g. gt2026-11-24T08:00:00Z.",
            parameter,
        ) from None
    moment = utc_moment(moment)
    if "T" not in text:
        unit = timedelta(days=1)
    else:
        clock = text.split("T", 1)[1]
        fraction = clock.split(".", 1)[1] if "." in clock else ""
        digits = len(fraction.rstrip("Z").split("+")[0].split("-")[0])
        unit = timedelta(microseconds=10 ** max(0, 6 - digits)) if digits else timedelta(seconds=1)
    return prefix, moment, later(moment, unit)


def _date(column: Any, value: str, parameter: str) -> ColumnElement[bool]:
    """A date parameter with its prefix, at the precision it was given."""
    prefix, start, end = _instant(value, parameter)
    return {
        "gt": column >= end,
        "ge": column >= start,
        "lt": column < start,
        "le": column < end,
        "eq": and_(column >= start, column < end),
    }[prefix]


def search_tasks(actor: Actor, params: Mapping[str, list[str]], base: str) -> TaskPage:
    unknown = sorted(set(params) - TASK_PARAMS)
    if unknown:
        raise _unknown(unknown[0], "Task", TASK_PARAMS)
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
                raise SearchProblem(f"status={shown(status)} is not a Task status.", "status")
        conditions.append(Task.status.in_(statuses))
    for value in params.get("code", []):
        if value.rsplit("|", 1)[-1] != "fulfill":
            conditions.append(Task.id.is_(None))  # all our Tasks are fulfil Tasks
    for value in params.get("_lastUpdated", []):
        conditions.append(_date(Task.updated_at, value, "_lastUpdated"))
    includes = params.get("_include", [])
    if any(value != "Task:focus" for value in includes):
        raise SearchProblem("Only _include=Task:focus is supported.", "_include")
    if any(value != "_lastUpdated" for value in params.get("_sort", [])):
        # Tasks come oldest change first, as pollers need them; no other order is offered.
        raise SearchProblem("Only _sort=_lastUpdated is supported.", "_sort")
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
            [
                disclosure.service_request_for(
                    mapping.service_request_to_fhir(task.referral, base),
                    task.referral,
                    actor.org_id,
                )
                for task in tasks
            ]
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
    number = whole_number(value, high)
    if number is None:
        raise SearchProblem(
            f"{name}={shown(value, 40)}: a whole number written in the digits 0-9 is expected.",
            name,
        )
    return max(low, number)


# --- the other resource types -------------------------------------------------------------------
#
# The same organisation scoping as reads.py, written as SQL conditions: the clinic that holds a
# patient finds everything about them; a recipient finds what its referrals disclose (Patient,
# ServiceRequest, the Procedure it recorded, the Condition a referral is for, the Consent naming
# it as recipient) and never the screening.

COMMON_PARAMS = frozenset({"_count", "_offset", "_format"})
REQUEST_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
REQUEST_INTENTS = frozenset(
    {
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
EVENT_STATUSES = frozenset(
    {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    }
)


STRING_MODIFIERS = frozenset({"exact", "contains"})


@dataclass
class _Plan:
    query: Select
    order: tuple[Any, ...]
    options: tuple[Any, ...]
    to_fhir: Callable[[Any], dict]
    # Loads, in one query for the whole page, what to_fhir needs beyond the rows.
    prepare: Callable[[list[Any]], None] | None = None
    # The `_include`d resources of a page's rows (loaded with it through `options`).
    include: Callable[[list[Any]], list[dict]] | None = None


def searchable() -> frozenset[str]:
    """The resource types `GET /fhir/{type}?...` answers."""
    return frozenset({"Task", *_PLANS})


def search(
    actor: Actor, resource_type: str, params: Mapping[str, list[str]], base: str
) -> TaskPage:
    """One page of the resources of this type the actor's organisation may see that match."""
    _refuse_nul(params)
    if resource_type == "Task":
        return search_tasks(actor, params, base)
    _check_names(resource_type, params)
    plan = _PLANS[resource_type](actor, params, base)
    count = _number(params, "_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _number(params, "_offset", 0, 0, 10**9)
    with transaction() as session:
        _fold_on_sqlite(session)
        total = session.scalar(select(func.count()).select_from(plan.query.subquery())) or 0
        rows = list(
            session.scalars(
                plan.query.options(*plan.options).order_by(*plan.order).offset(offset).limit(count)
            ).unique()
        )
        if plan.prepare is not None:
            plan.prepare(rows)
        resources = [plan.to_fhir(row) for row in rows]
        included = plan.include(rows) if plan.include is not None else []
        audit.record(
            session,
            actor,
            "fhir.search",
            resource_type,
            detail={"parameters": sorted(params), "results": len(rows)},
        )
    return TaskPage(resources, included, total, offset, count)


def _refuse_nul(params: Mapping[str, list[str]]) -> None:
    """PostgreSQL text cannot hold the NUL character, so a value with one would fail there (and
    match nothing anywhere): it is refused, the same way on both databases."""
    for key, values in params.items():
        if any("\x00" in value for value in values):
            raise SearchProblem(
                f"{shown(key)}: a value holds the NUL character (\\u0000); no text can.", key
            )


def _unknown(key: str, resource_type: str, allowed: frozenset[str]) -> SearchProblem:
    """The refusal of a parameter we do not answer for the type, listing those we do."""
    supported = ", ".join(sorted(allowed - {"_format"}))
    if not key:  # `?=x`, or a stray `&=` in a URL put together by hand
        return SearchProblem(
            f"A search parameter without a name was sent; {resource_type} takes {supported}.", key
        )
    return SearchProblem(
        f"Unknown search parameter {shown(key)} for {resource_type}; we support {supported}.", key
    )


def _check_names(resource_type: str, params: Mapping[str, list[str]]) -> None:
    """Every parameter is one we answer for the type, with a modifier only where we honour it
    (a string's `:exact` and `:contains`), and `_include` only what the type includes."""
    kinds = {**SERVED[resource_type][1], **CHAINED.get(resource_type, {})}
    allowed = frozenset(kinds) | COMMON_PARAMS
    if resource_type in INCLUDES:
        allowed |= {"_include"}
    for key in sorted(params):
        name, _, modifier = key.partition(":")
        if name not in allowed:
            raise _unknown(key, resource_type, allowed)
        if modifier and not (kinds.get(name) == "string" and modifier in STRING_MODIFIERS):
            raise SearchProblem(
                f"{shown(key)}: we do not support the modifier :{shown(modifier)} on {name} "
                "(string parameters take :exact or :contains).",
                key,
            )
    for value in params.get("_include", []):
        if value not in INCLUDES.get(resource_type, []):
            raise SearchProblem(
                f"_include={shown(value)}: we include {' and '.join(INCLUDES[resource_type])}.",
                "_include",
            )


# --- parameter values ---------------------------------------------------------------------------


def _references(value: str, parameter: str, resource_type: str) -> list[uuid.UUID]:
    """Comma-separated references (`Type/id`, absolute, or bare ids) to one resource type."""
    keys = []
    for part in value.split(","):
        segments = part.rstrip("/").split("/")
        if len(segments) > 1 and segments[-2] != resource_type:
            raise SearchProblem(
                f"{parameter}={shown(part)}: a {resource_type} reference is expected.", parameter
            )
        keys.append(_uuid(part, parameter))
    return keys


def _tokens(value: str) -> list[tuple[str | None, str]]:
    """Comma-separated tokens: (system, code) for `system|code`, (None, code) for `code`."""
    out: list[tuple[str | None, str]] = []
    for part in value.split(","):
        system, bar, code = part.partition("|")
        out.append((system, code) if bar else (None, part))
    return out


def _codes(value: str, parameter: str, allowed: frozenset[str], what: str) -> list[str]:
    """The codes of a status-like token (its system, if given, is FHIR's own)."""
    codes = [code for _, code in _tokens(value)]
    for code in codes:
        if code not in allowed:
            raise SearchProblem(f"{parameter}={shown(code)} is not {what}.", parameter)
    return codes


def _category(
    value: str, always: set[tuple[str, str]], domain: Callable[[str], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """A category token: codings every resource of the type carries match all of them; an SDOH
    domain (SDOHCC temporary codes) matches through `domain`; anything else matches none."""
    matches: list[ColumnElement[bool]] = []
    for system, code in _tokens(value):
        if not code:  # `system|`: any code of the system
            if system in {s for s, _ in always} | {SDOHCC_CODES}:
                matches.append(true())
        elif any(system in (None, s) and code == c for s, c in always):
            matches.append(true())
        elif system in (None, SDOHCC_CODES) and code in SDOH_CATEGORIES:
            matches.append(domain(code))
    return or_(*matches) if matches else false()


class _fold(FunctionElement):
    """Lower case, the same on both databases: PostgreSQL's lower() knows Unicode, SQLite's
    only ASCII, so SQLite calls Python's (registered by _fold_on_sqlite)."""

    type = String()
    inherit_cache = True


@compiles(_fold)
def _fold_default(element: _fold, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_fold, "sqlite")
def _fold_sqlite(element: _fold, compiler: Any, **kw: Any) -> str:
    return f"fhir_lower({compiler.process(element.clauses, **kw)})"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _fold_on_sqlite(session: Session) -> None:
    if session.get_bind().dialect.name == "sqlite":
        raw = session.connection().connection.driver_connection
        raw.create_function("fhir_lower", 1, _lower, deterministic=True)


def _split(value: str) -> list[str]:
    """Comma-separated alternatives; `\\,` is a comma within one (FHIR search escaping)."""
    return [part.replace("\\,", ",") for part in re.split(r"(?<!\\),", value)]


StringTest = Callable[[Any], ColumnElement[bool]]


def _strings(params: Mapping[str, list[str]], name: str) -> list[StringTest]:
    """A FHIR string parameter, each occurrence a test to apply to the column(s) it searches:
    case-insensitive starts-with by default, anywhere with `:contains`, the whole value as
    written with `:exact`; comma-separated values are alternatives."""
    tests: list[StringTest] = []
    for key, values in params.items():
        base_name, _, modifier = key.partition(":")
        if base_name != name:
            continue
        for value in values:
            tests.append(_string_test(modifier, _split(value)))
    return tests


def _string_test(modifier: str, parts: list[str]) -> StringTest:
    def test(column: Any) -> ColumnElement[bool]:
        if modifier == "exact":
            return column.in_(parts)
        folded = _fold(column)
        if modifier == "contains":
            return or_(*[folded.contains(p.lower(), autoescape=True) for p in parts])
        return or_(*[folded.startswith(p.lower(), autoescape=True) for p in parts])

    return test


def _booleans(params: Mapping[str, list[str]], name: str) -> list[bool]:
    out = []
    for value in params.get(name, []):
        if value not in {"true", "false"}:
            raise SearchProblem(f"{name}={shown(value)}: true or false is expected.", name)
        out.append(value == "true")
    return out


def _ids(params: Mapping[str, list[str]], column: Any) -> list[ColumnElement[bool]]:
    return [
        column.in_([_uuid(v, "_id") for v in value.split(",")]) for value in params.get("_id", [])
    ]


def _patients(params: Mapping[str, list[str]], column: Any) -> list[ColumnElement[bool]]:
    return [
        column.in_(_references(value, "patient", "Patient")) for value in params.get("patient", [])
    ]


# --- scoping ------------------------------------------------------------------------------------


def _shares_referral(actor: Actor) -> ColumnElement[bool]:
    return or_(Referral.requester_org_id == actor.org_id, Referral.performer_org_id == actor.org_id)


def _sees_patient(actor: Actor) -> ColumnElement[bool]:
    """Patient rows the organisation holds, or shares a referral for (reads._sees_patient)."""
    return or_(
        Patient.organization_id == actor.org_id,
        select(Referral.id)
        .where(Referral.patient_id == Patient.id, _shares_referral(actor))
        .exists(),
    )


def _shared_referrals(actor: Actor) -> tuple[Callable[[list[Any]], None], dict]:
    """A page's patients -> the referrals between them and the actor's organisation (what decides
    what it may see of them), loaded in one query."""
    found: dict[uuid.UUID, list[Referral]] = {}

    def prepare(patients: list[Any]) -> None:
        ids = [patient.id for patient in patients]
        if not ids:
            return
        for referral in (
            db.session()
            .scalars(
                select(Referral)
                .options(selectinload(Referral.consent))
                .where(
                    Referral.patient_id.in_(ids),
                    or_(
                        Referral.requester_org_id == actor.org_id,
                        Referral.performer_org_id == actor.org_id,
                    ),
                )
            )
            .unique()
        ):
            found.setdefault(referral.patient_id, []).append(referral)

    return prepare, found


# --- one plan per type --------------------------------------------------------------------------


def _patient_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    conditions = [_sees_patient(actor), *_ids(params, Patient.id)]
    prepare, shared = _shared_referrals(actor)
    return _Plan(
        select(Patient).where(*conditions),
        (Patient.created_at, Patient.id),
        (),
        lambda patient: disclosure.patient_for(
            mapping.patient_to_fhir(patient, base),
            patient,
            actor.org_id,
            shared.get(patient.id, []),
        ),
        prepare,
    )


def _service_request_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    conditions = [_shares_referral(actor), *_ids(params, Referral.id)]
    conditions += _patients(params, Referral.patient_id)
    for value in params.get("status", []):
        statuses = _codes(value, "status", REQUEST_STATUSES, "a ServiceRequest status")
        conditions.append(Referral.status.in_(statuses))
    for value in params.get("intent", []):
        intents = _codes(value, "intent", REQUEST_INTENTS, "a ServiceRequest intent")
        conditions.append(func.coalesce(Referral.intent, "order").in_(intents))
    for value in params.get("category", []):
        conditions.append(
            _category(
                value, {(SNOMED, SOCIAL_SERVICE_CATEGORY[0])}, lambda d: Referral.category == d
            )
        )
    for value in params.get("_lastUpdated", []):
        conditions.append(_date(Referral.updated_at, value, "_lastUpdated"))
    return _Plan(
        select(Referral).where(*conditions),
        (Referral.updated_at, Referral.id),
        (
            joinedload(Referral.requester_org),
            joinedload(Referral.performer_org),
            joinedload(Referral.service),
        ),
        lambda referral: disclosure.service_request_for(
            mapping.service_request_to_fhir(referral, base), referral, actor.org_id
        ),
    )


def _procedure_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """A Procedure is what a completed Task recorded (same id as the Task)."""
    conditions = [_shares_referral(actor), Task.output_code.is_not(None), *_ids(params, Task.id)]
    conditions += _patients(params, Referral.patient_id)
    for value in params.get("based-on", []):
        conditions.append(Task.referral_id.in_(_references(value, "based-on", "ServiceRequest")))
    for value in params.get("status", []):
        if "completed" not in _codes(value, "status", EVENT_STATUSES, "a Procedure status"):
            conditions.append(false())  # every Procedure we record is completed
    return _Plan(
        select(Task).join(Task.referral).where(*conditions),
        (Task.updated_at, Task.id),
        (joinedload(Task.referral),),
        lambda task: mapping.procedure_to_fhir(task, base),
    )


def _sees_need(actor: Actor) -> ColumnElement[bool]:
    """The clinic's patients' needs; for a recipient, the needs its referrals are for (with
    Need joined to its Patient)."""
    referred = (
        select(Referral.id)
        .where(
            Referral.need_id == Need.id,
            Referral.patient_id == Need.patient_id,
            _shares_referral(actor),
        )
        .exists()
    )
    return or_(Patient.organization_id == actor.org_id, referred)


def _condition_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """The clinic's patients' needs; for a recipient, the needs its referrals are for."""
    conditions = [_sees_need(actor), *_ids(params, Need.id)]
    conditions += _patients(params, Need.patient_id)
    for value in params.get("category", []):
        conditions.append(
            _category(
                value,
                {(US_CORE_CONDITION_CATEGORY, "health-concern"), (US_CORE_CATEGORY, "sdoh")},
                lambda d: Need.domain == d,
            )
        )
    return _Plan(
        select(Need).join(Patient, Patient.id == Need.patient_id).where(*conditions),
        (Need.recorded_at, Need.position, Need.id),
        (selectinload(Need.screening),),
        lambda need: mapping.condition_to_fhir(need, base),
    )


def _goal_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """The Goals of the needs a Condition search finds that the clinician confirmed and the
    family wants help with; each with the referrals for it the actor sees (reads._need)."""
    conditions = [
        _sees_need(actor),
        Need.verification == "confirmed",
        Need.family_priority.is_(True),
        *_ids(params, Need.id),
    ]
    conditions += _patients(params, Need.patient_id)
    for value in params.get("category", []):
        conditions.append(_category(value, set(), lambda d: Need.domain == d))
    found: dict[uuid.UUID, list[Referral]] = {}

    def prepare(needs: list[Need]) -> None:
        ids = [need.id for need in needs]
        if not ids:
            return
        query = select(Referral).where(Referral.need_id.in_(ids))
        for referral in db.session().scalars(query).unique():
            holder = referral.patient.organization_id == actor.org_id
            if holder or actor.org_id in {referral.requester_org_id, referral.performer_org_id}:
                found.setdefault(referral.need_id, []).append(referral)

    return _Plan(
        select(Need).join(Patient, Patient.id == Need.patient_id).where(*conditions),
        (Need.recorded_at, Need.position, Need.id),
        (),
        lambda need: mapping.goal_to_fhir(need, found.get(need.id, []), base),
        prepare,
    )


def _observation_domain(domain: str) -> ColumnElement[bool]:
    """Observations categorised with an SDOH domain: positive for it, or asking about it (as
    mapping.observation_to_fhir categorises them)."""
    asking = sorted(
        {
            code
            for instrument in INSTRUMENTS.values()
            for code in [q.code for q in instrument.questions] + [r.code for r in instrument.rules]
            if domain in mapping._question_domains(code)
        }
    )
    return or_(
        cast(ScreeningObservation.domains, String).like(f'%"{domain}"%'),
        ScreeningObservation.code.in_(asking),
    )


def _observation_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """The screening's answers and results: only for the clinic that screened."""
    conditions = [Screening.organization_id == actor.org_id, *_ids(params, ScreeningObservation.id)]
    conditions += _patients(params, ScreeningObservation.patient_id)
    for value in params.get("category", []):
        conditions.append(
            _category(
                value,
                {(OBSERVATION_CATEGORY, "survey"), (US_CORE_CATEGORY, "sdoh")},
                _observation_domain,
            )
        )
    return _Plan(
        select(ScreeningObservation)
        .join(Screening, Screening.id == ScreeningObservation.screening_id)
        .where(*conditions),
        (
            ScreeningObservation.effective_at,
            ScreeningObservation.screening_id,
            ScreeningObservation.position,
            ScreeningObservation.id,
        ),
        (),
        lambda observation: mapping.observation_to_fhir(observation, base),
    )


def _questionnaire_response_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """The screenings themselves: only for the clinic that screened."""
    conditions = [Screening.organization_id == actor.org_id, *_ids(params, Screening.id)]
    conditions += _patients(params, Screening.patient_id)
    return _Plan(
        select(Screening).where(*conditions),
        (Screening.started_at, Screening.id),
        (selectinload(Screening.patient),),
        lambda screening: mapping.questionnaire_response_to_fhir(screening, base),
    )


def _consent_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """The clinic's patients' consents; for a recipient, those that name it."""
    conditions = [
        or_(Patient.organization_id == actor.org_id, Consent.recipient_org_id == actor.org_id),
        *_ids(params, Consent.id),
    ]
    return _Plan(
        select(Consent).join(Patient, Patient.id == Consent.patient_id).where(*conditions),
        (Consent.created_at, Consent.id),
        (
            selectinload(Consent.recipient),
            selectinload(Consent.recorded_by).selectinload(User.memberships),
        ),
        lambda consent: mapping.consent_to_fhir(consent, base),
    )


def _practitioner_role_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    """The people of the actor's own organisation, one PractitionerRole per membership: no
    other organisation's (reads.py refuses them too)."""
    conditions = [Membership.organization_id == actor.org_id, *_ids(params, Membership.id)]
    for value in params.get("organization", []):
        refs = _references(value, "organization", "Organization")
        conditions.append(Membership.organization_id.in_(refs))
    for active in _booleans(params, "active"):
        conditions.append(User.active.is_(active))
    return _Plan(
        select(Membership).join(User, User.id == Membership.user_id).where(*conditions),
        (Membership.created_at, Membership.id),
        (joinedload(Membership.user),),
        lambda membership: mapping.practitioner_role_to_fhir(membership, base),
    )


# --- the directory ------------------------------------------------------------------------------
#
# Readable by every client (reads.py), so found by every client: no organisation scoping, and
# inactive services too, as a read returns them (`active=true` leaves them out). Each parameter
# matches what mapping.py emits for the element it names.


def _organization_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    conditions = _ids(params, Organization.id)
    conditions += [test(Organization.name) for test in _strings(params, "name")]
    for active in _booleans(params, "active"):
        conditions.append(true() if active else false())  # every organisation is active
    for value in params.get("type", []):
        conditions.append(_organization_type(value))
    for value in params.get("_lastUpdated", []):
        conditions.append(_date(Organization.updated_at, value, "_lastUpdated"))
    return _Plan(
        select(Organization).where(*conditions),
        (Organization.name, Organization.id),
        (),
        lambda org: mapping.organization_to_fhir(org, base),
    )


def _organization_type(value: str) -> ColumnElement[bool]:
    """organization-type codes (several kinds share `other`) or our own kinds."""
    matches: list[ColumnElement[bool]] = []
    for system, code in _tokens(value):
        if not code:  # `system|`: any code of the system
            if system in (ORGANIZATION_TYPE, mapping.ORGANIZATION_KIND_SYSTEM):
                matches.append(true())
            continue
        if system in (None, ORGANIZATION_TYPE):
            kinds = [kind for kind, (c, _) in mapping.ORGANIZATION_TYPES.items() if c == code]
            if kinds:
                matches.append(Organization.kind.in_(kinds))
            if code == "other":
                matches.append(Organization.kind.not_in(list(mapping.ORGANIZATION_TYPES)))
        if system in (None, mapping.ORGANIZATION_KIND_SYSTEM):
            matches.append(Organization.kind == code)
    return or_(*matches) if matches else false()


def _shown_address(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """A Location whose address, as location_to_fhir shows it, meets the condition: a physical
    one (anything not postal), or any when it has none."""
    own = select(Address.id).where(Address.location_id == Location.id)
    physical = own.where(Address.address_type != "postal")
    return or_(
        physical.where(condition).exists(),
        and_(~physical.exists(), own.where(condition).exists()),
    )


def _location_conditions(params: Mapping[str, list[str]], prefix: str = "") -> list[Any]:
    """Location's own parameters (`prefix` for a chain from another type)."""
    conditions: list[Any] = []
    for test in _strings(params, prefix + "name"):
        unnamed = func.coalesce(Location.name, "") == ""  # then named for its street
        conditions.append(
            or_(test(Location.name), and_(unnamed, _shown_address(test(Address.address_1))))
        )
    for test in _strings(params, prefix + "address-postalcode"):
        conditions.append(_shown_address(test(Address.postal_code)))
    for test in _strings(params, prefix + "address-city"):
        conditions.append(_shown_address(test(Address.city)))
    return conditions


def _location_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    conditions = _ids(params, Location.id) + _location_conditions(params)
    for value in params.get("organization", []):
        refs = _references(value, "organization", "Organization")
        conditions.append(Location.organization_id.in_(refs))
    return _Plan(
        select(Location).where(*conditions),
        (func.coalesce(Location.name, ""), Location.id),
        (selectinload(Location.addresses), selectinload(Location.phones)),
        lambda location: mapping.location_to_fhir(location, base),
    )


def _service_category(domain: str) -> ColumnElement[bool]:
    return cast(Service.categories, String).like(f'%"{domain}"%')


def _service_type(value: str) -> ColumnElement[bool]:
    """The SNOMED CT service code each service carries as its type."""
    matches: list[ColumnElement[bool]] = []
    for system, code in _tokens(value):
        if system in (None, SNOMED):
            matches.append(Service.service_code == code if code else true())
    return or_(*matches) if matches else false()


def _healthcare_service_plan(actor: Actor, params: Mapping[str, list[str]], base: str) -> _Plan:
    conditions = _ids(params, Service.id)
    conditions += [test(Service.name) for test in _strings(params, "name")]
    for active in _booleans(params, "active"):
        conditions.append(Service.status == "active" if active else Service.status != "active")
    for value in params.get("organization", []):
        refs = _references(value, "organization", "Organization")
        conditions.append(Service.organization_id.in_(refs))
    for value in params.get("service-category", []):
        conditions.append(_category(value, set(), _service_category))
    for value in params.get("service-type", []):
        conditions.append(_service_type(value))
    at = select(ServiceAtLocation.id).where(ServiceAtLocation.service_id == Service.id)
    for value in params.get("location", []):
        refs = _references(value, "location", "Location")
        conditions.append(at.where(ServiceAtLocation.location_id.in_(refs)).exists())
    chained = _location_conditions(params, "location.")
    if chained:
        places = select(Location.id).where(*chained)
        conditions.append(at.where(ServiceAtLocation.location_id.in_(places)).exists())
    for value in params.get("_lastUpdated", []):
        conditions.append(_date(Service.last_modified, value, "_lastUpdated"))

    includes = set(params.get("_include", []))
    links = selectinload(Service.service_at_locations)
    options = [
        selectinload(Service.phones),
        selectinload(Service.schedules),
        links.selectinload(ServiceAtLocation.schedules),
    ]
    if "HealthcareService:location" in includes:
        place = links.joinedload(ServiceAtLocation.location)
        options += [place.selectinload(Location.addresses), place.selectinload(Location.phones)]

    def include(services: list[Service]) -> list[dict]:
        found: dict[tuple[str, uuid.UUID], dict] = {}
        for service in services:
            if "HealthcareService:organization" in includes:
                found.setdefault(
                    ("Organization", service.organization_id),
                    mapping.organization_to_fhir(service.organization, base),
                )
            if "HealthcareService:location" in includes:
                for link in service.service_at_locations:
                    found.setdefault(
                        ("Location", link.location_id),
                        mapping.location_to_fhir(link.location, base),
                    )
        return list(found.values())

    return _Plan(
        select(Service).where(*conditions),
        (Service.name, Service.id),
        tuple(options),
        lambda service: mapping.healthcare_service_to_fhir(service, base),
        include=include,
    )


_PLANS: dict[str, Callable[[Actor, Mapping[str, list[str]], str], _Plan]] = {
    "Organization": _organization_plan,
    "HealthcareService": _healthcare_service_plan,
    "Location": _location_plan,
    "Patient": _patient_plan,
    "ServiceRequest": _service_request_plan,
    "Procedure": _procedure_plan,
    "Condition": _condition_plan,
    "Goal": _goal_plan,
    "PractitionerRole": _practitioner_role_plan,
    "Observation": _observation_plan,
    "QuestionnaireResponse": _questionnaire_response_plan,
    "Consent": _consent_plan,
}
