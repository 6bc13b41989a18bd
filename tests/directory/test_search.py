"""Directory search: what it finds, in which order, what each result says, and what it refuses."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select

from referrals.db import db
from referrals.directory.models import Schedule, Service
from referrals.directory.search import (
    SearchRow,
    hours_label,
    parse_search,
    refresh_search_rows,
    search_services,
    weekly_hours,
)
from referrals.directory.service import add_service
from referrals.errors import InvalidInput
from referrals.terminology import CALIFORNIA
from tests.helpers import SYSTEM

# A Tuesday morning in California.
NOW = datetime(2026, 11, 24, 10, 30, tzinfo=CALIFORNIA)


def weekdays_9_to_5() -> list[Schedule]:
    return [Schedule(freq="WEEKLY", byday="MO,TU,WE,TH,FR", opens_at="09:00", closes_at="17:00")]


def add(world, name, zip_code=None, org="food", **fields):
    fields.setdefault("categories", ["food-insecurity"])
    fields.setdefault("languages", ["en"])
    fields.setdefault("capacity_status", "capacity")
    fields.setdefault("capacity_updated_at", NOW - timedelta(days=3))
    fields.setdefault("last_modified", NOW - timedelta(days=3))
    address = {"address_1": "100 Main St", "city": "Somewhere", "postal_code": zip_code}
    return add_service(
        SYSTEM, world.orgs[org], name=name, address=address if zip_code else None, **fields
    )


def names(values, now=NOW):
    page = search_services(db.session(), parse_search(values), now=now)
    return [r.service.name for r in page.results]


def first(values):
    return search_services(db.session(), parse_search(values), now=NOW).results[0]


class TestPlace:
    def test_nearest_first_within_the_radius(self, world):
        add(world, "Downtown pantry", "90012")  # about 4 miles from 90011
        add(world, "South LA pantry", "90011")
        add(world, "Pasadena pantry", "91101")  # about 12 miles
        add(world, "Mission pantry", "94110")  # San Francisco
        found = names({"need": "food-insecurity", "zip": "90011", "radius": "10"})
        assert found == ["South LA pantry", "Downtown pantry"]
        found = names({"need": "food-insecurity", "zip": "90011", "radius": "25"})
        assert found == ["South LA pantry", "Downtown pantry", "Pasadena pantry"]

    def test_the_radius_defaults_to_ten_miles_and_distance_is_shown(self, world):
        add(world, "Downtown pantry", "90012")
        add(world, "Pasadena pantry", "91101")
        result = first({"zip": "90011"})
        assert result.service.name == "Downtown pantry"
        assert 3 < result.distance_miles < 6
        assert result.address.postal_code == "90012"

    def test_services_without_a_place_are_left_out_of_a_place_search(self, world):
        assert names({"zip": "90011", "radius": "100"}) == []
        assert "Food boxes" in names({"need": "food-insecurity"})


class TestFilters:
    def test_need_language_age_free_and_accepting(self, world):
        add(world, "Spanish pantry", "90011", languages=["en", "es"], free_of_charge=True)
        add(world, "English pantry", "90011", capacity_status="no-capacity")
        add(world, "Teen pantry", "90011", languages=["es"], minimum_age=13, maximum_age=19)
        add(world, "Shelter", "90011", categories=["homelessness"], languages=["es"])
        place = {"zip": "90011"}
        assert sorted(names({**place, "need": "food-insecurity", "language": "es"})) == [
            "Spanish pantry",
            "Teen pantry",
        ]
        assert "Teen pantry" not in names({**place, "age": "9"})
        assert "Teen pantry" in names({**place, "age": "13"})
        assert names({**place, "free": "y"}) == ["Spanish pantry"]
        assert "English pantry" not in names({**place, "accepting": "y"})
        assert "English pantry" in names({**place})

    def test_words_match_the_service_the_organisation_and_the_description(self, world):
        add(world, "Groceries", description="Fresh PRODUCE every week")
        add(world, "Meals", org="housing")
        assert names({"q": "produce"}) == ["Groceries"]
        assert names({"q": "housing help meals"}) == ["Meals"]
        assert names({"q": "100%_"}) == []  # LIKE wildcards are only characters

    def test_open_now_reads_the_weekly_schedule_in_california_time(self, world):
        add(world, "Weekday pantry", "90011", schedules=weekdays_9_to_5())
        add(
            world,
            "Weekend pantry",
            "90011",
            schedules=[Schedule(freq="WEEKLY", byday="SA,SU", opens_at="09:00", closes_at="17:00")],
        )
        add(world, "Pantry with no hours", "90011")
        assert names({"zip": "90011", "open_now": "y"}) == ["Weekday pantry"]
        evening = NOW.replace(hour=18)
        assert names({"zip": "90011", "open_now": "y"}, now=evening) == []
        saturday = NOW + timedelta(days=4)
        assert names({"zip": "90011", "open_now": "y"}, now=saturday) == ["Weekend pantry"]

    def test_only_active_services_are_found(self, world):
        service = add(world, "Closed pantry", "90011")
        assert names({"zip": "90011"}) == ["Closed pantry"]
        session = db.session()
        service = session.get(Service, service.id)
        service.status = "inactive"
        refresh_search_rows(session, service)
        session.commit()
        assert names({"zip": "90011"}) == []
        assert session.scalar(select(func.count()).where(SearchRow.service_id == service.id)) == 0

    def test_a_service_with_several_needs_is_found_once(self, world):
        add(world, "Family center", "90011", categories=["food-insecurity", "stress"])
        assert names({"zip": "90011"}) == ["Family center"]
        assert names({"zip": "90011", "need": "stress"}) == ["Family center"]

    def test_an_empty_search_finds_nothing_and_says_so(self, world):
        page = search_services(db.session(), parse_search({}), now=NOW)
        assert page.search.is_empty and page.results == []


class TestResults:
    def test_a_result_carries_languages_hours_capacity_and_its_age(self, world):
        add(
            world,
            "Pantry",
            "90011",
            languages=["es", "en", "zh"],
            schedules=weekdays_9_to_5(),
            capacity_status="waitlist",
            capacity_updated_at=NOW - timedelta(days=12),
        )
        result = first({"zip": "90011"})
        assert result.languages == ["en", "es", "zh"]
        assert result.hours_today == "9:00 AM–5:00 PM" and result.open_now
        assert (result.capacity_label, result.capacity_updated) == ("Waiting list", "12 days ago")
        assert not result.stale

    def test_a_listing_untouched_for_180_days_is_stale(self, world):
        old = NOW - timedelta(days=200)
        add(world, "Old pantry", "90011", last_modified=old, capacity_updated_at=old)
        result = first({"zip": "90011"})
        assert result.stale and result.capacity_updated == "6 months ago"

    def test_more_results_than_a_page_are_announced(self, world):
        for n in range(3):
            add(world, f"Pantry {n}", "90011")
        page = search_services(db.session(), parse_search({"zip": "90011"}), now=NOW, limit=2)
        assert len(page.results) == 2 and page.more


class TestBadInput:
    @pytest.mark.parametrize(
        ("values", "field", "message"),
        [
            ({"zip": "00000"}, "zip", "ZIP code 00000 does not exist"),
            ({"zip": "9001"}, "zip", "use five digits"),
            ({"zip": "90011", "radius": "0"}, "radius", "from 1 to 100"),
            ({"zip": "90011", "radius": "101"}, "radius", "from 1 to 100"),
            ({"zip": "90011", "radius": "far"}, "radius", "from 1 to 100"),
            # digits 0-9 only: float() reads each of these as a number of miles
            ({"zip": "90011", "radius": "٣٣"}, "radius", "from 1 to 100"),
            ({"zip": "90011", "radius": "1_0"}, "radius", "from 1 to 100"),
            ({"zip": "90011", "radius": "1e1"}, "radius", "from 1 to 100"),
            # PostgreSQL text cannot hold a NUL: no service could match it
            ({"q": "food\x00"}, "q", "cannot contain the NUL character"),
            ({"age": "-3"}, "age", "from 0 to 120"),
            ({"age": "200"}, "age", "from 0 to 120"),
            ({"need": "happiness"}, "need", "not a need we know"),
            ({"language": "Spanish!"}, "language", "Choose a language"),
        ],
    )
    @pytest.mark.pure
    def test_each_bad_field_gets_a_message(self, values, field, message):
        with pytest.raises(InvalidInput) as err:
            parse_search(values)
        assert message in " ".join(err.value.fields[field])

    @pytest.mark.pure
    def test_every_bad_field_is_reported_at_once(self):
        with pytest.raises(InvalidInput) as err:
            parse_search({"zip": "00000", "radius": "500", "age": "x"})
        assert set(err.value.fields) == {"zip", "radius", "age"}
        assert err.value.message == "Check the age, radius and ZIP code."


@pytest.mark.pure
class TestHours:
    def test_weekly_daily_and_overnight_hours(self):
        schedules = [
            Schedule(freq="WEEKLY", byday="MO,WE", opens_at="09:00", closes_at="12:00"),
            Schedule(freq="WEEKLY", byday="FR", opens_at="22:00-08:00", closes_at="02:00"),
            Schedule(freq="MONTHLY", bymonthday="1", opens_at="09:00", closes_at="10:00"),
            Schedule(freq="WEEKLY", byday="TU", opens_at=None, closes_at="10:00"),
        ]
        assert weekly_hours(schedules) == [
            (0, 540, 720),
            (2, 540, 720),
            (4, 1320, 1440),
            (5, 0, 120),
        ]
        daily = weekly_hours([Schedule(freq="DAILY", opens_at="00:00", closes_at="24:00")])
        assert len(daily) == 7 and hours_label(daily, 3) == "Open 24 hours"

    def test_labels_for_people(self):
        hours = [(0, 540, 720), (0, 780, 1020), (4, 1320, 1440)]
        assert hours_label(hours, 0) == "9:00 AM–12:00 PM, 1:00 PM–5:00 PM"
        assert hours_label(hours, 4) == "10:00 PM–midnight"
        assert hours_label(hours, 1) == "Closed today"
        assert hours_label([], 1) == "Hours not listed"


def test_reindexing_rewrites_the_search_rows_from_the_directory(world, app):
    add(world, "Pantry", "90011")
    session = db.session()
    before = session.scalar(select(func.count(SearchRow.id)))
    session.execute(delete(SearchRow))
    session.commit()
    assert names({"zip": "90011"}) == []
    result = CliRunner().invoke(app.cli, ["reindex-directory"])
    assert result.exit_code == 0 and "Search rows rewritten for 5 services." in result.output
    assert session.scalar(select(func.count(SearchRow.id))) == before
    assert names({"zip": "90011"}) == ["Pantry"]


def test_round_the_clock_schedules_are_open_all_day():
    from referrals.directory.models import Schedule
    from referrals.directory.search import weekly_hours

    for closes in ("00:00", "23:59"):
        hours = weekly_hours(
            [Schedule(freq="WEEKLY", byday="MO", opens_at="00:00", closes_at=closes)]
        )
        assert hours == [(0, 0, 1440)]
