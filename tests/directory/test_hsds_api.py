"""The public HSDS API: pages in the spec's shape, filters, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from referrals.db import db, transaction
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.models import Service
from tests.helpers import make_patient, send

EXAMPLES = Path(__file__).parent / "fixtures" / "hsds" / "examples"
EXAMPLE_SERVICE = "ac148810-d857-441c-9679-408f346de14b"
EXAMPLE_TERM = "3f7b145d-84af-42d7-8fae-eaca714b02b2"


def test_api_info_names_the_hsds_version(client):
    body = client.get("/hsds/").get_json()
    assert body["version"] == "3.1"
    assert body["profile"].startswith("https://")


def test_services_page_has_the_spec_pagination_and_one_to_one_fields(client, world):
    response = client.get("/hsds/services?per_page=3")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["total_items"] == 4 and body["total_pages"] == 2
    assert body["page_number"] == 1 and body["size"] == 3
    assert body["first_page"] is True and body["last_page"] is False and body["empty"] is False
    names = [s["name"] for s in body["contents"]]
    assert names == ["Confidential counselling", "Family resource center", "Food boxes"]
    food = body["contents"][2]
    assert food["organization"]["name"] == "Community Food Bank"
    assert food["x_referrals"]["categories"] == ["food-insecurity"]
    assert "phones" not in food  # the list shape has one-to-one fields only
    last = client.get("/hsds/services?per_page=3&page=2").get_json()
    assert [s["name"] for s in last["contents"]] == ["Housing navigation"]
    assert last["last_page"] is True and last["first_page"] is False
    beyond = client.get("/hsds/services?per_page=3&page=5").get_json()
    assert beyond["empty"] is True and beyond["contents"] == []


def test_services_filter_by_search_organization_and_modification_time(client, world):
    by_text = client.get("/hsds/services?search=housing").get_json()
    assert [s["name"] for s in by_text["contents"]] == ["Housing navigation"]
    by_org_name = client.get("/hsds/services?search=food%20bank").get_json()
    assert [s["name"] for s in by_org_name["contents"]] == ["Food boxes"]
    org = world.orgs["school"].id
    by_org = client.get(f"/hsds/services?organization_id={org}").get_json()
    assert [s["name"] for s in by_org["contents"]] == ["Family resource center"]
    with transaction() as session:
        session.get(Service, world.services["youth"].id).last_modified = datetime(
            2020, 1, 1, tzinfo=UTC
        )
    db.session.remove()
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = client.get("/hsds/services", query_string={"modified_after": since}).get_json()
    assert recent["total_items"] == 3
    assert "Confidential counselling" not in [s["name"] for s in recent["contents"]]


def test_minimal_services_give_ids_and_times_and_full_nests_everything(client, world):
    assert import_hsds(EXAMPLES / "service_full.json").ok
    minimal = client.get("/hsds/services?minimal=true&per_page=100").get_json()
    assert set(minimal["contents"][0]) == {"id", "last_modified"}
    full = client.get(f"/hsds/services?full=true&taxonomy_term_id={EXAMPLE_TERM}").get_json()
    assert full["total_items"] == 1
    nested = full["contents"][0]
    assert nested["id"] == EXAMPLE_SERVICE
    assert nested["service_at_locations"][0]["location"]["addresses"][0]["city"] == "MyCity"
    assert nested["attributes"][0]["taxonomy_term"]["id"] == EXAMPLE_TERM


def test_one_service_is_fully_nested(client):
    assert import_hsds(EXAMPLES / "service_full.json").ok
    body = client.get(f"/hsds/services/{EXAMPLE_SERVICE}").get_json()
    assert body["name"] == "Community Counselling"
    assert body["phones"][0]["languages"][0]["code"] == "ur"
    assert body["contacts"][0]["phones"][0]["number"] == '"+44 1234 234567"'
    assert body["cost_options"][0]["amount"] == 35
    assert body["schedules"][0]["byday"] == "TH,FR"
    assert body["program"]["name"] == "Community Mental Health Support"
    assert body["organization"]["name"] == "Example Organization Inc."
    assert body["last_modified"] == "2023-03-15T10:30:45.123Z"


def test_organizations_and_taxonomies_are_listed(client):
    assert import_hsds(EXAMPLES / "service_full.json").ok
    orgs = client.get("/hsds/organizations?search=example").get_json()
    assert [o["name"] for o in orgs["contents"]] == ["Example Organization Inc."]
    org_id = orgs["contents"][0]["id"]
    one = client.get(f"/hsds/organizations/{org_id}").get_json()
    assert one["locations"][0]["name"] == "MyCity Civic Center"
    assert one["programs"][0]["name"] == "Community Mental Health Support"
    taxonomies = client.get("/hsds/taxonomies").get_json()
    assert taxonomies["total_items"] == 1 and taxonomies["contents"][0]["version"] == "version"
    terms = client.get("/hsds/taxonomy_terms?search=code").get_json()
    assert terms["contents"][0]["id"] == EXAMPLE_TERM
    assert client.get(f"/hsds/taxonomy_terms/{EXAMPLE_TERM}").get_json()["name"] == "name"


def test_bad_parameters_get_a_400_with_a_message(client):
    cases = {
        "per_page=500": "per_page: must be between 1 and 100, not 500",
        "page=0": "page: must be between 1 and 1000000000, not 0",
        "page=two": "page: 'two' is not a whole number written in digits 0-9",
        # str.isdigit() says yes to these; int() reads the second as 3 and fails on the first
        "page=%C2%B2": "page: '²' is not a whole number written in digits 0-9",
        "page=%D9%A3": "page: '٣' is not a whole number written in digits 0-9",
        "page=-1": "page: '-1' is not a whole number written in digits 0-9",
        # past what the database can take as an offset, and past what int() reads at all
        "page="
        + "9" * 30: "page: must be between 1 and 1000000000, not a number of more than 12 digits",
        "page="
        + "9" * 5000: "page: must be between 1 and 1000000000, not a number of more than 12 digits",
        "organization_id=42": "organization_id: '42' is not a UUID",
        "modified_after=yesterday": "modified_after: 'yesterday' is not an ISO 8601 date-time",
        "minimal=maybe": "minimal: must be true or false, not 'maybe'",
        # PostgreSQL text cannot hold a NUL: refused on both databases, not failed on one
        "search=fo%00od": "search: may not contain the NUL character",
    }
    for query, message in cases.items():
        response = client.get(f"/hsds/services?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["message"] == message


def test_a_moment_at_the_end_of_the_calendar_finds_nothing_rather_than_failing(client):
    # 23:00 at UTC-5 on the last day Python can hold is past it in UTC.
    for moment in ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999999"):
        response = client.get("/hsds/services", query_string={"modified_after": moment})
        assert response.status_code == 200, moment
        assert response.get_json()["contents"] == []
    earliest = client.get(
        "/hsds/services", query_string={"modified_after": "0001-01-01T00:00:00+01:00"}
    )
    assert earliest.status_code == 200
    since_2000 = client.get("/hsds/services", query_string={"modified_after": "2000-01-01"})
    assert earliest.get_json()["total_items"] == since_2000.get_json()["total_items"]


def test_unknown_ids_and_paths_get_a_404_as_json(client):
    for url in (
        "/hsds/services/00000000-0000-4000-8000-000000000000",
        "/hsds/services/not-a-uuid",
        "/hsds/services/a%2Fb",  # an id with a slash: no route of its own matches it
        "/hsds/organizations/a/b/c",
        "/hsds/nope",
        "/hsds/organizations/00000000-0000-4000-8000-000000000000",
        "/hsds/taxonomy_terms/00000000-0000-4000-8000-000000000000",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "application/json", url
        assert response.get_json()["error"] == "not_found" and response.get_json()["message"]


def test_the_api_never_carries_patient_or_referral_data(client, world):
    patient = make_patient(world)
    send(world, patient)
    text = client.get("/hsds/services?full=true").get_data(as_text=True)
    text += client.get(f"/hsds/services/{world.services['food'].id}").get_data(as_text=True)
    text += client.get("/hsds/organizations?full=true").get_data(as_text=True)
    for secret in ("Maya", "Lopez", "Ana Lopez", "+15105550142", "ran out of food"):
        assert secret not in text


def test_a_full_page_takes_the_same_queries_however_many_services_it_holds(client, world):
    from sqlalchemy import event

    from referrals.directory.service import add_service
    from tests.helpers import SYSTEM

    assert import_hsds(EXAMPLES / "service_full.json").ok

    def queries_for_a_full_page() -> int:
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            body = client.get("/hsds/services?full=true").get_json()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert body["size"] == body["total_items"]
        return len(statements)

    five = queries_for_a_full_page()
    for n in range(5):
        add_service(
            SYSTEM,
            world.orgs["food"],
            name=f"Pantry {n}",
            categories=["food-insecurity"],
            languages=["en", "es"],
            phone="+15105550100",
            address={"address_1": f"{n} Main St", "city": "Oakland", "postal_code": "94607"},
        )
    db.session.remove()
    assert queries_for_a_full_page() == five


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_method_the_api_does_not_take_is_a_405_in_its_json(client, method):
    response = client.client.open("/hsds/services", method=method)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "method_not_allowed",
        "message": f"{method} is not how /hsds/services is used; this API takes GET.",
    }
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
