"""One rule for ZIP codes, from the offline table the directory searches with: one that does not
exist is refused; one outside California is taken only once someone confirms it (families near
a state line, services just across it). The listing form and the HSDS import apply it."""

from __future__ import annotations

import pytest

from referrals.db import db
from referrals.directory.geo import check_zip
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.models import Service
from referrals.directory.search import parse_search, search_services
from tests.directory.test_hsds_import import service_doc, write

UNKNOWN = "ZIP code {} does not exist (or has no location on record)."
ELSEWHERE = "{} is in {}, not California: confirm to save it there."


@pytest.mark.pure
@pytest.mark.parametrize(
    ("typed", "confirmed", "code", "refusal", "question"),
    [
        ("94601", (), "94601", "", ""),
        (" 94110-1234 ", (), "94110", "", ""),
        ("99999", (), "", UNKNOWN.format("99999"), ""),
        ("00000", ("00000",), "", UNKNOWN.format("00000"), ""),  # no confirming what is not
        ("9460", (), "", "“9460” is not a ZIP code: use five digits, like 94110.", ""),
        ("12345", (), "12345", "", ELSEWHERE.format("12345", "New York")),
        ("10001", (), "10001", "", ELSEWHERE.format("10001", "New York")),
        ("89439", (), "89439", "", ELSEWHERE.format("89439", "Nevada")),
        ("12345", ("12345",), "12345", "", ""),
        ("12345", ("12345-0001", ""), "12345", "", ""),  # confirmed as typed, with its +4
        ("10001", ("12345",), "10001", "", ELSEWHERE.format("10001", "New York")),
        ("96161", (), "96161", "", ""),  # Truckee, on the Nevada line, is California's
    ],
)
def test_the_zip_rule(typed, confirmed, code, refusal, question):
    found = check_zip(typed, confirmed)
    assert (found.code, found.refusal, found.question) == (code, refusal, question)
    assert found.taken == (not refusal and not question)


def edit(client, world, **fields):
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    form = {
        "name": "Food boxes",
        "categories": ["food-insecurity"],
        "address_1": "1 Main St",
        "city": "Schenectady",
        **fields,
    }
    return client.post(url, form)


def saved_address(world):
    db.session.remove()
    return db.session().get(Service, world.service_ids["food"]).primary_address


def test_a_listing_cannot_move_to_a_zip_that_does_not_exist(world, client):
    client.login(world, "food_admin")
    response = edit(client, world, postal_code="99999")
    assert response.status_code == 422
    assert "ZIP code 99999 does not exist" in response.get_data(as_text=True)
    assert saved_address(world) is None


def test_moving_a_listing_out_of_california_needs_a_confirmation_naming_the_state(world, client):
    client.login(world, "food_admin")
    response = edit(client, world, postal_code="12345")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "12345 is in New York, not California: confirm to save it there." in html
    assert 'type="checkbox" id="confirm_zip" name="confirm_zip" value="12345"' in html
    assert saved_address(world) is None  # nothing moved without the confirmation

    # Confirmed for another code does not count for this one.
    other = edit(client, world, postal_code="10001", confirm_zip="12345")
    assert "10001 is in New York, not California" in other.get_data(as_text=True)

    confirmed = edit(client, world, postal_code="12345", confirm_zip="12345")
    assert confirmed.status_code == 302
    address = saved_address(world)
    assert (address.postal_code, address.state_province) == ("12345", "NY")
    near_oakland = search_services(db.session(), parse_search({"zip": "94607", "radius": "50"}))
    assert "Food boxes" not in [r.service.name for r in near_oakland.results]

    # Saved there once, the listing is edited again without being asked again.
    again = edit(client, world, postal_code="12345", description="Now upstate")
    assert again.status_code == 302

    # Back in California, the address says so.
    home = edit(client, world, postal_code="94607", city="Oakland")
    assert home.status_code == 302
    assert (saved_address(world).postal_code, saved_address(world).state_province) == (
        "94607",
        "CA",
    )


def test_the_import_warns_of_unknown_and_out_of_state_zips_and_strict_refuses(app, tmp_path):
    doc = service_doc()
    address = doc["service_at_locations"][0]["location"]["addresses"][0]
    address["postal_code"] = "99999"
    second = service_doc(id="dddddddd-dddd-4ddd-8ddd-dddddddddddd")
    second.update(phones=[], languages=[], cost_options=[], attributes=[])
    far = {
        "id": "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee",
        "location": {
            "id": "ffffffff-ffff-4fff-8fff-ffffffffffff",
            "location_type": "physical",
            "addresses": [
                {
                    **address,
                    "id": "abababab-abab-4bab-8bab-abababababab",
                    "postal_code": "10001",
                    "state_province": "NY",
                },
                {
                    **address,
                    "id": "cdcdcdcd-cdcd-4dcd-8dcd-cdcdcdcdcdcd",
                    "postal_code": "SW1A 1AA",
                    "country": "GB",
                },
            ],
        },
    }
    second["service_at_locations"] = [far]
    path = write(tmp_path, "zips.json", [doc, second])
    lenient = import_hsds(path, dry_run=True)
    assert lenient.ok, lenient.lines()
    where = "zips.json:record {}/service_at_locations[0]/location/addresses[0]"
    assert [str(p) for p in lenient.dataset.warnings] == [
        f"warning: {where.format(1)}: postal_code: '99999' is not a US ZIP code that exists; "
        "kept, but search cannot place the address by it",
        f"warning: {where.format(2)}: postal_code: 10001 is in New York, not California; kept",
    ]  # a British postcode is not a US ZIP code to check
    strict = import_hsds(path, strict=True)
    assert [str(p) for p in strict.dataset.errors] == [
        f"{where.format(1)}: postal_code: '99999' is not a US ZIP code that exists",
        f"{where.format(2)}: postal_code: 10001 is in New York, not California",
    ]
