"""What the public directory API must not say."""

from __future__ import annotations

from referrals.directory.service import add_service
from tests.helpers import SYSTEM


def test_a_sensitive_service_does_not_publish_where_it_is(world, client):
    shelter = add_service(
        SYSTEM,
        world.orgs["youth"],
        name="Safe house",
        categories=["intimate-partner-violence"],
        sensitive=True,
        address={"address_1": "1 Hidden Lane", "city": "Oakland", "postal_code": "94610"},
    )
    body = client.get(f"/hsds/services/{shelter.id}").get_json()
    assert body["x_referrals"]["sensitive"] is True
    [link] = body["service_at_locations"]
    assert link["location"]["addresses"] == [] and link["location"]["latitude"] is None
    listing = client.get("/hsds/services?full=true&per_page=100").get_data(as_text=True)
    assert "Hidden Lane" not in listing
    # an ordinary service still shows its address
    add_service(
        SYSTEM,
        world.orgs["food"],
        name="Pantry",
        categories=["food-insecurity"],
        address={"address_1": "2 Open Street", "city": "Oakland", "postal_code": "94601"},
    )
    assert "2 Open Street" in client.get("/hsds/services?full=true&per_page=100").get_data(
        as_text=True
    )


def test_clinics_and_the_network_are_not_in_the_public_directory(world, client):
    names = {
        o["name"] for o in client.get("/hsds/organizations?per_page=100").get_json()["contents"]
    }
    assert "Community Food Bank" in names
    assert "Sunrise Pediatrics" not in names and "Referral Network" not in names
    clinic = client.get(f"/hsds/organizations/{world.orgs['clinic'].id}")
    assert clinic.status_code == 404


def test_a_page_of_full_organizations_takes_a_bounded_number_of_queries(world, client):
    from sqlalchemy import event

    from referrals.db import db

    for n in range(12):
        add_service(
            SYSTEM,
            world.orgs["food"],
            name=f"Service {n}",
            categories=["stress"],
            phone="+15105550100",
            address={"address_1": f"{n} Main", "city": "Oakland", "postal_code": "94601"},
        )
    statements: list[str] = []

    def count(*args) -> None:
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        body = client.get("/hsds/organizations?full=true&per_page=100").get_json()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert body["total_items"] == 4
    assert len(statements) < 40, len(statements)
