"""Every read route, fuzzed (hypothesis): each GET route under /fhir (reads by id, searches of
every type with every parameter our CapabilityStatement lists, the Subscription routes, the
CapabilityStatement and SMART discovery), each GET route of the public HSDS API, and the
directory search page a signed-in person uses (with the referral form's own search).

The requests start from what clients send (real ids of every kind, the parameters and codes we
answer, the ways partners write references and dates) and go wrong the ways that hurt: unknown
parameters and modifiers, repeated parameters, values of another type, the ends of the calendar
and past them, digits Python reads but a client does not mean ("²", "٣"), numbers too long for
`int()`, NUL and control characters, text that is not UTF-8 or percent-encoding that is not
percent-encoding, ids that are not UUIDs, tokens that are not ours. Whatever arrives:

- never a 5xx, and no cookie from /fhir or /hsds;
- under /fhir, FHIR JSON valid by HL7's schema: a Bundle or the resource read, or a 4xx
  OperationOutcome; a search refused for a parameter names it in `expression`;
- under /hsds, JSON: the page or the record, or a 4xx with `error` and `message` (a 400 naming
  the parameter);
- the pages answer 200, or 422 with the message shown where the form is;
- nothing is written, but for the audit trail of what was read, searched or refused.

Hypothesis draws about 600 requests; then a sweep sends each parameter (every one the
CapabilityStatement lists, the HSDS API's, the search form's) alone, spoiled each way that broke
something once, about 1,000 requests more. Bounded and derandomized, so CI is repeatable: about
40 s on SQLite, a minute on PostgreSQL."""

from __future__ import annotations

import contextvars
import json
import re
import uuid
from collections.abc import Callable
from html import unescape
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request

from referrals.audit import AuditEvent
from referrals.auth.models import Membership, Organization
from referrals.db import db
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.models import Location, Service, Taxonomy, TaxonomyTerm
from referrals.directory.search import SEARCH_FIELDS
from referrals.fhir.capability import CHAINED, INCLUDES, SERVED
from referrals.fhir.profiles import ORGANIZATION_TYPE, US_CORE_CATEGORY
from referrals.loop.models import Referral, Task
from referrals.patients.models import Consent, Need, Patient, Screening, ScreeningObservation
from referrals.terminology import SDOHCC_CODES, SNOMED
from referrals.text_values import shown
from tests.directory.test_hsds_api import EXAMPLES
from tests.fhir.schema_check import problems
from tests.fhir.test_api import token
from tests.fhir.test_directory_search import directory  # noqa: F401  (a fixture)
from tests.fhir.test_search import story  # noqa: F401  (a fixture)
from tests.fhir.test_subscriptions import allow, subscription
from tests.fhir.test_subscriptions import post as post_subscription
from tests.fhir.test_subscriptions import token as subscriber_token
from tests.fhir.test_write_fuzz import Snapshot, fuzz_settings, snapshot
from tests.helpers import WebClient, World, make_patient

FHIR_JSON = "application/fhir+json"
# The GET routes under /fhir and /hsds, each fuzzed below.
FUZZED = {
    "/fhir/metadata",
    "/fhir/.well-known/smart-configuration",
    "/fhir/<resource_type>",
    "/fhir/<resource_type>/<resource_id>",
    "/fhir/Subscription/<subscription_id>",
    "/fhir/Subscription/<subscription_id>/$status",
    "/hsds/",
    "/hsds/services",
    "/hsds/services/<service_id>",
    "/hsds/organizations",
    "/hsds/organizations/<organization_id>",
    "/hsds/taxonomies",
    "/hsds/taxonomies/<taxonomy_id>",
    "/hsds/taxonomy_terms",
    "/hsds/taxonomy_terms/<term_id>",
}
HSDS_PAGE = {
    "total_items",
    "total_pages",
    "page_number",
    "size",
    "first_page",
    "last_page",
    "empty",
    "contents",
}


def test_every_get_route_under_fhir_and_hsds_is_fuzzed(app: Flask) -> None:
    served = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set())
        and any(rule.rule == p or rule.rule.startswith(p + "/") for p in ("/fhir", "/hsds"))
    }
    assert served == FUZZED


# --- values that hurt ----------------------------------------------------------------------------

ODD_TEXT = [
    "",
    " ",
    "x",
    "\x00",
    "a\x00b",
    "\x01\x07\x0b\x0c\x1b\x1f\x7f",
    "\t",
    "\u00a0",  # no-break space
    "\u2028",  # line separator
    "\ufeff",
    "\u202e",  # right-to-left override
    "²",
    "٣",
    "３",  # fullwidth
    "𝔉",
    "9" * 5000,
    "x" * 5000,
    "é" * 2000,
    ",",
    ",,",
    "|",
    "||",
    "\\",
    "\\,",
    "%",
    "_",
    "*",
    "'",
    '"',
    "';--",
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "1.0",
    "1e3",
    "0x10",
    "1_0",
    " 5",
    "00000000000000000000001",
    "../../etc",
    "<script>",
    "urn:uuid:",
]
DATES = [
    "2026-11-24",
    "gt2026-11-24T08:00:00Z",
    "ge9999-12-31",
    "gt9999-12-31T23:59:59.999999-05:00",
    "le9999-12-31T23:00:00-05:00",
    "le0001-01-01",
    "lt0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00+01:00",
    "eq2024-02-29",
    "2024-02-30",
    "2024-13-01",
    "2024-01-01T25:00",
    "2024-01-01T10:00:00.1234567Z",
    "2024-01-01T10:00:00+14:00",
    "2024-01-01T10:00:00-23:59",
    "2024-W01-1",
    "20240101",
    "2024",
    "2024-01",
    "ne2024-01-01",
    "sa2024-01-01",
    "gt",
    "T",
    "Z",
    "yesterday",
    "-2024-01-01",
    "+002024-01-01",
    "99999-01-01",
    "2024-01-01T10:00:00 00:00",  # a '+' read as a space
    "2024-01-01T10:00:00+00:00:00.5",
    "٢٠٢٤-٠١-٠١",
]
NUMBERS = [
    "0",
    "1",
    "2",
    "10",
    "100",
    "200",
    "201",
    "1000000000",
    "1000000001",
    "9" * 30,
    "9" * 5000,
    "-1",
    "1.0",
    "1e3",
    "²",
    "٣",
    "３",
    " 5",
    "5 ",
    "",
    "0" * 300 + "7",
]
ODD_VALUES = ODD_TEXT + DATES[-6:] + NUMBERS[-8:]
# Characters that hurt inside otherwise good text: NUL (PostgreSQL text cannot hold it), other
# control characters and spaces a FHIR string cannot hold, LIKE's wildcards and escape, FHIR
# search's separators, a quote, digits Python reads but a client does not mean.
HOSTILE = [
    *["\x00"] * 5,
    "\x0b",
    "\x1f",
    "\u00a0",
    "\u2028",
    "\ufeff",
    "\u202e",
    "%",
    "_",
    "\\",
    ",",
    "|",
    "$",
    "'",
    "²",
    "٣",
    "𝔉",
]


@st.composite
def one_spoiled(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs, and in half the requests one value spoiled: a hostile character put inside it
    (so that the rest of it still gets past the checks to the query), or an odd value instead.
    One at a time, so that another parameter's refusal does not hide what it does."""
    if not pairs or draw(st.booleans()):
        return pairs
    at = draw(st.integers(0, len(pairs) - 1))
    name, value = pairs[at]
    if draw(st.integers(0, 2)) == 0:
        value = draw(st.sampled_from(ODD_VALUES))
    else:
        inside = draw(st.integers(0, len(value)))
        value = value[:inside] + draw(st.sampled_from(HOSTILE)) + value[inside:]
    return [*pairs[:at], (name, value), *pairs[at + 1 :]]


# Percent-encoding that is not, or is more than it seems; text that is not UTF-8.
PERCENT_ODDITIES = [
    "%",
    "%2",
    "%zz",
    "%FF",
    "%FF%FE",
    "%C0%AF",  # an overlong "/"
    "%ED%A0%80",  # a UTF-16 surrogate, as UTF-8
    "%00",
    "%0A",
    "%0D%0A",
    "%E2%80%AE",
    "%2525",
    "+",
    "%2B",
    "%26",
    "%3D",
    "a%2Cb",
    "%F0%9D%94%89",
    "%C2%A0",
    "%C2%B2",
    "%D9%A3",
]
# How a client writes a key or a value into the query string.
ENCODINGS = ["quote"] * 6 + ["plus", "twice", "lower hex", "as is"]


def encode(text: str, how: str) -> str:
    if how == "quote":
        return quote(text, safe="")
    if how == "plus":
        return quote_plus(text)
    if how == "twice":
        return quote(quote(text, safe=""), safe="")
    if how == "lower hex":
        return re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(text, safe=""))
    return text  # as a careless client sends it: '&', '=' and '#' included


@st.composite
def query_string(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> str:
    """The pairs (one of them perhaps spoiled), each written one of the ways clients write
    them, now and then with a percent-encoding oddity or a stray separator."""
    parts = []
    for key, value in draw(one_spoiled(pairs)):
        key_text = encode(key, draw(st.sampled_from(ENCODINGS)))
        if draw(st.integers(0, 14)) == 0:
            value_text = draw(st.sampled_from(PERCENT_ODDITIES))
        else:
            value_text = encode(value, draw(st.sampled_from(ENCODINGS)))
        parts.append(f"{key_text}={value_text}")
    odd = draw(st.sampled_from([None] * 24 + ["&", "&&", "=", "=x", "x", ";", "%", "&=&"]))
    if odd is not None:
        parts.insert(draw(st.integers(0, len(parts))), odd)
    return "&".join(parts)


def sent_args(query: str) -> list[str]:
    """The parameter names of a query string, as the application reads them."""
    return list(Request.from_values(query_string=query).args.keys())


# --- the scene -------------------------------------------------------------------------------

# Resource type -> the table its ids are the keys of.
ROWS: dict[str, Any] = {
    "Patient": Patient,
    "Organization": Organization,
    "HealthcareService": Service,
    "PractitionerRole": Membership,
    "Location": Location,
    "QuestionnaireResponse": Screening,
    "Observation": ScreeningObservation,
    "Condition": Need,
    "Goal": Need,
    "Consent": Consent,
    "ServiceRequest": Referral,
    "Task": Task,
    "Procedure": Task,
}
# Reference search parameters -> the type they point at.
TARGETS = {
    "patient": "Patient",
    "organization": "Organization",
    "owner": "Organization",
    "requester": "Organization",
    "focus": "ServiceRequest",
    "based-on": "ServiceRequest",
    "location": "Location",
}


class Scene:
    """The search story (a screened patient referred for food and housing, a Procedure, another
    clinic's patient), the directory with places, the HSDS example service with its taxonomy,
    and subscriptions; the bearer tokens and record ids requests are made of."""

    def __init__(self, **parts: Any) -> None:
        self.bearers: dict[str, str] = parts["bearers"]
        self.ids: dict[str, list[str]] = parts["ids"]
        self.subscriptions: list[str] = parts["subscriptions"]
        self.hsds: dict[str, list[str]] = parts["hsds"]
        self.base: str = parts["base"]
        self.patient: uuid.UUID = parts["patient"]  # one the clinician may refer
        self.browser: WebClient = parts["browser"]  # the clinician's, signed in
        self.before: Snapshot = parts["before"]

    def __repr__(self) -> str:
        return "Scene(...)"  # what a failing example shows: the draws say it all


def _ids(model: Any) -> list[str]:
    """Every key of the table, in a repeatable order."""
    return [str(key) for key in db.session().scalars(select(model.id).order_by(model.id))]


@pytest.fixture
def scene(
    app: Flask,
    world: World,
    story,  # noqa: F811
    directory,  # noqa: F811
    client: WebClient,
    monkeypatch: pytest.MonkeyPatch,
) -> Scene:
    assert import_hsds(EXAMPLES / "service_full.json").ok
    patient = make_patient(world, given_name="Eli", family_name="Moss", zip_code="94601")
    allow(app, monkeypatch, "http://127.0.0.1:9")
    food = subscriber_token(app, world, "food")
    housing = subscriber_token(app, world, "housing")
    endpoint = "http://127.0.0.1:9/notify"
    own = post_subscription(app, subscription(endpoint), food).get_json()["id"]
    theirs = post_subscription(app, subscription(endpoint), housing).get_json()["id"]
    bearers = {
        "clinic": token(app, world, "clinic"),
        "food": food,
        "clinic2": token(app, world, "clinic2"),
        "patients only": token(app, world, "food", "system/Patient.read"),
        "none": "",
        "not ours": "not-a-token",
        "too long": "x" * 5000,
    }
    ids = {resource_type: _ids(model) for resource_type, model in ROWS.items()}
    hsds = {
        "services": _ids(Service),
        "organizations": _ids(Organization),
        "taxonomies": _ids(Taxonomy),
        "taxonomy_terms": _ids(TaxonomyTerm),
    }
    db.session.remove()
    client.login(world, "clinician")
    base = app.config["SETTINGS"].public_base_url.rstrip("/") + "/fhir"
    return Scene(
        bearers=bearers,
        ids=ids,
        subscriptions=[own, theirs],
        hsds=hsds,
        base=base,
        patient=patient.id,
        browser=client,
        before=snapshot(),
    )


ODD_IDS = [
    "x",
    "1",
    "0",
    "²",
    "٣" * 32,
    "9" * 5000,
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "urn:uuid:00000000-0000-4000-8000-000000000000",
    "{00000000-0000-4000-8000-000000000000}",
    "00000000_0000_4000_8000_000000000000",
    "%00",
    "%C0%AF",
    "%FF",
    "a%2Fb",
    "..",
    "$everything",
    "_history",
    "%20",
    "%E2%80%AE",
    "%C2%A0",
]


def some_id(draw: st.DrawFn, scene: Scene, resource_type: str | None) -> str:
    """A record id of the type (a real one, mostly), of another type, or not an id at all."""
    own = scene.ids.get(resource_type or "", [])
    others = [key for keys in scene.ids.values() for key in keys]
    kind = draw(st.sampled_from(["own"] * 7 + ["other", "new", "odd", "odd"]))
    if kind == "own" and own:
        return draw(st.sampled_from(own))
    if kind == "other" or (kind == "own" and others):
        return draw(st.sampled_from(others))
    if kind == "new":
        return str(uuid.uuid4())
    return draw(st.sampled_from(ODD_IDS))


# --- what must hold of every answer ------------------------------------------------------------


class Checked:
    """What every answer is checked against: nothing written (the audit trail only grows, with
    reads, searches and refusals), and the audit entries seen so far."""

    def __init__(self, before: Snapshot) -> None:
        self.before = before
        self.last_audit = before.last_audit

    def nothing_written(self, about: str) -> None:
        after = snapshot()
        changed = [name for name, rows in after.rows.items() if rows != self.before.rows[name]]
        assert changed == [], f"{about}\nchanged: {changed}"
        session = db.session()
        added = session.scalars(select(AuditEvent).where(AuditEvent.id > self.last_audit)).all()
        unexpected = [
            (a.action, a.outcome)
            for a in added
            if a.outcome != "denied" and not a.action.endswith((".read", ".search", ".view"))
        ]
        db.session.remove()
        assert unexpected == [], f"{about}\naudited: {unexpected}"
        self.last_audit = after.last_audit


def tally(what: str) -> None:
    """Count what happened, for --hypothesis-show-statistics (in the fuzz, not the sweep)."""
    if currently_in_test_context():
        event(what)


def describe(response: TestResponse, sent: str) -> str:
    """What was sent and answered, for a failure's message."""
    return f"sent {sent[:400]!r}…, answered {response.status_code} {response.get_data()[:1500]!r}"


def check_fhir(response: TestResponse, sent: str, query: str) -> dict:
    """Never a 5xx; FHIR JSON valid by HL7's schema, no cookie; a refusal is an
    OperationOutcome, and one for a parameter names it."""
    status = response.status_code
    about = describe(response, sent)
    assert status < 500, about
    assert "Set-Cookie" not in response.headers, about
    assert response.mimetype == FHIR_JSON, about
    body = json.loads(response.get_data(as_text=True))
    found = problems(body)
    args = Request.from_values(query_string=query).args
    assert found == [], about
    tally(f"FHIR answered {status}")
    if status < 400:
        return body
    assert body["resourceType"] == "OperationOutcome", about
    issues = body["issue"]
    assert all(issue["severity"] == "error" and issue["diagnostics"] for issue in issues), about
    if status == 400:  # only a search's parameters are refused with a 400
        parameters = list(args.keys())
        named = [e for issue in issues for e in issue.get("expression", [])]
        nameless = "" in parameters and "without a name" in issues[0]["diagnostics"]
        assert nameless or named, f"{about}\nparameters: {parameters}"
        assert set(named) <= {shown(p) for p in parameters}, f"{about}\nparameters: {parameters}"
    return body


def fresh_get(
    client: FlaskClient, path: str, query: str, headers: dict[str, str] | None = None
) -> TestResponse:
    """A GET in a context of its own, as a server runs each request (nothing left in `g` by the
    one before)."""
    return contextvars.Context().run(client.get, path, query_string=query, headers=headers or {})


def fhir_get(
    scene: Scene, client: FlaskClient, path: str, query: str, bearer: str, accept: str | None
) -> TestResponse:
    """A GET with one of the scene's bearer tokens (or none), and an Accept header if given."""
    headers = {"Authorization": f"Bearer {scene.bearers[bearer]}"} if scene.bearers[bearer] else {}
    if accept:
        headers["Accept"] = accept
    return fresh_get(client, path, query, headers)


def some_client(draw: st.DrawFn, app: Flask, browser: WebClient) -> FlaskClient:
    """A machine client, or now and then a signed-in person's browser with its session cookie
    (which the machine APIs neither read nor renew)."""
    return browser.client if draw(st.integers(0, 3)) == 0 else app.test_client()


BEARERS = [
    *["clinic"] * 10,
    *["food"] * 8,
    "clinic2",
    "patients only",
    "none",
    "not ours",
    "too long",
]
ACCEPTS = [None] * 40 + [
    FHIR_JSON,
    "application/json",
    "application/fhir+json; fhirVersion=4.0",
    "application/fhir+json;q=0",
    "application/fhir+json;q=x",
    "application/fhir+xml",
    "text/html",
    "*/*",
    "garbage;;",
]
FORMATS = [
    "json",
    "application/fhir+json",
    "application/json+fhir",
    "JSON",
    "xml",
    "",
    "text/html",
    "x" * 3000,
]


# --- FHIR reads --------------------------------------------------------------------------------

READ_TYPES = [*sorted(SERVED)] * 3 + [
    "Nope",
    "patient",
    "PATIENT",
    "Bundle",
    "OperationOutcome",
    "Subscription",
    "metadata",
    "%00",
    "Patient%00",
    "٣",
    "x" * 3000,
]


@fuzz_settings(100)
@given(data=st.data())
def test_reads_never_fail_and_write_nothing(app: Flask, scene: Scene, data: st.DataObject) -> None:
    checked = Checked(scene.before)
    resource_type = data.draw(st.sampled_from(READ_TYPES), label="type")
    key = some_id(data.draw, scene, resource_type)
    pairs = []
    if data.draw(st.integers(0, 6)) == 0:
        pairs.append(("_format", data.draw(st.sampled_from(FORMATS))))
    if data.draw(st.integers(0, 5)) == 0:
        pairs.append((data.draw(st.sampled_from(["_summary", "_elements", "x"])), "true"))
    query = data.draw(query_string(pairs), label="query")
    path = f"/fhir/{resource_type}/{key}"
    bearer = data.draw(st.sampled_from(BEARERS), label="bearer")
    accept = data.draw(st.sampled_from(ACCEPTS), label="accept")
    response = fhir_get(
        scene, some_client(data.draw, app, scene.browser), path, query, bearer, accept
    )
    body = check_fhir(response, f"{bearer}: {path}?{query}", query)
    if response.status_code == 200:
        assert body["resourceType"] == resource_type
        if re.fullmatch("[0-9a-f-]{36}", key):
            assert body["id"] == key
    checked.nothing_written(path)


# --- FHIR searches ------------------------------------------------------------------------------

COMMON_NAMES = ["_count", "_offset", "_include", "_sort", "_format"]
ODD_NAMES = [
    "_summary",
    "_elements",
    "_total",
    "_revinclude",
    "_has:Observation:patient:code",
    "_contained",
    "_lastUpdated",
    "identifier",
    "subject",
    "subject:Patient.name",
    "patient.name",
    "organization.name",
    "location.name",
    "location.address-city:contains",
    "nope",
    "NAME",
    " name",
    "name ",
    "name\x00",
    "\x00",
    "",
    "٣",
    "²",
    "_count[]",
    "x" * 3000,
    "\u00a0",
    "\x0b",
]
MODIFIERS = [
    ":exact",
    ":contains",
    ":missing",
    ":not",
    ":text",
    ":above",
    ":below",
    ":in",
    ":of-type",
    ":identifier",
    ":Patient",
    ":",
    "::",
    ":exact:contains",
    ":EXACT",
    ":\x00",
]
STATUSES = [
    "requested",
    "received",
    "accepted",
    "rejected",
    "in-progress",
    "completed",
    "cancelled",
    "active",
    "revoked",
    "draft",
    "entered-in-error",
    "unknown",
    "requested,completed",
    "http://hl7.org/fhir/task-status|accepted",
]
CATEGORIES = [
    "food-insecurity",
    f"{SDOHCC_CODES}|food-insecurity",
    f"{SDOHCC_CODES}|",
    "housing-instability",
    "sdoh",
    f"{US_CORE_CATEGORY}|sdoh",
    "survey",
    "health-concern",
    "|food-insecurity",
    "|",
    "food-insecurity,sdoh",
    "409073007",
]
TOKENS = {
    "status": STATUSES,
    "intent": ["order", "original-order", "plan", "proposal", "orders"],
    "category": CATEGORIES,
    "service-category": CATEGORIES,
    "active": ["true", "false", "True", "1", ""],
    "type": [
        "prov",
        "cbo",
        "clinic",
        "other",
        f"{ORGANIZATION_TYPE}|prov",
        f"{ORGANIZATION_TYPE}|",
    ],
    "service-type": ["710925007", f"{SNOMED}|710925007", f"{SNOMED}|", "|710925007"],
    "code": ["fulfill", "http://hl7.org/fhir/CodeSystem/task-code|fulfill", "approve"],
}
STRINGS = [
    "food",
    "Food boxes",
    "ÁRBOL",
    "árbol",
    "despensa á",
    "Fruitvale",
    "Oakland",
    "oak,berk",
    "946",
    "94601",
    "100% Free",
    "a\\,b",
    "Community",
]


def includes(resource_type: str) -> list[str]:
    """_include values: the type's own mostly, other types', and ones nobody serves."""
    return [
        *INCLUDES.get(resource_type, []) * 3,
        *[value for values in INCLUDES.values() for value in values],
        "*",
        "Task:owner",
        "HealthcareService:organization:Organization",
        "Condition:subject",
        "",
    ]


def search_value(draw: st.DrawFn, scene: Scene, resource_type: str, name: str) -> str:
    """A value of the parameter's kind."""
    base_name = name.split(":")[0]
    kinds = {**SERVED[resource_type][1], **CHAINED.get(resource_type, {})}
    kind = kinds.get(base_name)
    if base_name in {"_count", "_offset"}:
        return draw(st.sampled_from(NUMBERS))
    if base_name == "_include":
        return draw(st.sampled_from(includes(resource_type)))
    if base_name == "_sort":
        return draw(st.sampled_from(["_lastUpdated", "-_lastUpdated", "name", "_id", ""]))
    if base_name == "_format":
        return draw(st.sampled_from(FORMATS))
    if base_name == "_id":
        keys = [some_id(draw, scene, resource_type) for _ in range(draw(st.integers(1, 3)))]
        return ",".join(keys)
    if kind == "reference" or base_name in TARGETS:
        target = TARGETS.get(base_name, "Patient")
        key = some_id(draw, scene, target)
        written = draw(
            st.sampled_from(
                [
                    key,
                    f"{target}/{key}",
                    f"{scene.base}/{target}/{key}",
                    f"{target}/{key}/",
                    f"Nope/{key}",
                    f"{target}/",
                    f"{key},{target}/{key}",
                    f"{target}/{key}/_history/1",
                ]
            )
        )
        return written
    if kind == "date":
        return draw(st.sampled_from(DATES))
    if kind == "string":
        return draw(st.sampled_from(STRINGS))
    if base_name in TOKENS:
        return draw(st.sampled_from(TOKENS[base_name]))
    return draw(st.sampled_from(STRINGS + STATUSES))


def search_name(draw: st.DrawFn, resource_type: str) -> str:
    """A parameter of the type mostly; else a common one, one with a modifier, another type's
    or one nobody serves."""
    own = sorted({**SERVED[resource_type][1], **CHAINED.get(resource_type, {})})
    others = sorted({name for _, params in SERVED.values() for name in params})
    kind = draw(st.sampled_from(["own"] * 12 + ["common"] * 3 + ["modifier", "other", "odd"]))
    if kind == "own":
        return draw(st.sampled_from(own))
    if kind == "common":
        return draw(st.sampled_from(COMMON_NAMES))
    if kind == "modifier":
        return draw(st.sampled_from(own)) + draw(st.sampled_from(MODIFIERS))
    if kind == "other":
        return draw(st.sampled_from(others))
    return draw(st.sampled_from(ODD_NAMES))


@fuzz_settings(240)
@given(data=st.data())
def test_searches_never_fail_and_write_nothing(
    app: Flask, scene: Scene, data: st.DataObject
) -> None:
    checked = Checked(scene.before)
    resource_type = data.draw(st.sampled_from(sorted(SERVED)), label="type")
    pairs = []
    for _ in range(data.draw(st.integers(0, 3), label="parameters")):
        name = search_name(data.draw, resource_type)
        pairs.append((name, search_value(data.draw, scene, resource_type, name)))
        if data.draw(st.integers(0, 4)) == 0:  # the same parameter again
            pairs.append((name, search_value(data.draw, scene, resource_type, name)))
    query = data.draw(query_string(pairs), label="query")
    bearer = data.draw(st.sampled_from(BEARERS), label="bearer")
    accept = data.draw(st.sampled_from(ACCEPTS), label="accept")
    path = f"/fhir/{resource_type}"
    response = fhir_get(
        scene, some_client(data.draw, app, scene.browser), path, query, bearer, accept
    )
    body = check_fhir(response, f"{bearer}: {path}?{query}", query)
    if response.status_code == 200:
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        for entry in body.get("entry", []):
            if entry["search"]["mode"] == "match":
                assert entry["resource"]["resourceType"] == resource_type
    checked.nothing_written(f"{path}?{query}")


SEARCH_TYPES = ["Nope", "Subscription", "Bundle", "$export", "_history", "%00", "Patient%00"]


@fuzz_settings(40)
@given(data=st.data())
def test_the_other_fhir_reads_never_fail_and_write_nothing(
    app: Flask, scene: Scene, data: st.DataObject
) -> None:
    """The CapabilityStatement, SMART discovery, searches of types we do not serve, and the
    Subscription routes (the client's own, another organisation's, none)."""
    checked = Checked(scene.before)
    route = data.draw(
        st.sampled_from(["metadata", "discovery", "unknown type", "subscription", "$status"] * 2),
        label="route",
    )
    if route == "metadata":
        path = "/fhir/metadata"
    elif route == "discovery":
        path = "/fhir/.well-known/smart-configuration"
    elif route == "unknown type":
        path = "/fhir/" + data.draw(st.sampled_from(SEARCH_TYPES))
    else:
        key = data.draw(st.sampled_from(scene.subscriptions * 3 + ODD_IDS[:12]), label="id")
        path = f"/fhir/Subscription/{key}" + ("/$status" if route == "$status" else "")
    pairs = []
    if data.draw(st.integers(0, 3)) == 0:
        pairs.append(("_format", data.draw(st.sampled_from(FORMATS))))
    if data.draw(st.booleans()):
        pairs.append(
            (data.draw(st.sampled_from(ODD_NAMES)), data.draw(st.sampled_from(ODD_VALUES)))
        )
    query = data.draw(query_string(pairs), label="query")
    bearer = data.draw(st.sampled_from(BEARERS), label="bearer")
    accept = data.draw(st.sampled_from(ACCEPTS), label="accept")
    response = fhir_get(
        scene, some_client(data.draw, app, scene.browser), path, query, bearer, accept
    )
    sent = f"{bearer}: {path}?{query}"
    if route == "discovery":  # SMART's own JSON document, for everyone
        about = describe(response, sent)
        assert response.status_code == 200, about
        assert "Set-Cookie" not in response.headers, about
        assert response.get_json()["token_endpoint"], about
    else:
        body = check_fhir(response, sent, query)
        if response.status_code == 200 and route == "metadata":
            assert body["resourceType"] == "CapabilityStatement"
        elif response.status_code == 200:
            assert body["resourceType"] == ("Bundle" if route == "$status" else "Subscription")
    checked.nothing_written(path)


# --- HSDS --------------------------------------------------------------------------------------

HSDS_LISTS: dict[str, list[str]] = {
    "/hsds/services": [
        "search",
        "taxonomy_term_id",
        "taxonomy_id",
        "organization_id",
        "modified_after",
        "minimal",
        "full",
    ],
    "/hsds/organizations": ["search", "full"],
    "/hsds/taxonomies": ["search"],
    "/hsds/taxonomy_terms": ["search", "taxonomy_id", "parent_id"],
}
PAGING = ["page", "per_page"]
HSDS_ONES = {
    "/hsds/services/": "services",
    "/hsds/organizations/": "organizations",
    "/hsds/taxonomies/": "taxonomies",
    "/hsds/taxonomy_terms/": "taxonomy_terms",
}
# Paths under /hsds no route of its own serves.
HSDS_ELSEWHERE = [
    "nope",
    "services/",
    "services/x/y",
    "organizations/a/b/c",
    "taxonomies/%00",
    "services.json",
    "%2E%2E/fhir/metadata",
    "%C0%AF",
    "x" * 3000,
]
HSDS_ODD_NAMES = ["format", "sort", "q", "page[]", "PAGE", "", "\x00", "x" * 3000, "per-page"]


def hsds_value(draw: st.DrawFn, scene: Scene, name: str) -> str:
    """A value of the parameter's kind."""
    if name in PAGING:
        return draw(st.sampled_from(NUMBERS))
    if name in {"minimal", "full"}:
        return draw(st.sampled_from(["true", "false", "1", "0", "TRUE", "yes", ""]))
    if name == "modified_after":
        return draw(st.sampled_from([d.removeprefix("gt").removeprefix("le") for d in DATES]))
    if name == "search":
        return draw(st.sampled_from([*STRINGS, "example", "code", "Counselling"]))
    if name.endswith("_id"):
        kind = {"organization_id": "organizations", "taxonomy_id": "taxonomies"}.get(
            name, "taxonomy_terms"
        )
        return draw(st.sampled_from([*scene.hsds[kind], str(uuid.uuid4()), *ODD_IDS[:6]]))
    return draw(st.sampled_from(STRINGS))


def check_hsds(response: TestResponse, sent: str, query: str) -> dict:
    """Never a 5xx, no cookie; JSON, and a refusal with `error` and `message` (a 400 naming
    the parameter)."""
    status = response.status_code
    about = describe(response, sent)
    assert status < 500, about
    assert "Set-Cookie" not in response.headers, about
    assert response.mimetype == "application/json", about
    body = json.loads(response.get_data(as_text=True))
    tally(f"HSDS answered {status}")
    if status >= 400:
        assert status in {400, 404}, about
        assert body["error"] and body["message"], about
        if status == 400:
            assert body["parameter"] in sent_args(query), about
    return body


@fuzz_settings(140)
@given(data=st.data())
def test_hsds_reads_never_fail_and_write_nothing(
    app: Flask, scene: Scene, data: st.DataObject
) -> None:
    checked = Checked(scene.before)
    route = data.draw(
        st.sampled_from([*HSDS_LISTS] * 3 + [*HSDS_ONES] * 2 + ["/hsds/", "elsewhere"]),
        label="route",
    )
    pairs = []
    if route == "elsewhere":
        path = "/hsds/" + data.draw(st.sampled_from(HSDS_ELSEWHERE), label="path")
    elif route in HSDS_ONES:
        kind = HSDS_ONES[route]
        key = data.draw(
            st.sampled_from(
                [*scene.hsds[kind], *scene.hsds["organizations"], str(uuid.uuid4()), *ODD_IDS]
            ),
            label="id",
        )
        path = route + key
    else:
        path = route
        names = [*HSDS_LISTS.get(route, []), *PAGING]
        for _ in range(data.draw(st.integers(0, 4), label="parameters")):
            odd = data.draw(st.integers(0, 7)) == 0
            name = data.draw(st.sampled_from(HSDS_ODD_NAMES if odd else names))
            pairs.append((name, hsds_value(data.draw, scene, name)))
            if data.draw(st.integers(0, 4)) == 0:
                pairs.append((name, hsds_value(data.draw, scene, name)))
    query = data.draw(query_string(pairs), label="query")
    response = fresh_get(some_client(data.draw, app, scene.browser), path, query)
    body = check_hsds(response, f"{path}?{query}", query)
    if response.status_code == 200 and route in HSDS_LISTS:
        assert set(body) == HSDS_PAGE and body["size"] == len(body["contents"])
    checked.nothing_written(f"{path}?{query}")


# --- the directory search pages ------------------------------------------------------------------

PAGE_VALUES: dict[str, list[str]] = {
    "need": ["food-insecurity", "housing-instability", "stress", "nope", "Food-Insecurity"],
    "q": [*STRINGS, "pantry", "boxes counselling", "a " * 50],
    "zip": ["94601", "94704", "90011", "00000", "9460", "94601-1234", " 94601 ", "٩٤٦٠١", "abcde"],
    "radius": ["1", "10", "100", "0", "101", "5.5", "nan", "inf", "-inf", "1e308", "1e-400"],
    "language": ["en", "es", "EN", "zh", "e", "english", "eng"],
    "age": ["0", "9", "120", "121", "-1", "9.5", "²", "٣"],
    "open_now": ["y", "on", "true", "1", "no", ""],
    "accepting": ["y", "on", ""],
    "free": ["y", "on", ""],
}


def check_page(response: TestResponse, sent: str) -> str:
    """200, or 422 with the message shown (as an alert); never a 5xx."""
    about = describe(response, sent)
    assert response.status_code in {200, 422}, about
    html = response.get_data(as_text=True)
    tally(f"page answered {response.status_code}")
    if response.status_code == 422:
        assert 'role="alert"' in html, about
        assert re.search(r"Check the [a-zA-Z ,]+\.", unescape(html)), about
    return html


def page_query(draw: st.DrawFn) -> str:
    """A query of the search form's fields (and some it does not have)."""
    pairs = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from([*SEARCH_FIELDS, *SEARCH_FIELDS, "category", "page", "x"]))
        value = draw(st.sampled_from(PAGE_VALUES.get(name, STRINGS)))
        pairs.append((name, value))
    return draw(query_string(pairs))


@fuzz_settings(60)
@given(data=st.data())
def test_the_directory_page_never_fails_and_writes_nothing(
    app: Flask, scene: Scene, data: st.DataObject
) -> None:
    checked = Checked(scene.before)
    query = page_query(data.draw)
    htmx = data.draw(st.booleans(), label="htmx")
    response = scene.browser.get(f"/directory?{query}", htmx=htmx, target="results")
    check_page(response, query)
    checked.nothing_written(query)


@fuzz_settings(30)
@given(data=st.data())
def test_the_referral_forms_search_never_fails_and_writes_nothing(
    app: Flask, scene: Scene, data: st.DataObject
) -> None:
    checked = Checked(scene.before)
    query = page_query(data.draw)
    if data.draw(st.booleans()):
        query += "&fragment=services"
    path = f"/patients/{scene.patient}/referrals/new?{query}"
    response = scene.browser.get(path, htmx=data.draw(st.booleans(), label="htmx"))
    about = describe(response, query)
    assert response.status_code == 200, about
    checked.nothing_written(query)


# --- every parameter, spoiled each way that hurt before ----------------------------------------
#
# The fuzz above finds combinations; this sweep makes sure no parameter is missed: each one the
# CapabilityStatement lists (and each of the HSDS API and of the search form), with a good value
# spoiled each of these ways, alone in its request.

SPOILINGS: list[tuple[str, Callable[[str], str]]] = [
    ("the good value", lambda v: v),  # answered 200: every parameter listed is served
    ("a NUL inside", lambda v: v[: len(v) // 2] + "\x00" + v[len(v) // 2 :]),
    ("unprintable characters inside", lambda v: v[:1] + "\u00a0\u2028\x0b\ufeff\u202e" + v[1:]),
    ("LIKE and search syntax", lambda v: v + "%_\\,|$"),
    ("digits other than 0-9", lambda v: "٣٣"),  # float() and int() read 33
    ("five thousand characters", lambda v: (v * 5000)[:5000]),
    ("nothing", lambda v: ""),
]


def good_value(scene: Scene, resource_type: str, name: str) -> str:
    """A value of the parameter's kind that finds something, or could."""
    base_name = name.split(":")[0]
    kind = {**SERVED[resource_type][1], **CHAINED.get(resource_type, {})}.get(base_name)
    if base_name in {"_count", "_offset"}:
        return "10"
    if base_name == "_include":
        return INCLUDES[resource_type][0]
    if base_name == "_sort":
        return "_lastUpdated"
    if base_name == "_id":
        return scene.ids[resource_type][0]
    if kind == "reference":
        target = TARGETS[base_name]
        return f"{target}/{scene.ids[target][0]}"
    if kind == "date":
        return "ge2026-01-01"
    if kind == "string":
        return "food"
    if base_name == "status":
        return {"ServiceRequest": "active", "Procedure": "completed"}.get(resource_type, "accepted")
    return TOKENS[base_name][0]


def every_search_parameter(resource_type: str) -> list[str]:
    """What the CapabilityStatement lists for the type, the chains and the common parameters,
    and each string parameter with each modifier we honour."""
    names = [*SERVED[resource_type][1], *CHAINED.get(resource_type, {}), "_count", "_offset"]
    names += ["_include"] if resource_type in INCLUDES else []
    names += ["_sort"] if resource_type == "Task" else []
    strings = [n for n, kind in SERVED[resource_type][1].items() if kind == "string"]
    return names + [f"{n}{modifier}" for n in strings for modifier in (":exact", ":contains")]


# Parameters that are numbers: "٣٣" is refused, though int() and float() read it as 33.
NUMBERS_ONLY = frozenset({"_count", "_offset", "page", "per_page", "age", "radius"})


def refused(name: str, how: str) -> bool:
    """Whether the spoiling must be refused, not only answered without failing."""
    return how == "digits other than 0-9" and name in NUMBERS_ONLY


def expected(name: str, how: str, refusal: int) -> set[int] | None:
    """The statuses the value must get, if it must get some: 200 for the good one."""
    if how == "the good value":
        return {200}
    return {refusal} if refused(name, how) else None


def sweep(cases: list[tuple[str, Callable[[], None]]]) -> None:
    """Run every case; fail naming each one that failed, not only the first."""
    failed = []
    for name, case in cases:
        try:
            case()
        except AssertionError as err:
            failed.append(f"{name}: {str(err)[:600]}")
    assert failed == [], f"{len(failed)} of {len(cases)} failed:\n" + "\n".join(failed[:15])


def test_every_fhir_search_parameter_and_read_takes_every_spoiling(
    app: Flask, scene: Scene
) -> None:
    checked = Checked(scene.before)
    client = app.test_client()

    def search(resource_type: str, name: str, how: str, value: str) -> Callable[[], None]:
        def case() -> None:
            query = f"{quote(name, safe='')}={quote(value, safe='')}"
            path = f"/fhir/{resource_type}"
            response = fhir_get(scene, client, path, query, "clinic", None)
            check_fhir(response, f"{path}?{query}", query)
            statuses = expected(name, how, 400) or {response.status_code}
            assert response.status_code in statuses, describe(response, query)

        return case

    def read(resource_type: str, key: str) -> Callable[[], None]:
        def case() -> None:
            path = f"/fhir/{resource_type}/{quote(key, safe='')}"
            response = fhir_get(scene, client, path, "", "clinic", None)
            check_fhir(response, path, "")

        return case

    cases = [
        (f"{resource_type}?{name} with {how}", search(resource_type, name, how, spoil(value)))
        for resource_type in sorted(SERVED)
        for name in every_search_parameter(resource_type)
        for value in [good_value(scene, resource_type, name)]
        for how, spoil in SPOILINGS
    ]
    cases += [
        (f"{resource_type}/id with {how}", read(resource_type, spoil(scene.ids[resource_type][0])))
        for resource_type in sorted(SERVED)
        for how, spoil in SPOILINGS
    ]
    sweep(cases)
    checked.nothing_written("the sweep")


HSDS_GOOD = {
    "page": "1",
    "per_page": "10",
    "search": "food",
    "modified_after": "2020-01-01T00:00:00+00:00",
    "minimal": "true",
    "full": "true",
}


def test_every_hsds_parameter_and_id_takes_every_spoiling(app: Flask, scene: Scene) -> None:
    checked = Checked(scene.before)
    client = app.test_client()
    ids = {
        "organization_id": scene.hsds["organizations"][0],
        "taxonomy_id": scene.hsds["taxonomies"][0],
        "taxonomy_term_id": scene.hsds["taxonomy_terms"][0],
        "parent_id": scene.hsds["taxonomy_terms"][0],
    }

    def case(path: str, query: str, statuses: set[int] | None = None) -> Callable[[], None]:
        def run() -> None:
            response = fresh_get(client, path, query)
            check_hsds(response, f"{path}?{query}", query)
            assert response.status_code in (statuses or {response.status_code}), describe(
                response, query
            )

        return run

    cases = [
        (
            f"{route}?{name} with {how}",
            case(route, f"{name}={quote(spoil(value), safe='')}", expected(name, how, 400)),
        )
        for route, names in HSDS_LISTS.items()
        for name in [*names, *PAGING]
        for value in [HSDS_GOOD.get(name) or ids[name]]
        for how, spoil in SPOILINGS
    ]
    cases += [
        (f"{route}<id> with {how}", case(route + quote(spoil(scene.hsds[kind][0]), safe=""), ""))
        for route, kind in HSDS_ONES.items()
        for how, spoil in SPOILINGS
    ]
    sweep(cases)
    checked.nothing_written("the sweep")


def test_every_directory_search_field_takes_every_spoiling(app: Flask, scene: Scene) -> None:
    checked = Checked(scene.before)

    def case(name: str, value: str, statuses: set[int] | None) -> Callable[[], None]:
        def run() -> None:
            query = f"{name}={quote(value, safe='')}"
            response = scene.browser.get(f"/directory?{query}")
            check_page(response, query)
            assert response.status_code in (statuses or {response.status_code}), describe(
                response, query
            )

        return run

    cases = [
        (f"{name} with {how}", case(name, spoil(PAGE_VALUES[name][0]), expected(name, how, 422)))
        for name in SEARCH_FIELDS
        for how, spoil in SPOILINGS
    ]
    sweep(cases)
    checked.nothing_written("the sweep")
