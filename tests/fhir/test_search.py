"""Searching the referral resources over HTTP: each organisation finds what it may read (the
clinic everything about its patients, a recipient what its referrals disclose, never the
screening; another organisation nothing), the filters, paging, errors and the audit trail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.fhir.capability import SEARCHED
from referrals.fhir.search import searchable
from referrals.loop.from_screening import refer_for_needs
from referrals.loop.models import Referral
from referrals.patients.models import Consent, ScreeningObservation
from referrals.terminology import SDOHCC_CODES, SNOMED
from tests.fhir.schema_check import assert_valid_r4
from tests.fhir.test_api import get, outcome, token
from tests.helpers import World, make_patient, move, send, statements_run
from tests.patients.test_screening_flow import finished_ahc

US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"


@dataclass
class Story:
    """Maya, screened at the clinic, referred for food (completed, with a Procedure) and for
    housing from her screening; Leo, referred for food by hand; Ada, clinic2's patient."""

    maya: uuid.UUID
    leo: uuid.UUID
    ada: uuid.UUID
    screening: uuid.UUID
    food_need: uuid.UUID
    housing_need: uuid.UUID
    food_referral: uuid.UUID
    housing_referral: uuid.UUID
    leo_referral: uuid.UUID
    procedure: uuid.UUID  # = the food Task
    consents: dict[str, set[uuid.UUID]]  # recipient org key -> consents naming it
    observations: set[uuid.UUID]


@pytest.fixture
def story(world: World) -> Story:
    maya = make_patient(world)
    screening = finished_ahc(world, maya)
    food, housing = sorted(screening.needs, key=lambda n: n.domain)
    guardian = maya.guardians[0]
    form = MultiDict(
        {
            f"need-{food.id}": "help-now",
            f"need-{housing.id}": "help-now",
            f"service-{food.id}": str(world.service_ids["food"]),
            f"service-{housing.id}": str(world.service_ids["housing"]),
            "consent_by": f"guardian:{guardian.id}",
            "consent_method": "verbal",
            "sms_to": f"guardian:{guardian.id}",
        }
    )
    _, referrals = refer_for_needs(world.actor("clinician"), screening.id, form)
    by_need = {r.need_id: r.id for r in referrals}
    leo = make_patient(world, given_name="Leo", family_name="Park")
    leo_referral = send(world, leo).id
    ada = make_patient(world, "other_clinician", given_name="Ada", family_name="Nwosu")
    send(world, ada, "school", who="other_clinician")  # Ada goes to the school
    move(world, "food", by_need[food.id], "accept")
    move(world, "food", by_need[food.id], "start")
    move(world, "food", by_need[food.id], "complete", output_code="710925007")
    session = db.session()
    consents: dict[str, set[uuid.UUID]] = {}
    for consent in session.scalars(select(Consent).where(Consent.patient_id != ada.id)):
        key = next(k for k, org in world.orgs.items() if org.id == consent.recipient_org_id)
        consents.setdefault(key, set()).add(consent.id)
    observations = set(
        session.scalars(
            select(ScreeningObservation.id).where(ScreeningObservation.screening_id == screening.id)
        )
    )
    story = Story(
        maya=maya.id,
        leo=leo.id,
        ada=ada.id,
        screening=screening.id,
        food_need=food.id,
        housing_need=housing.id,
        food_referral=by_need[food.id],
        housing_referral=by_need[housing.id],
        leo_referral=leo_referral,
        procedure=session.get(Referral, by_need[food.id]).task.id,
        consents=consents,
        observations=observations,
    )
    db.session.remove()
    return story


def fhir_base(app) -> str:
    return app.config["SETTINGS"].public_base_url.rstrip("/") + "/fhir"


class Client:
    """Searches as one organisation's machine client."""

    def __init__(self, app, world: World, org: str) -> None:
        self.app, self.bearer = app, token(app, world, org)
        self.base = fhir_base(app)

    def response(self, query: str):
        return get(self.app, f"/fhir/{query}", self.bearer)

    def bundle(self, query: str) -> dict:
        response = self.response(query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        Bundle.model_validate(body)
        assert body["type"] == "searchset"
        return body

    def ids(self, query: str) -> set[uuid.UUID]:
        body = self.bundle(query)
        entries = body.get("entry", [])
        assert body["total"] == len(entries), "these searches fit one page"
        for entry in entries:
            assert entry["search"]["mode"] == "match"
            assert (
                entry["fullUrl"] == f"{self.base}/{query.split('?')[0]}/{entry['resource']['id']}"
            )
        return {uuid.UUID(e["resource"]["id"]) for e in entries}


# --- who finds what -----------------------------------------------------------------------------


def test_the_clinic_finds_everything_about_its_patients(app, world: World, story: Story) -> None:
    clinic = Client(app, world, "clinic")
    assert clinic.ids("Patient") == {story.maya, story.leo}
    assert clinic.ids("ServiceRequest") == {
        story.food_referral,
        story.housing_referral,
        story.leo_referral,
    }
    assert clinic.ids("Procedure") == {story.procedure}
    assert clinic.ids("Condition") == {story.food_need, story.housing_need}
    assert clinic.ids("QuestionnaireResponse") == {story.screening}
    assert clinic.ids("Observation") == story.observations
    assert clinic.ids("Consent") == story.consents["food"] | story.consents["housing"]


def test_a_recipient_finds_what_its_referrals_disclose(app, world: World, story: Story) -> None:
    food = Client(app, world, "food")
    assert food.ids("Patient") == {story.maya, story.leo}
    assert food.ids("ServiceRequest") == {story.food_referral, story.leo_referral}
    assert food.ids("Task") == {
        db.session().get(Referral, r).task.id for r in (story.food_referral, story.leo_referral)
    }
    assert food.ids("Procedure") == {story.procedure}
    assert food.ids("Condition") == {story.food_need}
    assert food.ids("Consent") == story.consents["food"]
    assert len(story.consents["food"]) == 2  # Maya's from the screening, Leo's by hand


def test_a_recipient_never_finds_the_screening(app, world: World, story: Story) -> None:
    for org in ("food", "housing"):
        client = Client(app, world, org)
        assert client.ids("Observation") == set()
        assert client.ids(f"Observation?patient={story.maya}") == set()
        assert client.ids(f"Observation?_id={next(iter(story.observations))}") == set()
        assert client.ids("QuestionnaireResponse") == set()
        assert client.ids(f"QuestionnaireResponse?_id={story.screening}") == set()


def test_the_other_recipient_finds_only_its_own(app, world: World, story: Story) -> None:
    housing = Client(app, world, "housing")
    assert housing.ids("Patient") == {story.maya}
    assert housing.ids("ServiceRequest") == {story.housing_referral}
    assert housing.ids("Procedure") == set()
    assert housing.ids(f"Procedure?_id={story.procedure}") == set()
    assert housing.ids("Condition") == {story.housing_need}
    assert housing.ids(f"Condition?_id={story.food_need}") == set()
    assert housing.ids("Consent") == story.consents["housing"]
    assert housing.ids(f"Patient?_id={story.leo}") == set()


@pytest.mark.parametrize(
    "resource_type",
    [
        "Patient",
        "ServiceRequest",
        "Task",
        "Procedure",
        "Condition",
        "Observation",
        "QuestionnaireResponse",
        "Consent",
    ],
)
def test_another_clinic_finds_none_of_it(
    app, world: World, story: Story, resource_type: str
) -> None:
    """clinic2 finds only what it holds for its own patient, Ada: nothing of Maya's or Leo's."""
    ada = db.session().scalars(select(Referral).where(Referral.patient_id == story.ada)).one()
    own = {
        "Patient": {story.ada},
        "ServiceRequest": {ada.id},
        "Task": {ada.task.id},
        "Consent": {ada.consent_id},
    }.get(resource_type, set())
    db.session.remove()
    clinic2 = Client(app, world, "clinic2")
    assert clinic2.ids(resource_type) == own
    if resource_type not in {"Patient", "Consent"}:
        assert clinic2.ids(f"{resource_type}?patient={story.maya}") == set()
    if resource_type == "Patient":
        assert clinic2.ids(f"Patient?_id={story.maya},{story.leo}") == set()


def test_the_recipient_sees_the_same_by_search_as_by_read(app, world: World, story: Story) -> None:
    food = Client(app, world, "food")
    for resource_type in ("Condition", "Consent", "ServiceRequest", "Procedure", "Patient"):
        for key in food.ids(resource_type):
            read = food.response(f"{resource_type}/{key}")
            assert read.status_code == 200
            searched = food.bundle(f"{resource_type}?_id={key}")["entry"][0]["resource"]
            assert searched == read.get_json()


# --- filters ------------------------------------------------------------------------------------


def test_service_request_filters(app, world: World, story: Story) -> None:
    clinic = Client(app, world, "clinic")
    food_domain = {story.food_referral, story.leo_referral}
    every = food_domain | {story.housing_referral}
    assert clinic.ids("ServiceRequest?category=food-insecurity") == food_domain
    assert clinic.ids(f"ServiceRequest?category={quote(SDOHCC_CODES)}|food-insecurity") == (
        food_domain
    )
    assert clinic.ids("ServiceRequest?category=food-insecurity,housing-instability") == every
    assert clinic.ids(f"ServiceRequest?category={quote(SNOMED)}|410606002") == every
    assert clinic.ids("ServiceRequest?category=410606002") == every
    assert clinic.ids(f"ServiceRequest?category={quote(SNOMED)}|food-insecurity") == set()
    assert clinic.ids("ServiceRequest?category=spaceships") == set()
    assert clinic.ids("ServiceRequest?category=food-insecurity&category=410606002") == food_domain
    assert clinic.ids("ServiceRequest?intent=order") == every
    assert clinic.ids("ServiceRequest?intent=plan") == set()
    assert clinic.ids("ServiceRequest?status=active") == every - {story.food_referral}
    assert clinic.ids("ServiceRequest?status=completed") == {story.food_referral}
    assert clinic.ids("ServiceRequest?status=completed,revoked") == {story.food_referral}
    assert clinic.ids(f"ServiceRequest?_id={story.leo_referral},{story.housing_referral}") == {
        story.leo_referral,
        story.housing_referral,
    }


@pytest.mark.parametrize("form", ["bare", "relative", "absolute"])
def test_patient_references_in_every_form(app, world: World, story: Story, form: str) -> None:
    value = {
        "bare": str(story.maya),
        "relative": f"Patient/{story.maya}",
        "absolute": quote(f"{fhir_base(app)}/Patient/{story.maya}", safe=""),
    }[form]
    clinic = Client(app, world, "clinic")
    assert clinic.ids(f"ServiceRequest?patient={value}") == {
        story.food_referral,
        story.housing_referral,
    }
    assert clinic.ids(f"Condition?patient={value}") == {story.food_need, story.housing_need}
    assert clinic.ids(f"Observation?patient={value}") == story.observations
    assert clinic.ids(f"QuestionnaireResponse?patient={value}") == {story.screening}
    assert clinic.ids(f"Procedure?patient={value}") == {story.procedure}
    assert clinic.ids(f"ServiceRequest?patient={story.leo}") == {story.leo_referral}
    assert clinic.ids(f"Condition?patient={story.leo}") == set()


def test_last_updated_at_its_precision(app, world: World, story: Story) -> None:
    clinic = Client(app, world, "clinic")
    housing = db.session().get(Referral, story.housing_referral)
    stamp = housing.updated_at.replace(tzinfo=UTC)
    db.session.remove()
    millis = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert story.housing_referral in clinic.ids(f"ServiceRequest?_lastUpdated=eq{millis}")
    assert story.housing_referral not in clinic.ids(f"ServiceRequest?_lastUpdated=gt{millis}")
    assert story.housing_referral in clinic.ids(f"ServiceRequest?_lastUpdated=ge{millis}")
    # the food referral moved after the housing one was sent
    assert story.food_referral in clinic.ids(f"ServiceRequest?_lastUpdated=gt{millis}")
    later = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert clinic.ids(f"ServiceRequest?_lastUpdated=gt{later}") == set()
    assert len(clinic.ids(f"ServiceRequest?_lastUpdated=lt{later}")) == 3


@pytest.mark.parametrize(
    "resource_type", ["ServiceRequest", "Task", "Organization", "HealthcareService"]
)
def test_the_ends_of_the_calendar_are_searched_not_failed(
    app, world: World, story: Story, resource_type: str
) -> None:
    """The last day Python holds, widened by its precision or moved to UTC, is past its end."""
    clinic = Client(app, world, "clinic")
    everything = clinic.ids(f"{resource_type}?_count=200")
    assert everything
    for value in ("ge9999-12-31", "gt9999-12-31T23:59:59Z", "eq9999-12-31T23:00:00-05:00"):
        assert clinic.ids(f"{resource_type}?_lastUpdated={quote(value)}") == set(), value
    for value in ("le9999-12-31", "lt9999-12-31T23:00:00-05:00", "ge0001-01-01T00:00:00+01:00"):
        assert clinic.ids(f"{resource_type}?_lastUpdated={quote(value)}") == everything, value
    # more digits than int() reads, and past what the database takes as an offset
    past_the_end = clinic.bundle(f"{resource_type}?_offset={'9' * 5000}")
    assert past_the_end["total"] == len(everything)
    assert past_the_end.get("entry", []) == []
    assert len(clinic.ids(f"{resource_type}?_count={'9' * 5000}")) == len(everything)


def test_procedure_filters(app, world: World, story: Story) -> None:
    food = Client(app, world, "food")
    assert food.ids(f"Procedure?based-on=ServiceRequest/{story.food_referral}") == {story.procedure}
    assert food.ids(f"Procedure?based-on={story.leo_referral}") == set()
    assert food.ids("Procedure?status=completed") == {story.procedure}
    assert food.ids("Procedure?status=in-progress") == set()
    body = food.bundle(f"Procedure?_id={story.procedure}")
    procedure = body["entry"][0]["resource"]
    assert (
        procedure["basedOn"][0]["reference"] == f"{food.base}/ServiceRequest/{story.food_referral}"
    )


def test_condition_categories(app, world: World, story: Story) -> None:
    clinic = Client(app, world, "clinic")
    both = {story.food_need, story.housing_need}
    assert clinic.ids("Condition?category=sdoh") == both
    assert clinic.ids(f"Condition?category={quote(US_CORE_CATEGORY)}|sdoh") == both
    assert clinic.ids(f"Condition?category={quote(CONDITION_CATEGORY)}|health-concern") == both
    assert clinic.ids("Condition?category=health-concern") == both
    assert clinic.ids("Condition?category=problem-list-item") == set()
    assert clinic.ids("Condition?category=housing-instability") == {story.housing_need}
    assert clinic.ids(f"Condition?category={quote(SDOHCC_CODES)}|food-insecurity") == {
        story.food_need
    }


def test_observation_categories_match_the_resources(app, world: World, story: Story) -> None:
    clinic = Client(app, world, "clinic")
    assert clinic.ids("Observation?category=survey") == story.observations
    assert clinic.ids(f"Observation?category={quote(OBSERVATION_CATEGORY)}|survey") == (
        story.observations
    )
    assert clinic.ids("Observation?category=sdoh") == story.observations
    assert clinic.ids("Observation?category=laboratory") == set()
    every = clinic.bundle("Observation?_count=200")["entry"]
    for domain in ("food-insecurity", "housing-instability"):
        expected = {
            uuid.UUID(e["resource"]["id"])
            for e in every
            if any(
                c["system"] == SDOHCC_CODES and c["code"] == domain
                for category in e["resource"]["category"]
                for c in category["coding"]
            )
        }
        assert expected and expected < story.observations  # asked about, not everything
        assert clinic.ids(f"Observation?category={domain}") == expected
        assert clinic.ids(f"Observation?category={quote(SDOHCC_CODES)}|{domain}") == expected


def test_consent_and_patient_by_id(app, world: World, story: Story) -> None:
    food = Client(app, world, "food")
    housing_consent = next(iter(story.consents["housing"]))
    food_consent = next(iter(story.consents["food"]))
    assert food.ids(f"Consent?_id={food_consent}") == {food_consent}
    assert food.ids(f"Consent?_id={housing_consent}") == set()
    assert food.ids(f"Patient?_id={story.maya}") == {story.maya}
    assert food.ids(f"Patient?_id={story.ada}") == set()


# --- errors and paging --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("ServiceRequest?performer=x", "performer"),
        ("ServiceRequest?status:not=active", "status:not"),
        ("ServiceRequest?status=finished", "status"),
        ("ServiceRequest?intent=wish", "intent"),
        ("ServiceRequest?_lastUpdated=yesterday", "_lastUpdated"),
        ("ServiceRequest?patient=Group/1", "patient"),
        ("ServiceRequest?patient=nobody", "patient"),
        ("Procedure?code=710925007", "code"),
        ("Procedure?status=done", "status"),
        ("Procedure?based-on=Task/6c1b0f9e-0000-4000-8000-000000000000", "based-on"),
        ("Condition?clinical-status=active", "clinical-status"),
        ("Observation?code=88122-7", "code"),
        ("QuestionnaireResponse?status=completed", "status"),
        ("Consent?patient=x", "patient"),
        ("Patient?name=Maya", "name"),
        ("Patient?_id=not-a-uuid", "_id"),
        ("Condition?_include=Condition:subject", "_include"),
        ("Observation?_count=many", "_count"),
        # str.isdigit() says yes to both; int() fails on the first and reads the second as 3
        ("Observation?_count=%C2%B2", "_count"),
        ("ServiceRequest?_offset=%D9%A3", "_offset"),
        ("Observation?_count=-1", "_count"),
        ("Task?_count=1.0", "_count"),
        # PostgreSQL text cannot hold a NUL: refused on both databases, not failed on one
        ("Location?address-city=Oak%00land", "address-city"),
        ("HealthcareService?name:contains=fo%00od", "name:contains"),
        ("HealthcareService?location.address-postalcode=946%0001", "location.address-postalcode"),
        ("Organization?type=c%00bo", "type"),
        ("Organization?name=%00", "name"),
        ("HealthcareService?service-type=7109%0025007", "service-type"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    app, world: World, story: Story, query: str, parameter: str
) -> None:
    refused_naming(Client(app, world, "clinic").response(query), parameter)


@pytest.mark.parametrize(
    ("query", "named", "quoted"),
    [
        # a no-break space, a line separator, a vertical tab: HL7's schema refuses them in a
        # FHIR string, so they are quoted back as escapes
        ("Patient?name%C2%A0=x", "name\\u00a0", "Unknown search parameter name\\u00a0 "),
        ("ServiceRequest?status=act%E2%80%A8ive", "status", "status=act\\u2028ive is not"),
        ("Observation?_count=1%0B", "_count", "_count=1\\u000b: a whole number"),
        ("Condition?patient=Patient%2F%C2%A0", "patient", "patient=Patient/\\u00a0 does not"),
        # and what is very long is cut short
        ("Consent?_id=" + "9" * 5000, "_id", "_id=" + "9" * 80 + "… does not name"),
    ],
)
def test_what_was_sent_is_quoted_back_printable_and_short(
    app, world: World, story: Story, query: str, named: str, quoted: str
) -> None:
    response = Client(app, world, "clinic").response(query)
    assert response.status_code == 400
    body = response.get_json()
    assert_valid_r4(body)
    assert body["issue"][0]["expression"] == [named]
    assert quoted in body["issue"][0]["diagnostics"]


def test_a_parameter_without_a_name_is_refused_saying_so(app, world: World, story: Story) -> None:
    response = Client(app, world, "clinic").response("Patient?=x")
    assert response.status_code == 400
    issue = outcome(response).issue[0]
    assert issue.diagnostics.startswith("A search parameter without a name was sent; Patient takes")
    assert issue.expression is None


def refused_naming(response, parameter: str) -> None:
    """A 400 whose OperationOutcome points at the parameter and names it."""
    assert response.status_code == 400
    issue = outcome(response).issue[0]
    assert issue.code == "invalid"
    assert issue.expression == [parameter]
    assert parameter.split(":")[0] in issue.diagnostics


def test_paging_with_next_links(app, world: World, story: Story) -> None:
    clinic = Client(app, world, "clinic")
    seen: list[str] = []
    url = "Observation?category=survey&_count=4"
    pages = 0
    while url:
        body = clinic.bundle(url)
        pages += 1
        assert body["total"] == len(story.observations)
        assert len(body.get("entry", [])) <= 4
        seen += [e["resource"]["id"] for e in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert links["self"].startswith(f"{clinic.base}/Observation?")
        assert "category=survey" in links["self"]
        url = links.get("next", "").removeprefix(f"{clinic.base}/")
    assert pages == -(-len(story.observations) // 4)
    assert len(seen) == len(set(seen)) == len(story.observations)
    assert {uuid.UUID(i) for i in seen} == story.observations
    counted = clinic.bundle("ServiceRequest?_count=0")
    assert counted["total"] == 3 and "entry" not in counted
    assert "next" not in {link["relation"] for link in counted["link"]}
    capped = clinic.bundle("Observation?_count=100000")
    assert len(capped["entry"]) == len(story.observations)  # under the cap of 200


def test_every_search_is_audited(app, world: World, story: Story) -> None:
    food = Client(app, world, "food")
    food.bundle(f"Condition?patient={story.maya}")
    food.bundle("Observation")
    events = db.session().scalars(
        select(AuditEvent).where(AuditEvent.action == "fhir.search").order_by(AuditEvent.at)
    )
    found = [(e.target_type, e.detail) for e in events]
    assert ("Condition", {"parameters": ["patient"], "results": 1}) in found
    assert ("Observation", {"parameters": [], "results": 0}) in found


def test_a_scope_without_the_type_is_403(app, world: World, story: Story) -> None:
    from tests.fhir.test_oauth import assertion, register, token_form

    client = register(world, "food", scopes=["system/Patient.read"])
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope="system/Patient.read")
    )
    bearer = response.get_json()["access_token"]
    assert get(app, "/fhir/Condition", bearer).status_code == 403
    assert get(app, "/fhir/Patient", bearer).status_code == 200
    assert get(app, "/fhir/Condition").status_code == 401


def test_the_directory_is_searched_by_every_organisation(app, world: World) -> None:
    found = Client(app, world, "clinic2").ids("Organization?name=Community")
    assert found == {world.orgs["food"].id}


def test_the_capability_statement_lists_every_search(app) -> None:
    assert searchable() == SEARCHED
    statement = CapabilityStatement.model_validate(get(app, "/fhir/metadata").get_json())
    resources = {r.type: r for r in statement.rest[0].resource}
    for resource_type in SEARCHED:
        entry = resources[resource_type]
        assert "search-type" in {i.code for i in entry.interaction}
        assert entry.searchParam, resource_type
    assert {p.name for p in resources["ServiceRequest"].searchParam} == {
        "_id",
        "category",
        "intent",
        "patient",
        "status",
        "_lastUpdated",
    }
    assert {p.name for p in resources["Procedure"].searchParam} == {
        "_id",
        "based-on",
        "patient",
        "status",
    }
    assert {p.name for p in resources["Consent"].searchParam} == {"_id"}
    assert {p.name for p in resources["Organization"].searchParam} == {
        "_id",
        "_lastUpdated",
        "active",
        "name",
        "type",
    }
    assert "update" in {i.code for i in resources["Task"].interaction}
    assert resources["Task"].versioning == "versioned-update"
    assert resources["Task"].searchInclude == ["Task:focus"]
    assert [i.code for i in statement.rest[0].interaction] == ["transaction"]
    assert "ServiceRequest" in statement.rest[0].interaction[0].documentation
    # Referrals are created whole, in a transaction; a Procedure alone.
    for resource_type in ("Patient", "Consent", "Condition", "ServiceRequest", "Task"):
        assert "create" not in {i.code for i in resources[resource_type].interaction}
    assert "create" in {i.code for i in resources["Procedure"].interaction}


@pytest.mark.parametrize(
    "resource_type",
    ["Patient", "ServiceRequest", "Procedure", "Condition", "Observation", "Consent"],
)
def test_queries_do_not_grow_with_the_rows(
    app, world: World, story: Story, resource_type: str
) -> None:
    """No query per row: a page of one and a page of all take as many statements."""
    clinic = Client(app, world, "clinic")
    one = statements_run(lambda: clinic.bundle(f"{resource_type}?_count=1"))
    every = statements_run(lambda: clinic.bundle(f"{resource_type}?_count=200"))
    assert every == one, resource_type
