"""Every FHIR write route, fuzzed (hypothesis). The bodies start as the valid ones partners send
(the IG's example referral and our own as transaction Bundles, a Task move, a Procedure, a
Subscription) and are mutated the ways that hurt: an element of another JSON type, keys dropped
or sent twice, nulls, huge strings, deep nesting, numbers JSON has no room for, unknown
resource types, references to nothing or to another organisation, other content types and
headers. Whatever arrives, the answer is FHIR JSON valid by HL7's schema, never a 5xx and never
a cookie; a refusal is an OperationOutcome and writes nothing (the audit trail alone may grow,
with what the client was refused or read on the way).

The runs are bounded (a few hundred requests in all) and derandomized, so CI is repeatable."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.models import Base
from tests.fhir import test_ig_examples as ig
from tests.fhir import test_transaction as ours
from tests.fhir.schema_check import problems
from tests.fhir.test_recipient_client import procedure_body, started
from tests.fhir.test_subscriptions import subscription
from tests.fhir.test_transaction import token
from tests.helpers import World, make_patient, send

FHIR_JSON = "application/fhir+json"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# The write routes under /fhir, each fuzzed below.
FUZZED = {
    ("POST", "/fhir"),
    ("POST", "/fhir/"),
    ("PUT", "/fhir/Task/<task_id>"),
    ("POST", "/fhir/Procedure"),
    ("POST", "/fhir/Subscription"),
    ("DELETE", "/fhir/Subscription/<subscription_id>"),
}
# Where a subscriber's test endpoint may be: nothing listens there and no job runs here.
ENDPOINT_ORIGIN = "http://127.0.0.1:9"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# --- JSON text that json.dumps would not write -------------------------------------------------


class Raw(str):
    """JSON text put in as it is: deep nesting, NaN, numbers too large, lone surrogates."""


class Pairs(list):
    """An object as (key, value) pairs, where a key may come twice."""


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# --- mutations ---------------------------------------------------------------------------------

Path = tuple[str | int, ...]


def _paths(value: Any, path: Path = ()) -> Iterator[Path]:
    """Every place in the document, the root first."""
    yield path
    if isinstance(value, dict) and not isinstance(value, Pairs):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list) and not isinstance(value, Pairs):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _get(doc: Any, path: Path) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _set(doc: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _drop(doc: Any, path: Path) -> Any:
    if not path:
        return Raw("")
    parent = _get(doc, path[:-1])
    del parent[path[-1]]
    return doc


DEEP = [Raw("[" * depth + "]" * depth) for depth in (65, 300, 3000, 100_000)] + [
    Raw('{"a":' * depth + "1" + "}" * depth) for depth in (65, 3000, 40_000)
]
ODD_LITERALS = [
    Raw(text)
    for text in (
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "-0",
        "1" + "0" * 5000,
        "0.1e-999999",
        '"\\ud800"',
        '"x\\udfff"',
        '"\\u0000"',
        '"\\u202e\\u0007"',
        "",
        "[",
        "{",
        '"',
    )
]
RESOURCE_TYPES: list[Any] = [
    "Nope",
    "patient",
    "",
    " Patient",
    "Patient ",
    "OperationOutcome",
    "Bundle",
    "Parameters",
    "Task",
    "Procedure",
    "Subscription",
    "Address",
    "Resource",
    "DomainResource",
    "SubscriptionTopic",
    "__class__",
    "X" * 5000,
    {"a": 1},
    {"resourceType": "Patient"},
    5,
    1.5,
    None,
    True,
    [],
    ["Patient"],
]
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**70),
    1.5,
    "",
    " ",
    "x",
    "2024-02-30",
    "0000-01-01",
    "9999-12-31T99:99:99Z",
    "urn:uuid:",
    [],
    {},
    [None],
    [[]],
    [{}],
    {"resourceType": "Nope"},
    {"extension": [{"url": 5}]},
    {"reference": {"reference": "Patient/1"}},
]


# Text where other text was: still a string, so it gets past the structure checks to ours.
OTHER_TEXT = [
    "",
    " ",
    "x",
    "requested",
    "completed",
    "cancelled",
    "entered-in-error",
    "order",
    "plan",
    "transaction",
    "batch",
    "PUT",
    "GET",
    "Task",
    "Patient",
    "2024-02-29",
    "1900-01-01",
    "2999-01-01T00:00:00Z",
    "2024-13-45",
    "+15105550142",
    "not a phone",
    "http://snomed.info/sct",
    "710925007",
    "409063005",
    "identifier=x|y",
    "identifier=|",
    "identifier",
    "urn:ietf:bcp:47",
    "zz",
    "Ω" * 300,
]


@dataclass(frozen=True)
class Context:
    """What references may wrongly point at: other organisations, unknown resources."""

    references: list[str]
    ids: list[str]


def _strings(doc: Any, name: str | None = None) -> list[Path]:
    return [
        p
        for p in _paths(doc)
        if p and isinstance(_get(doc, p), str) and (name is None or p[-1] == name)
    ]


# Mutations that keep the JSON types (they reach our own parsing) come more often than those
# the structure checks refuse first.
MUTATIONS = [
    *["other text"] * 4,
    *["reference"] * 3,
    *["drop"] * 3,
    *["id"] * 2,
    *["repeat item"] * 2,
    *["odd value"] * 2,
    "null in a list",
    *["resource type"] * 2,
    "repeat key",
    "huge string",
    "deep",
    "odd literal",
    "truncate",
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[dict[str, Any]], context: Context) -> str:
    """A seed, changed one to three times, as the JSON text sent."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        if not isinstance(doc, (dict, list)) or isinstance(doc, Pairs):
            break  # nothing left to reach inside
        paths = list(_paths(doc))
        kind = draw(st.sampled_from(MUTATIONS))
        path = draw(st.sampled_from(paths))
        if kind == "odd value":
            doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(ODD_VALUES))))
        elif kind == "other text":
            texts = _strings(doc)
            if texts:
                doc = _set(doc, draw(st.sampled_from(texts)), draw(st.sampled_from(OTHER_TEXT)))
        elif kind == "null in a list":
            # FHIR JSON allows it where `_name` carries the item's extension: still valid.
            items = [p for p in _strings(doc) if isinstance(p[-1], int)]
            if items:
                doc = _set(doc, draw(st.sampled_from(items)), None)
        elif kind == "drop":
            doc = _drop(doc, path)
        elif kind == "repeat key":
            objects = [p for p in paths if isinstance(_get(doc, p), dict) and _get(doc, p)]
            if not objects:
                continue
            where = draw(st.sampled_from(objects))
            target = _get(doc, where)
            key = draw(st.sampled_from(sorted(target)))
            again = copy.deepcopy(draw(st.sampled_from([*ODD_VALUES[:6], target[key]])))
            pairs = Pairs(target.items())
            pairs.insert(draw(st.integers(0, len(pairs))), (key, again))
            doc = _set(doc, where, pairs)
        elif kind == "repeat item":
            lists = [p for p in paths if isinstance(_get(doc, p), list) and _get(doc, p)]
            if lists:
                items = _get(doc, draw(st.sampled_from(lists)))
                items.append(copy.deepcopy(items[draw(st.integers(0, len(items) - 1))]))
        elif kind == "huge string":
            size = draw(st.sampled_from([5_000, 120_000, 400_000]))
            text = draw(st.sampled_from(["x", "é", "𝔉", "\u202e", " ", "\x00"])) * size
            doc = _set(doc, path, text)
        elif kind == "deep":
            doc = _set(doc, path, draw(st.sampled_from(DEEP)))
        elif kind == "odd literal":
            doc = _set(doc, path, draw(st.sampled_from(ODD_LITERALS)))
        elif kind == "resource type":
            typed = [p for p in paths if p and p[-1] == "resourceType"]
            if typed:
                wrong = copy.deepcopy(draw(st.sampled_from(RESOURCE_TYPES)))
                doc = _set(doc, draw(st.sampled_from(typed)), wrong)
        elif kind == "reference":
            references = _strings(doc, "reference") or _strings(doc)
            if references:
                wrong = draw(st.sampled_from(context.references))
                doc = _set(doc, draw(st.sampled_from(references)), wrong)
        elif kind == "id":
            ids = _strings(doc, "id") + _strings(doc, "fullUrl") or _strings(doc)
            if ids:
                doc = _set(doc, draw(st.sampled_from(ids)), draw(st.sampled_from(context.ids)))
        elif kind == "truncate":
            text = to_json(doc)
            doc = Raw(text[: draw(st.integers(0, max(len(text) - 1, 0)))])
    return to_json(doc)


@st.composite
def headers(draw: st.DrawFn, *, if_match: bool = False) -> dict[str, str | None]:
    """Mostly what partners send; sometimes another content type, `_format`, Accept, Prefer
    or If-Match."""
    chosen: dict[str, str | None] = {"content_type": FHIR_JSON}
    odd = draw(st.sampled_from(["none"] * 7 + ["content type", "format", "accept", "prefer"]))
    if odd == "content type":
        chosen["content_type"] = draw(
            st.sampled_from(
                [
                    "application/json",
                    "application/fhir+json; charset=utf-8",
                    "application/fhir+xml",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "",
                ]
            )
        )
    elif odd == "format":
        chosen["format"] = draw(st.sampled_from(["json", "xml", "text/html", "x" * 3000]))
    elif odd == "accept":
        chosen["Accept"] = draw(
            st.sampled_from([FHIR_JSON, "application/fhir+xml", "text/html", "*/*", "garbage;;"])
        )
    elif odd == "prefer":
        chosen["Prefer"] = draw(st.sampled_from(["return=representation", "return=x"]))
    if if_match:
        chosen["If-Match"] = draw(
            st.sampled_from(
                [None] * 4 + ['W/"1"', 'W/"2"', 'W/"999"', '"1"', "W/", "*", 'W/"' + "9" * 5000]
            )
        )
    return chosen


# --- what must hold of every answer ------------------------------------------------------------


@dataclass
class Snapshot:
    rows: dict[str, list[str]]
    last_audit: int


def snapshot() -> Snapshot:
    """Every table's rows but the audit trail's, which only grows: where it stands."""
    session = db.session()
    rows = {
        table.name: sorted(repr(tuple(row)) for row in session.execute(select(table)))
        for table in Base.metadata.sorted_tables
        if table.name != AuditEvent.__tablename__
    }
    last = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0
    db.session.remove()
    return Snapshot(rows, last)


def check_answer(response, before: Snapshot, sent: str) -> None:
    """Never a 5xx; FHIR JSON valid by HL7's schema, no cookie; a refusal is an
    OperationOutcome and writes nothing but the audit of what was refused or read."""
    status = response.status_code
    said = response.get_data(as_text=True)
    about = f"sent {sent[:300]!r}…, answered {status} {said[:1500]}"
    assert status < 500, about
    assert "Set-Cookie" not in response.headers, about
    assert response.mimetype == FHIR_JSON, about
    body = json.loads(said)
    assert problems(body) == [], about
    if status < 400:
        return
    assert body["resourceType"] == "OperationOutcome", about
    assert all(issue["severity"] == "error" and issue["diagnostics"] for issue in body["issue"])
    after = snapshot()
    changed = [name for name, rows in after.rows.items() if rows != before.rows[name]]
    assert changed == [], f"{about}\nchanged: {changed}"
    session = db.session()
    added = session.scalars(select(AuditEvent).where(AuditEvent.id > before.last_audit)).all()
    unexpected = [
        (a.action, a.outcome) for a in added if a.outcome != "denied" and "read" not in a.action
    ]
    db.session.remove()
    assert unexpected == [], f"{about}\naudited: {unexpected}"


def send_case(app: Flask, method: str, url: str, body: str | None, bearer: str, chosen: dict):
    """One request, checked; returns the answer."""
    before = snapshot()
    headers = {"Authorization": f"Bearer {bearer}"}
    headers.update({k: v for k, v in chosen.items() if v is not None and k[0].isupper()})
    query = {"_format": chosen["format"]} if chosen.get("format") else None
    response = app.test_client().open(
        url,
        method=method,
        data=None if body is None else body.encode("utf-8", "surrogatepass"),
        headers=headers,
        content_type=chosen.get("content_type") or None,
        query_string=query,
    )
    check_answer(response, before, body or f"{method} {url}")
    event(f"answered {response.status_code}")  # --hypothesis-show-statistics shows the spread
    return response


def fuzz_once(
    app: Flask,
    world: World,
    data: st.DataObject,
    method: str,
    url: str,
    bearer: str,
    seeds: list[dict[str, Any]],
    *,
    if_match: bool = False,
) -> None:
    """One mutated seed sent to a route, with the headers drawn, and the answer checked."""
    context = Context(wrong_references(world), odd_ids())
    body = data.draw(mutated(seeds, context), label="body")
    chosen = data.draw(headers(if_match=if_match), label="headers")
    send_case(app, method, url, body, bearer, chosen)


def wrong_references(world: World) -> list[str]:
    housing = world.orgs["housing"].id
    return [
        "Patient/not-a-uuid",
        "Patient/",
        "Patient",
        "/",
        "#",
        "#nothing-contained",
        f"urn:uuid:{uuid.uuid4()}",
        "urn:uuid:",
        f"Organization/{housing}",
        f"HealthcareService/{world.service_ids['housing']}",
        f"HealthcareService/{uuid.uuid4()}",
        f"ServiceRequest/{uuid.uuid4()}",
        f"Patient/{uuid.uuid4()}",
        "http://evil.example/fhir/Patient/1",
        f"http://127.0.0.1:5000/fhir/Organization/{housing}",
        "Organization/" + "9" * 300,
        "x" * 5000,
        "",
    ]


def odd_ids() -> list[str]:
    return [
        "",
        "x",
        "not-a-uuid",
        str(uuid.uuid4()),
        "urn:uuid:" + str(uuid.uuid4()),
        "urn:uuid:same",
        "Patient/1",
        "../../Task",
        "x" * 5000,
    ]


# --- the routes --------------------------------------------------------------------------------


def test_every_fhir_write_route_is_fuzzed(app: Flask) -> None:
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule == "/fhir" or rule.rule.startswith("/fhir/")
        for method in (rule.methods or set()) & WRITES
    }
    assert served == FUZZED


@pytest.fixture
def clinic(app: Flask, world: World) -> str:
    return token(app, world, "clinic")


@fuzz_settings(110)
@given(data=st.data())
def test_transactions_never_fail_and_a_refusal_writes_nothing(
    app: Flask, world: World, clinic: str, data: st.DataObject
) -> None:
    seeds = [ig.referral_bundle(world), ours.referral_bundle(world)]
    url = data.draw(st.sampled_from(["/fhir", "/fhir/"]), label="url")
    fuzz_once(app, world, data, "POST", url, clinic, seeds)


@pytest.fixture
def task_case(app: Flask, world: World) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The food bank's token, Task moves it could send, and Task ids: its own, another
    organisation's, none."""
    from tests.fhir.test_task_api import WRITE, current
    from tests.fhir.test_task_api import token as read_token

    referral = send(world, make_patient(world))
    housing = send(world, make_patient(world, given_name="Rosa", family_name="Diaz"), "housing")
    bearer = read_token(app, world, "food", WRITE)
    task = current(app, referral.task.id, bearer)
    moves = [
        {**task, "status": "accepted"},
        {**task, "status": "rejected", "statusReason": {"text": "No openings this month."}},
        {**task, "status": "in-progress", "businessStatus": {"text": "Called the family"}},
    ]
    ids = [str(referral.task.id)] * 12 + [str(housing.task.id), str(referral.id), *odd_ids()]
    return bearer, moves, ids


@fuzz_settings(90)
@given(data=st.data())
def test_task_updates_never_fail_and_a_refusal_writes_nothing(
    app: Flask, world: World, task_case, data: st.DataObject
) -> None:
    bearer, moves, ids = task_case
    task_id = data.draw(st.sampled_from(ids), label="task id")
    fuzz_once(app, world, data, "PUT", f"/fhir/Task/{task_id}", bearer, moves, if_match=True)


@pytest.fixture
def procedure_case(app: Flask, world: World) -> tuple[str, list[dict[str, Any]]]:
    from tests.fhir.test_recipient_client import bearer as recipient_token

    referral = started(world)
    bearer = recipient_token(app, world, "food")
    return bearer, [
        procedure_body(referral),
        procedure_body(referral, note=[{"text": "Two weeks of groceries."}]),
    ]


@fuzz_settings(60)
@given(data=st.data())
def test_procedure_records_never_fail_and_a_refusal_writes_nothing(
    app: Flask, world: World, procedure_case, data: st.DataObject
) -> None:
    bearer, seeds = procedure_case
    fuzz_once(app, world, data, "POST", "/fhir/Procedure", bearer, seeds)


@pytest.fixture
def allowed_endpoint(app: Flask, monkeypatch: pytest.MonkeyPatch) -> str:
    """A subscriber's endpoint the settings allow, as a development set-up would."""
    from tests.fhir.test_subscriptions import allow

    allow(app, monkeypatch, ENDPOINT_ORIGIN)
    return f"{ENDPOINT_ORIGIN}/notify"


@pytest.fixture
def subscriber(app: Flask, world: World, allowed_endpoint: str) -> tuple[str, list[dict]]:
    from tests.fhir import test_subscriptions as subs

    bearer = subs.token(app, world, "food")
    owner = f"Organization/{world.orgs['food'].id}"
    return bearer, [
        subscription(allowed_endpoint),
        subscription(allowed_endpoint, filters=(f"Task?owner={owner}",)),
        subscription(allowed_endpoint, topic=subs.subs.SERVICE_REQUEST_TOPIC, content="empty"),
    ]


@fuzz_settings(90)
@given(data=st.data())
def test_subscriptions_never_fail_and_a_refusal_writes_nothing(
    app: Flask, world: World, subscriber, data: st.DataObject
) -> None:
    bearer, seeds = subscriber
    fuzz_once(app, world, data, "POST", "/fhir/Subscription", bearer, seeds)


@pytest.fixture
def subscription_ids(app: Flask, world: World, subscriber) -> list[str]:
    """The food bank's Subscription, the housing agency's, and ids of nothing."""
    from tests.fhir import test_subscriptions as subs

    bearer, seeds = subscriber
    own = subs.post(app, seeds[0], bearer).get_json()["id"]
    theirs = subs.post(app, seeds[0], subs.token(app, world, "housing")).get_json()["id"]
    return [own, own, theirs, *odd_ids()]


@fuzz_settings(30)
@given(data=st.data())
def test_subscription_deletes_never_fail_and_a_refusal_writes_nothing(
    app: Flask, subscriber, subscription_ids: list[str], data: st.DataObject
) -> None:
    bearer, _ = subscriber
    sub_id = data.draw(st.sampled_from(subscription_ids), label="id")
    body = data.draw(st.sampled_from([None, "{}", "[" * 100_000]), label="body")
    send_case(app, "DELETE", f"/fhir/Subscription/{sub_id}", body, bearer, {"content_type": ""})
