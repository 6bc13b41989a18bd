"""Organisations keep their listings current; stale ones are flagged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from referrals.audit import AuditEvent
from referrals.db import db, transaction, utcnow
from referrals.directory.listing import is_stale, set_capacity, stale_listings, update_listing
from referrals.directory.models import Service
from referrals.errors import Forbidden, InvalidInput, NotFound


def text(response) -> str:
    return response.get_data(as_text=True)


def service(world, key="food") -> Service:
    db.session.remove()
    return db.session().get(Service, world.service_ids[key])


def test_an_org_admin_sets_capacity_in_one_click_from_the_inbox(world, client):
    client.login(world, "food_admin")
    inbox = text(client.get("/inbox"))
    assert "Taking referrals?" in inbox and "Food boxes" in inbox
    response = client.post(
        f"/listings/{world.service_ids['food']}/capacity",
        {"capacity_status": "waitlist", "back": "inbox"},
        htmx=True,
    )
    html = text(response)
    assert html.lstrip().startswith(
        f'<div class="capacity" id="capacity-{world.service_ids["food"]}"'
    )
    assert "Waiting list" in html and "Food boxes: waiting list." in html
    saved = service(world)
    assert saved.capacity_status == "waitlist" and saved.capacity_updated_at is not None
    assert db.session().scalar(
        select(AuditEvent.detail).where(AuditEvent.action == "service.capacity")
    ) == {"status": "waitlist"}


def test_capacity_works_without_javascript(world, client):
    client.login(world, "food_admin")
    response = client.post(
        f"/listings/{world.service_ids['food']}/capacity",
        {"capacity_status": "no-capacity", "back": "inbox"},
    )
    assert response.headers["Location"] == "/inbox"
    assert "Food boxes: not accepting referrals." in text(client.get("/inbox"))


def test_staff_who_are_not_admins_see_no_capacity_controls(world, client):
    client.login(world, "food")
    assert "Taking referrals?" not in text(client.get("/inbox"))


def test_capacity_rules(world):
    admin = world.actor("food_admin")
    with pytest.raises(InvalidInput):
        set_capacity(admin, world.service_ids["food"], "full-ish")
    with pytest.raises(NotFound):
        set_capacity(admin, world.service_ids["housing"], "capacity")  # another org's
    with pytest.raises(Forbidden):
        set_capacity(world.actor("food"), world.service_ids["food"], "capacity")
    assert service(world, "housing").capacity_status is None


def test_editing_a_listing(world, client):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    page = text(client.get(url))
    assert 'value="Food boxes"' in page
    response = client.post(
        url,
        {
            "name": "Weekend food boxes",
            "status": "active",
            "categories": ["food-insecurity"],
            "languages": ["en", "es", "vi"],
            "minimum_age": "0",
            "maximum_age": "99",
            "accepts_electronic_referrals": "y",
            "free_of_charge": "y",
            "referral_contact_phone": "(510) 555-0199",
        },
    )
    assert response.headers["Location"] == "/listings"
    saved = service(world)
    assert saved.name == "Weekend food boxes" and saved.free_of_charge is True
    assert saved.language_codes == ["en", "es", "vi"]
    assert sorted(lang.code for lang in saved.languages) == ["en", "es", "vi"]
    assert saved.referral_contact_phone == "+15105550199"
    assert "“Weekend food boxes” is saved." in text(client.get("/listings"))


def test_a_bad_edit_is_explained_and_not_saved(world, client):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    response = client.post(
        url,
        {"name": "", "minimum_age": "30", "maximum_age": "10", "referral_contact_email": "nope"},
    )
    html = text(response)
    assert response.status_code == 422
    assert "Pick at least one need the service addresses." in html
    assert "A valid email address." in html
    assert service(world).name == "Food boxes"


def test_only_the_organisations_admins_edit_its_listings(world):
    form = {"name": "x", "categories": ["food-insecurity"]}
    with pytest.raises(NotFound):
        update_listing(world.actor("food_admin"), world.service_ids["housing"], form)
    with pytest.raises(Forbidden):
        update_listing(world.actor("clinician"), world.service_ids["food"], form)


def test_listings_untouched_for_180_days_are_stale(world, client):
    long_ago = utcnow() - timedelta(days=181)
    with transaction() as session:
        session.execute(
            update(Service)
            .where(Service.id == world.service_ids["food"])
            .values(last_modified=long_ago)
        )
    assert is_stale(service(world)) and not is_stale(service(world, "housing"))
    assert [s.name for s in stale_listings(world.actor("admin"))] == ["Food boxes"]
    set_capacity(world.actor("food_admin"), world.service_ids["food"], "capacity")
    assert not is_stale(service(world))
    assert stale_listings(world.actor("admin")) == []
    with pytest.raises(Forbidden):
        stale_listings(world.actor("food_admin"))
    client.login(world, "admin")
    assert "Every active listing was updated" in text(client.get("/listings/stale"))


def test_search_sees_a_listing_edit_and_a_capacity_change_at_once(world):
    from referrals.directory.search import parse_search, search_services

    def found(**values: str) -> list[str]:
        db.session.remove()
        page = search_services(db.session(), parse_search(values), limit=20)
        return [r.service.name for r in page.results]

    assert "Food boxes" in found(need="food-insecurity", accepting="y")
    set_capacity(world.actor("food_admin"), world.service_ids["food"], "no-capacity")
    assert "Food boxes" not in found(need="food-insecurity", accepting="y")
    update_listing(
        world.actor("food_admin"),
        world.service_ids["food"],
        {"name": "Food boxes", "categories": ["utility-insecurity"]},
    )
    assert "Food boxes" not in found(need="food-insecurity")
    assert "Food boxes" in found(need="utility-insecurity")


def test_editing_where_and_when_moves_the_service_in_search(world, client):
    from referrals.directory.search import SearchHours, parse_search, search_services

    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    response = client.post(
        url,
        {
            "name": "Food boxes",
            "categories": ["food-insecurity"],
            "address_1": "5 Ocean Ave",
            "city": "San Francisco",
            "postal_code": "94112",
            "days": ["MO", "WE"],
            "opens_at": "09:00",
            "closes_at": "13:00",
        },
    )
    assert response.headers["Location"] == "/listings"
    saved = service(world)
    assert (saved.primary_address.city, saved.primary_address.postal_code) == (
        "San Francisco",
        "94112",
    )
    assert [(s.byday, s.opens_at, s.closes_at) for s in saved.schedules] == [
        ("MO,WE", "09:00", "13:00")
    ]
    db.session.remove()
    near = search_services(db.session(), parse_search({"zip": "94112", "radius": "2"}))
    assert "Food boxes" in [r.service.name for r in near.results]
    hours = (
        db.session()
        .scalars(select(SearchHours).where(SearchHours.service_id == world.service_ids["food"]))
        .all()
    )
    assert len(hours) == 2
    page = text(client.get(url))
    assert 'value="5 Ocean Ave"' in page and 'id="day-WE" name="days" value="WE" checked' in page


def test_where_and_when_mistakes_are_explained(world, client):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    base = {
        "name": "Food boxes",
        "categories": ["food-insecurity"],
        "days": ["MO"],
        "opens_at": "09:00",
        "closes_at": "13:00",
    }
    bad_zip = text(
        client.post(
            url, {**base, "address_1": "5 Ocean Ave", "city": "Nowhere", "postal_code": "00000"}
        )
    )
    assert "ZIP code 00000 does not exist" in bad_zip
    bad_time = text(client.post(url, {**base, "opens_at": "25:00"}))
    assert "A time like 09:00." in bad_time
    half = text(client.post(url, {**base, "address_1": "5 Ocean Ave"}))
    assert "Give the street, city and ZIP code together." in half
    assert service(world).schedules == []
