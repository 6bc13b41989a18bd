"""Searching the directory over FHIR, the way partners find where to refer: every client finds
what every client may read (Organization, HealthcareService, Location), by the parameters of
the base specification, matching what the resources show; string matching ignores case the
same way on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from referrals.db import db
from referrals.directory.models import Service
from referrals.directory.service import add_service, register_organization
from referrals.terminology import SDOHCC_CODES, SNOMED
from tests.fhir.test_api import outcome
from tests.fhir.test_search import Client, refused_naming
from tests.helpers import SYSTEM, World, statements_run

ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"


@dataclass
class Directory:
    """The world's four services (no place), plus Árbol's pantry at the Fruitvale Hub in
    Oakland and the food bank's closed meals programme on Main Street, Berkeley."""

    arbol: uuid.UUID  # the organisation
    pantry: uuid.UUID
    meals: uuid.UUID
    hub: uuid.UUID  # the pantry's location, named
    main_street: uuid.UUID  # the meals' location, no name


@pytest.fixture
def directory(world: World) -> Directory:
    arbol = register_organization(SYSTEM, name="ÁRBOL Familia", kind="cbo", hipaa_covered=False)
    pantry = add_service(
        SYSTEM,
        arbol,
        name="Despensa Árbol",
        categories=["food-insecurity"],
        service_code="710925007",
        service_display="Provision of food",
        languages=["es"],
        address={"address_1": "100 Fruitvale Ave", "city": "Oakland", "postal_code": "94601"},
    )
    meals = add_service(
        SYSTEM,
        world.orgs["food"],
        name="100% Free Meals",
        status="inactive",
        categories=["food-insecurity", "financial-insecurity"],
        service_code="710925007",
        service_display="Provision of food",
        address={"address_1": "5 Main St", "city": "Berkeley", "postal_code": "94704"},
    )
    session = db.session()
    hub = session.get(Service, pantry.id).service_at_locations[0].location
    hub.name = "Fruitvale Hub"  # add_service leaves places unnamed
    session.commit()
    found = Directory(
        arbol=arbol.id,
        pantry=pantry.id,
        meals=meals.id,
        hub=hub.id,
        main_street=session.get(Service, meals.id).service_at_locations[0].location_id,
    )
    db.session.remove()
    return found


def matches(client: Client, query: str) -> list[dict]:
    body = client.bundle(query)
    found = [e["resource"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]
    assert body["total"] == len(found), "these searches fit one page"
    return found


def names(client: Client, query: str) -> list[str]:
    """The names found, in the order of the page."""
    return [resource["name"] for resource in matches(client, query)]


WORLD_SERVICES = [
    "Confidential counselling",
    "Family resource center",
    "Food boxes",
    "Housing navigation",
]
ALL_SERVICES = sorted([*WORLD_SERVICES, "Despensa Árbol", "100% Free Meals"])


# --- HealthcareService --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("name=food", ["Food boxes"]),
        ("name=FOOD,housing", ["Food boxes", "Housing navigation"]),
        ("name=boxes", []),  # starts with, by default
        ("name:contains=BOXES", ["Food boxes"]),
        ("name=despensa%20%C3%A1", ["Despensa Árbol"]),  # "despensa á": case, beyond ASCII
        ("name:contains=%C3%81RBOL", ["Despensa Árbol"]),  # "ÁRBOL"
        ("name:contains=%25", ["100% Free Meals"]),  # a literal %, not a wildcard
        ("name:contains=_", []),
        ("name:exact=Food%20boxes", ["Food boxes"]),
        ("name:exact=food%20boxes", []),
        ("name=f&name:contains=center", ["Family resource center"]),
    ],
)
def test_services_by_name(
    app, world: World, directory: Directory, query: str, found: list[str]
) -> None:
    assert names(Client(app, world, "clinic"), f"HealthcareService?{query}") == found


def test_services_active_or_not(app, world: World, directory: Directory) -> None:
    clinic = Client(app, world, "clinic")
    assert names(clinic, "HealthcareService") == ALL_SERVICES  # as reads, inactive ones too
    assert names(clinic, "HealthcareService?active=false") == ["100% Free Meals"]
    assert "100% Free Meals" not in names(clinic, "HealthcareService?active=true")
    assert len(names(clinic, "HealthcareService?active=true")) == len(ALL_SERVICES) - 1
    meals = matches(clinic, f"HealthcareService?_id={directory.meals}")
    assert meals[0]["active"] is False


def test_services_by_organisation(app, world: World, directory: Directory) -> None:
    clinic = Client(app, world, "clinic")
    food = world.orgs["food"].id
    expected = ["100% Free Meals", "Food boxes"]
    assert names(clinic, f"HealthcareService?organization=Organization/{food}") == expected
    assert names(clinic, f"HealthcareService?organization={clinic.base}/Organization/{food}") == (
        expected
    )
    both = f"{food},{directory.arbol}"
    assert names(clinic, f"HealthcareService?organization={both}") == [
        "100% Free Meals",
        "Despensa Árbol",
        "Food boxes",
    ]
    assert all(
        s["providedBy"]["reference"].endswith(f"/Organization/{food}")
        for s in matches(clinic, f"HealthcareService?organization={food}")
    )


@pytest.mark.parametrize(
    ("category", "found"),
    [
        (
            "food-insecurity",
            ["100% Free Meals", "Despensa Árbol", "Family resource center", "Food boxes"],
        ),
        (f"{SDOHCC_CODES}|housing-instability", ["Housing navigation"]),
        ("homelessness,stress", ["Confidential counselling", "Housing navigation"]),
        ("http://example.org/other|food-insecurity", []),
        ("resulting-activity", []),  # an SDOHCC code, not a category
        (f"{SDOHCC_CODES}|", ALL_SERVICES),
    ],
)
def test_services_by_category(
    app, world: World, directory: Directory, category: str, found: list[str]
) -> None:
    clinic = Client(app, world, "clinic")
    services = matches(clinic, f"HealthcareService?service-category={quote(category)}")
    assert [s["name"] for s in services] == found
    code = category.rsplit("|", 1)[-1].split(",")[0]
    for service in services if code else []:
        emitted = {(c["system"], c["code"]) for cat in service["category"] for c in cat["coding"]}
        assert emitted & {(SDOHCC_CODES, code) for code in category.split("|")[-1].split(",")}


def test_services_by_type(app, world: World, directory: Directory) -> None:
    clinic = Client(app, world, "clinic")
    assert names(clinic, "HealthcareService?service-type=710925007") == [
        "100% Free Meals",
        "Despensa Árbol",
        "Food boxes",
    ]
    assert names(clinic, f"HealthcareService?service-type={quote(SNOMED)}|409063005") == [
        "Confidential counselling"
    ]
    assert names(clinic, "HealthcareService?service-type=http://loinc.org|409063005") == []


def test_services_by_place(app, world: World, directory: Directory) -> None:
    clinic = Client(app, world, "clinic")
    assert names(clinic, f"HealthcareService?location=Location/{directory.hub}") == [
        "Despensa Árbol"
    ]
    assert names(clinic, "HealthcareService?location.address-postalcode=946") == ["Despensa Árbol"]
    assert names(clinic, "HealthcareService?location.address-city=BERK") == ["100% Free Meals"]
    assert names(clinic, "HealthcareService?location.address-city:exact=berkeley") == []
    assert names(
        clinic, "HealthcareService?location.address-postalcode=94601,94704&active=true"
    ) == ["Despensa Árbol"]


def test_services_by_last_update(app, world: World, directory: Directory) -> None:
    clinic = Client(app, world, "clinic")
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert names(clinic, f"HealthcareService?_lastUpdated=gt{later}") == []
    assert names(clinic, f"HealthcareService?_lastUpdated=lt{later}") == ALL_SERVICES
    pantry = matches(clinic, f"HealthcareService?_id={directory.pantry}")[0]
    stamp = quote(pantry["meta"]["lastUpdated"])
    assert names(clinic, f"HealthcareService?_lastUpdated=ge{stamp}&name=desp") == [
        "Despensa Árbol"
    ]


def test_services_with_their_organisations_and_places(
    app, world: World, directory: Directory
) -> None:
    clinic = Client(app, world, "clinic")
    body = clinic.bundle(
        "HealthcareService?service-type=710925007"
        "&_include=HealthcareService:organization&_include=HealthcareService:location"
    )
    found = {
        (e["search"]["mode"], e["resource"]["resourceType"], e["resource"]["id"])
        for e in body["entry"]
    }
    assert body["total"] == 3
    food, arbol = str(world.orgs["food"].id), str(directory.arbol)
    assert {(t, i) for mode, t, i in found if mode == "include"} == {
        ("Organization", food),  # once, for its two services
        ("Organization", arbol),
        ("Location", str(directory.hub)),
        ("Location", str(directory.main_street)),
    }
    assert len(body["entry"]) == 3 + 4
    only_places = clinic.bundle(
        f"HealthcareService?_id={directory.pantry}&_include=HealthcareService:location"
    )
    assert [(e["search"]["mode"], e["resource"]["resourceType"]) for e in only_places["entry"]] == [
        ("match", "HealthcareService"),
        ("include", "Location"),
    ]
    assert only_places["entry"][1]["resource"]["name"] == "Fruitvale Hub"


# --- Organization and Location ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("name=%C3%A1rbol", ["ÁRBOL Familia"]),  # "árbol"
        ("name:contains=FOOD", ["Community Food Bank"]),
        ("name:exact=Housing%20Help", ["Housing Help"]),
        (
            "type=cbo",
            ["Community Food Bank", "Housing Help", "Youth Counselling Services", "ÁRBOL Familia"],
        ),
        (f"type={quote(ORGANIZATION_TYPE)}|edu", ["Valley School Family Center"]),
        (
            "type=urn:referrals:organization-kind|clinic",
            ["Harbor Family Clinic", "Sunrise Pediatrics"],
        ),
        ("type=other", ["Referral Network"]),
        ("type=hospital", []),
        ("active=false", []),
        ("active=true&name=s", ["Sunrise Pediatrics"]),
    ],
)
def test_organisations(
    app, world: World, directory: Directory, query: str, found: list[str]
) -> None:
    assert names(Client(app, world, "food"), f"Organization?{query}") == found


def test_organisations_by_id_and_last_update(app, world: World, directory: Directory) -> None:
    food = Client(app, world, "food")
    found = matches(food, f"Organization?_id={directory.arbol}")
    assert [o["name"] for o in found] == ["ÁRBOL Familia"]
    stamp = quote(found[0]["meta"]["lastUpdated"])
    assert "ÁRBOL Familia" in names(food, f"Organization?_lastUpdated=ge{stamp}")
    assert "Sunrise Pediatrics" not in names(food, f"Organization?_lastUpdated=gt{stamp}")


def test_locations(app, world: World, directory: Directory) -> None:
    youth = Client(app, world, "youth")
    assert names(youth, "Location") == ["5 Main St", "Fruitvale Hub"]  # unnamed: its street
    assert names(youth, "Location?name=FRUIT") == ["Fruitvale Hub"]
    assert names(youth, "Location?name=5%20main") == ["5 Main St"]
    assert names(youth, "Location?address-postalcode=94704") == ["5 Main St"]
    assert names(youth, "Location?address-postalcode:exact=9470") == []
    assert names(youth, "Location?address-city=oakland") == ["Fruitvale Hub"]
    assert names(youth, f"Location?organization=Organization/{world.orgs['food'].id}") == [
        "5 Main St"
    ]
    hub = matches(youth, f"Location?_id={directory.hub}")[0]
    assert hub["address"]["postalCode"] == "94601" and hub["address"]["city"] == "Oakland"


# --- paging, errors, what reads allow ----------------------------------------------------------


def test_paging_through_the_services(app, world: World, directory: Directory) -> None:
    clinic = Client(app, world, "clinic")
    url, seen, pages = "HealthcareService?service-type=710925007,409063005&_count=2", [], 0
    while url:
        body = clinic.bundle(url)
        pages += 1
        assert body["total"] == 4
        seen += [e["resource"]["name"] for e in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert "service-type=" in links["self"]
        url = links.get("next", "").removeprefix(f"{clinic.base}/")
    assert pages == 2
    assert seen == ["100% Free Meals", "Confidential counselling", "Despensa Árbol", "Food boxes"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("HealthcareService?specialty=394602003", "specialty"),
        ("HealthcareService?active=yes", "active"),
        (
            "HealthcareService?organization=Location/6c1b0f9e-0000-4000-8000-000000000000",
            "organization",
        ),
        ("HealthcareService?organization:Organization=x", "organization:Organization"),
        ("HealthcareService?service-category:not=stress", "service-category:not"),
        ("HealthcareService?name:missing=true", "name:missing"),
        ("HealthcareService?location.name=Hub", "location.name"),
        ("HealthcareService?_include=HealthcareService:endpoint", "_include"),
        ("HealthcareService?_lastUpdated=recently", "_lastUpdated"),
        ("Organization?address-postalcode=94601", "address-postalcode"),
        ("Organization?active=1", "active"),
        ("Location?_include=Location:organization", "_include"),
        ("Location?_id=not-a-uuid", "_id"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    app, world: World, directory: Directory, query: str, parameter: str
) -> None:
    response = Client(app, world, "clinic").response(query)
    refused_naming(response, parameter)
    assert parameter in outcome(response).issue[0].diagnostics


@pytest.mark.parametrize("resource_type", ["Organization", "HealthcareService", "Location"])
def test_a_search_finds_what_a_read_gives(
    app, world: World, directory: Directory, resource_type: str
) -> None:
    """The directory is read by every client; what one finds, another reads the same."""
    found = matches(Client(app, world, "school"), resource_type)
    assert found
    reader = Client(app, world, "clinic2")
    for resource in found:
        read = reader.response(f"{resource_type}/{resource['id']}")
        assert read.status_code == 200
        assert read.get_json() == resource


@pytest.mark.parametrize(
    "query",
    [
        "Organization?_count={n}",
        "Location?_count={n}",
        "HealthcareService?_count={n}"
        "&_include=HealthcareService:organization&_include=HealthcareService:location",
    ],
)
def test_queries_do_not_grow_with_the_rows(
    app, world: World, directory: Directory, query: str
) -> None:
    """No query per row: a page of one and a page of all take as many statements."""
    clinic = Client(app, world, "clinic")
    one = statements_run(lambda: clinic.bundle(query.format(n=1)))
    every = statements_run(lambda: clinic.bundle(query.format(n=200)))
    assert every == one, query
