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
