"""Every resource the FHIR API serves is valid FHIR R4 JSON by HL7's own schema: each read, each
searchset Bundle (with what `_include` adds), the CapabilityStatement, the bodies of Task updates
and Procedure creates, and the OperationOutcome of each error. Fetched once, over HTTP, from a
world where a referral went through its whole life and families were screened."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft6Validator
from sqlalchemy import select

from referrals.auth.models import Membership, Organization
from referrals.db import db, transaction
from referrals.directory.models import Schedule, Service
from referrals.directory.service import add_service
from referrals.fhir import mapping
from referrals.fhir.capability import SEARCHED, SERVED
from referrals.loop.models import Referral
from referrals.loop.service import revoke_consent
from referrals.patients.models import Need, ScreeningObservation
from tests.conftest import _empty_tables
from tests.fhir.schema_check import assert_valid_r4, problems, schema, vendored_schema
from tests.fhir.test_api import token
from tests.fhir.test_recipient_client import (
    FOOD,
    bearer,
    procedure_body,
    resulting_activity,
)
from tests.helpers import SYSTEM, World, build_world, make_patient, send, years_ago
from tests.loop.test_refer_for_needs import (
    FOOD_AND_HOUSING,
    SIGNATURE,
    UNSAFE,
    consent_fields,
    needs_by_domain,
    picks,
    refer,
    screen,
    set_service,
)

FHIR_JSON = "application/fhir+json"

# What each case fetches (see `served`); the ids of the tests below.
READS = [f"read {t}" for t in SERVED] + [
    "read Patient as a recipient",
    "read Patient as a confidential recipient",
    "read Patient after the consent was withdrawn",
    "read Task as a recipient",
    "read Procedure as a recipient",
]
WRITES = [
    "PUT Task accepted",
    "PUT Task in-progress",
    "POST Procedure",
    "PUT Task completed",
    "PUT Task rejected",
]
SEARCHES = [f"search {t}" for t in sorted(SEARCHED)] + [
    "search Task _include=Task:focus",
    "search Task as a recipient _include=Task:focus",
    "search Observation, a page with a next link",
    "search ServiceRequest _count=0",
    "search Condition, nothing found",
]
ERRORS = [
    "401 no token",
    "403 scope",
    "404 unknown type",
    "404 unknown id",
    "400 bad search parameter",
    "400 body not JSON",
    "406 format",
    "412 stale version",
    "413 body too large",
    "415 content type",
    "422 lifecycle",
    "422 procedure code",
]
CASES = ["metadata", *READS, *WRITES, *SEARCHES, *ERRORS]

# A served resource that fails the schema is a bug in referrals/fhir/mapping.py: list its case
# here with what fails, so the suite stays green until mapping.py is fixed (strict: it must fail).
KNOWN_FAILURES: dict[str, str] = {}


# --- the world, and everything the API serves from it --------------------------------------------


@dataclass
class Served:
    """One answer of the API: the status it should have had, the one it had, and the body."""

    expected: int
    status: int
    mimetype: str
    body: Any


class Api:
    """Calls the API and keeps each answer under its case; asserts nothing (the tests do)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.answers: dict[str, list[Served]] = {}

    def call(
        self,
        case: str,
        method: str,
        url: str,
        bearer: str | None = None,
        body: Any = None,
        status: int = 200,
        content_type: str = FHIR_JSON,
        **headers: str,
    ) -> dict[str, Any]:
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None if body is None else body if isinstance(body, str) else json.dumps(body)
        response = self.app.test_client().open(
            url, method=method, data=data, headers=headers, content_type=content_type
        )
        resource = response.get_json(silent=True)
        served = Served(status, response.status_code, response.mimetype, resource)
        self.answers.setdefault(case, []).append(served)
        return resource if isinstance(resource, dict) else {}

    def get(self, case: str, url: str, bearer: str | None = None, **kw: Any) -> dict[str, Any]:
        return self.call(case, "GET", url, bearer, **kw)


def _directory(world: World) -> tuple[uuid.UUID, uuid.UUID]:
    """The food bank with an email and a website, and a pantry with an address, a phone and
    opening hours."""
    pantry = add_service(
        SYSTEM,
        world.orgs["food"],
        name="Weekend pantry",
        categories=["food-insecurity"],
        service_code=FOOD,
        service_display="Provision of food",
        languages=["en", "es"],
        minimum_age=0,
        maximum_age=99,
        phone="+15105550111",
        address={"address_1": "1 Main St", "city": "Oakland", "postal_code": "94601"},
    )
    with transaction() as session:
        service = session.get(Service, pantry.id)
        service.schedules = [
            Schedule(freq="WEEKLY", byday="SA,SU", opens_at="09:00", closes_at="12:00")
        ]
        org = session.get(Organization, world.orgs["food"].id)
        org.email, org.website = "intake@foodbank.example", "https://foodbank.example"
        org.phone = "+15105550100"
        location = service.service_at_locations[0].location
        location.name, location.latitude, location.longitude = "Pantry", 37.78, -122.21
        location_id = location.id
    db.session.remove()
    return pantry.id, location_id


def _serve(app: Flask) -> dict[str, list[Served]]:
    world = build_world()
    api = Api(app)
    pantry, location = _directory(world)
    set_service(world, "youth", sensitive=True)

    # Maya: screened (her mother answers), referred for food and housing from her needs, with a
    # consent signed on screen.
    maya = make_patient(
        world, mrn="MRN-0042", zip_code="94601", gender="female", phone="+15105550143"
    )
    screening_id = screen(world, maya, FOOD_AND_HOUSING)
    needs = needs_by_domain(screening_id)
    _, referrals = refer(
        world,
        screening_id,
        picks(needs, world, food_insecurity=["food"], housing_instability=["housing"]),
        **consent_fields(maya, consent_method="electronic", signature=SIGNATURE),
    )
    by_org = {r.performer_org_id: r.id for r in referrals}
    food_id, housing_id = by_org[world.orgs["food"].id], by_org[world.orgs["housing"].id]
    # A teenager screens herself and is referred, confidentially, with her own consent.
    teen = make_patient(
        world, given_name="Rosa", birth_date=years_ago(15), phone="+15105550177", language="en"
    )
    teen_screening = screen(world, teen, UNSAFE, respondent="patient")
    teen_needs = needs_by_domain(teen_screening)
    refer(
        world,
        teen_screening,
        picks(teen_needs, world, intimate_partner_violence=["youth"]),
        consent_by="patient",
        consent_method="verbal",
        sms_to="patient",
    )
    # Leo: referred by hand, then the family withdraws the consent.
    leo = make_patient(world, given_name="Leo", family_name="Park", birth_date=years_ago(6))
    leo_referral = send(world, leo, "school")
    revoke_consent(world.actor("clinician"), leo_referral.consent_id, "Family moved.")

    db.session.remove()
    session = db.session()
    food = session.get(Referral, food_id)
    food_task, housing_task = food.task.id, session.get(Referral, housing_id).task.id
    teen_referral = session.scalars(select(Referral).where(Referral.patient_id == teen.id)).one()
    teen_task = teen_referral.task.id
    observations = list(session.scalars(select(ScreeningObservation.id)))
    conditions = list(session.scalars(select(Need.id)))
    goals = [n.id for n in session.scalars(select(Need)) if mapping.has_goal(n)]
    clinic_org = world.orgs["clinic"].id
    roles = list(
        session.scalars(select(Membership.id).where(Membership.organization_id == clinic_org))
    )
    consents = [food.consent_id, teen_referral.consent_id, leo_referral.consent_id]
    patients = [maya.id, teen.id, leo.id]
    db.session.remove()

    clinic = token(app, world, "clinic")
    food_bank = bearer(app, world, "food")
    housing = bearer(app, world, "housing")

    # The food referral's whole life, through the API.
    task_url = f"/fhir/Task/{food_task}"
    task = api.get("read Task as a recipient", task_url, food_bank)
    accepted = api.call(
        "PUT Task accepted",
        "PUT",
        task_url,
        food_bank,
        {**task, "status": "accepted"},
        **{"If-Match": 'W/"1"'},
    )
    started = api.call(
        "PUT Task in-progress", "PUT", task_url, food_bank, {**accepted, "status": "in-progress"}
    )
    api.call(
        "POST Procedure",
        "POST",
        "/fhir/Procedure",
        food_bank,
        procedure_body(food, note=[{"text": "Two weeks of groceries."}]),
        status=201,
    )
    api.call(
        "412 stale version",
        "PUT",
        task_url,
        food_bank,
        {**started, "status": "completed"},
        status=412,
        **{"If-Match": 'W/"1"'},
    )
    started = api.get("read Task as a recipient", task_url, food_bank)
    output = {
        "type": resulting_activity().as_json(),
        "valueReference": {"reference": f"Procedure/{food_task}"},
    }
    api.call(
        "PUT Task completed",
        "PUT",
        task_url,
        food_bank,
        {**started, "status": "completed", "output": [output]},
    )
    api.get("read Procedure as a recipient", f"/fhir/Procedure/{food_task}", food_bank)
    api.get("read Patient as a recipient", f"/fhir/Patient/{maya.id}", food_bank)
    # Housing declines, saying why.
    housing_url = f"/fhir/Task/{housing_task}"
    declined = api.get("read Task as a recipient", housing_url, housing)
    api.call(
        "422 lifecycle",
        "PUT",
        housing_url,
        housing,
        {**declined, "status": "completed"},
        status=422,
    )
    api.call(
        "PUT Task rejected",
        "PUT",
        housing_url,
        housing,
        {**declined, "status": "rejected", "statusReason": {"text": "No openings this month."}},
    )
    api.get(
        "read Patient as a confidential recipient",
        f"/fhir/Patient/{teen.id}",
        bearer(app, world, "youth"),
    )
    api.get(
        "read Patient after the consent was withdrawn",
        f"/fhir/Patient/{leo.id}",
        bearer(app, world, "school"),
    )

    # Every read, as the clinic that holds it all (the directory as anyone).
    ids: dict[str, list] = {
        "Patient": patients,
        "Organization": [org.id for org in world.orgs.values()],
        "HealthcareService": [*world.service_ids.values(), pantry],
        "Location": [location],
        "QuestionnaireResponse": [screening_id, teen_screening],
        "Observation": observations,
        "Condition": conditions,
        "Goal": goals,
        "PractitionerRole": roles,
        "Consent": consents,
        "ServiceRequest": [food_id, housing_id, teen_referral.id, leo_referral.id],
        "Task": [food_task, housing_task, teen_task, leo_referral.task.id],
        "Procedure": [food_task],
    }
    assert set(ids) == set(SERVED)
    for resource_type, keys in ids.items():
        for key in keys:
            api.get(f"read {resource_type}", f"/fhir/{resource_type}/{key}", clinic)

    # Every search, as the clinic, which finds everything of its patients.
    for resource_type in sorted(SEARCHED):
        api.get(f"search {resource_type}", f"/fhir/{resource_type}?_count=200", clinic)
    api.get("search Task _include=Task:focus", "/fhir/Task?_include=Task:focus", clinic)
    owner = f"Organization/{world.orgs['food'].id}"
    api.get(
        "search Task as a recipient _include=Task:focus",
        f"/fhir/Task?owner={owner}&_include=Task:focus",
        food_bank,
    )
    api.get("search Observation, a page with a next link", "/fhir/Observation?_count=4", clinic)
    api.get("search ServiceRequest _count=0", "/fhir/ServiceRequest?_count=0", clinic)
    api.get("search Condition, nothing found", "/fhir/Condition?category=problem-list-item", clinic)

    api.get("metadata", "/fhir/metadata")
    # Errors.
    api.get("401 no token", task_url, status=401)
    api.get("403 scope", task_url, bearer(app, world, "food", "system/Patient.read"), status=403)
    api.get("404 unknown type", "/fhir/Spaceship/1", clinic, status=404)
    api.get("404 unknown id", f"/fhir/Task/{food_task}", housing, status=404)
    api.get("400 bad search parameter", "/fhir/Task?colour=blue", clinic, status=400)
    api.call("400 body not JSON", "PUT", housing_url, housing, "{not json", status=400)
    api.get("406 format", "/fhir/metadata?_format=xml", status=406)
    huge = json.dumps({"resourceType": "Task", "note": [{"text": "x" * (1024 * 1024)}]})
    api.call("413 body too large", "PUT", housing_url, housing, huge, status=413)
    api.call(
        "415 content type",
        "PUT",
        housing_url,
        housing,
        {"resourceType": "Task"},
        status=415,
        content_type="text/plain",
    )
    api.call(
        "422 procedure code",
        "POST",
        "/fhir/Procedure",
        food_bank,
        procedure_body(food, "409063005"),
        status=422,
    )
    return api.answers


@pytest.fixture(scope="module")
def served(app: Flask) -> Iterator[dict[str, list[Served]]]:
    """What the API served, case by case, built once for the module (the database is emptied
    before the tests run, as after any other)."""
    with app.app_context():
        try:
            bodies = _serve(app)
        finally:
            db.session.remove()
            _empty_tables()
    yield bodies


def _case(name: str):
    if name in KNOWN_FAILURES:
        return pytest.param(
            name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[name]), id=name
        )
    return pytest.param(name, id=name)


# --- the served resources -----------------------------------------------------------------------


@pytest.mark.parametrize("case", [_case(c) for c in CASES])
def test_what_the_api_serves_is_valid_r4(served: dict[str, list[Served]], case: str) -> None:
    answers = served[case]
    assert answers, case
    for answer in answers:
        assert (answer.status, answer.mimetype) == (answer.expected, FHIR_JSON), answer.body
        assert_valid_r4(answer.body)


def bodies(served: dict[str, list[Served]], case: str) -> list[dict[str, Any]]:
    return [answer.body for answer in served[case]]


def test_every_case_was_fetched_and_covers_every_type(served: dict[str, list[Served]]) -> None:
    assert set(served) == set(CASES)
    types = set()
    for case in served:
        for body in bodies(served, case):
            types.add(body["resourceType"])
            for entry in body.get("entry", []):
                types.add(entry["resource"]["resourceType"])
    assert types >= set(SERVED) | {"Bundle", "CapabilityStatement", "OperationOutcome"}
    for resource_type in SEARCHED:
        assert bodies(served, f"search {resource_type}")[0]["total"] > 0, resource_type
    included = bodies(served, "search Task _include=Task:focus")[0]["entry"]
    assert {e["search"]["mode"] for e in included} == {"match", "include"}
    paged = bodies(served, "search Observation, a page with a next link")[0]
    assert "next" in {link["relation"] for link in paged["link"]}
    assert bodies(served, "search Condition, nothing found")[0]["total"] == 0
    contained = [
        c["resourceType"]
        for body in bodies(served, "read QuestionnaireResponse")
        for c in body.get("contained", [])
    ]
    assert contained == ["RelatedPerson"]  # Maya's mother answered; Rosa answered herself
    assert bodies(served, "PUT Task completed")[0]["output"]


def test_nested_resources_are_checked_in_served_bundles(served: dict[str, list[Served]]) -> None:
    """The Bundle check really reaches into its entries: break one and it fails there."""
    bundle = json.loads(json.dumps(bodies(served, "search Task _include=Task:focus")[0]))
    assert_valid_r4(bundle)
    include = next(
        n
        for n, e in enumerate(bundle["entry"])
        if e["resource"]["resourceType"] == "ServiceRequest"
    )
    bundle["entry"][include]["resource"]["authoredOn"] = "last week"
    found = problems(bundle)
    assert len(found) == 1, found
    assert found[0].startswith(f"$.entry[{include}].resource.authoredOn: 'last week' does not")


# --- the check itself ---------------------------------------------------------------------------


@pytest.mark.pure
def test_the_vendored_schema_is_hl7s_r4_draft_06_schema() -> None:
    loaded = vendored_schema()
    assert loaded["$schema"] == "http://json-schema.org/draft-06/schema#"
    assert loaded["id"] == "http://hl7.org/fhir/json-schema/4.0"
    assert {"Task", "ServiceRequest", "Procedure", "Bundle"} <= set(loaded["definitions"])
    Draft6Validator.check_schema(loaded)
    # R4 4.0.0's schema, to which we add 4.0.1's version code and nothing else.
    versions = loaded["definitions"]["CapabilityStatement"]["properties"]["fhirVersion"]["enum"]
    assert versions[-1] == "4.0.0"
    assert schema()["definitions"]["CapabilityStatement"]["properties"]["fhirVersion"]["enum"] == [
        *versions,
        "4.0.1",
    ]
    assert json.dumps(schema()).replace(', "4.0.1"', "") == json.dumps(loaded)


@pytest.mark.pure
def test_a_task_with_an_unknown_status_fails() -> None:
    task = {"resourceType": "Task", "id": "t1", "status": "bogus", "intent": "order"}
    with pytest.raises(AssertionError) as failed:
        assert_valid_r4(task)
    assert "Task/t1 is not valid FHIR R4 (1 problems)" in str(failed.value)
    assert "$.status: 'bogus' is not one of ['draft'" in str(failed.value)


@pytest.mark.pure
def test_a_patient_born_yesterday_fails() -> None:
    with pytest.raises(AssertionError, match=r"\$\.birthDate: 'yesterday' does not match"):
        assert_valid_r4({"resourceType": "Patient", "birthDate": "yesterday"})


@pytest.mark.pure
@pytest.mark.parametrize(
    ("element", "value", "problem"),
    [
        ("status", "bogus", "$.entry[1].resource.status: 'bogus' is not one of"),
        ("authoredOn", "last week", "$.entry[1].resource.authoredOn: 'last week' does not match"),
        ("colour", "blue", "$.entry[1].resource: Additional properties are not allowed ('colour'"),
        ("for", {"reference": 1}, "$.entry[1].resource.for.reference: 1 is not of type 'string'"),
        ("resourceType", "Spaceship", "$.entry[1].resource: {'resourceType': 'Spaceship'"),
    ],
)
def test_a_bundle_with_a_broken_nested_resource_fails(element, value, problem) -> None:
    task = {"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order"}
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2,
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "2016-02-02"}},
            {"resource": task, "search": {"mode": "match"}},
        ],
    }
    assert_valid_r4(bundle)
    bundle["entry"][1]["resource"] = {**task, element: value}
    with pytest.raises(AssertionError) as failed:
        assert_valid_r4(bundle)
    assert problem in str(failed.value)
    assert "Bundle/None is not valid FHIR R4 (1 problems)" in str(failed.value)


@pytest.mark.pure
def test_contained_resources_are_checked() -> None:
    patient = {"resourceType": "Patient", "contained": [{"resourceType": "Patient", "gender": 1}]}
    with pytest.raises(AssertionError, match=r"\$\.contained\[0\]\.gender: 1 is not one of"):
        assert_valid_r4(patient)


@pytest.mark.pure
def test_not_a_resource_fails() -> None:
    with pytest.raises(AssertionError, match="'Spaceship' is not an R4 resource type"):
        assert_valid_r4({"resourceType": "Spaceship"})


@pytest.mark.pure
def test_the_discriminator_agrees_with_the_plain_one_of() -> None:
    """Choosing the entry's definition by its resourceType gives the verdict the schema's own
    `oneOf` gives, trying every type."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT6

    registry = Registry().with_resource(
        "urn:fhir", Resource(contents=schema(), specification=DRAFT6)
    )
    plain = Draft6Validator({"$ref": "urn:fhir#/definitions/Bundle"}, registry=registry)
    good = {"resourceType": "Task", "status": "requested", "intent": "order"}
    for resource in (good, {**good, "status": "bogus"}, {"resourceType": "Spaceship"}, {}):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}
        assert plain.is_valid(bundle) == (problems(bundle) == []), resource


@pytest.mark.pure
def test_the_check_is_quick() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Task", "status": "requested", "intent": "order"}}]
        * 200,
    }
    assert_valid_r4(bundle)  # warm
    started = time.perf_counter()
    assert_valid_r4(bundle)
    assert time.perf_counter() - started < 2.0
