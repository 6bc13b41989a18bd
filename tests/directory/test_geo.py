"""ZIP centroids offline, distances and the bounding box of a radius."""

from __future__ import annotations

import pytest

from referrals.directory.geo import (
    Point,
    bounding_box,
    distance_miles,
    lookup_zip,
    normalize_zip,
    zips_in_state,
)
from referrals.errors import InvalidInput

pytestmark = pytest.mark.pure

SAN_FRANCISCO = Point(37.7749, -122.4194)
LOS_ANGELES = Point(34.0522, -118.2437)


def test_a_california_zip_has_its_city_county_and_centroid():
    mission = lookup_zip("94110")
    assert (mission.city, mission.county, mission.state) == (
        "San Francisco",
        "San Francisco County",
        "CA",
    )
    assert distance_miles(mission.point, SAN_FRANCISCO) < 3


def test_zip_plus_four_and_spaces_are_accepted():
    assert normalize_zip(" 90011-1234 ") == "90011"


@pytest.mark.parametrize("typed", ["9411", "ABCDE", "941100", ""])
def test_what_is_not_a_zip_is_refused_with_a_message(typed):
    with pytest.raises(InvalidInput) as err:
        lookup_zip(typed)
    assert "five digits" in err.value.fields["zip"][0]


def test_a_zip_that_does_not_exist_is_named_in_the_error():
    with pytest.raises(InvalidInput) as err:
        lookup_zip("00000")
    assert err.value.fields["zip"] == [
        "ZIP code 00000 does not exist (or has no location on record)."
    ]


def test_every_california_county_has_zips_with_centroids():
    counties = {z.county for z in zips_in_state("CA") if z.county}
    assert len(counties) == 58
    assert {"Alpine County", "Los Angeles County", "Modoc County"} <= counties


def test_distance_between_san_francisco_and_los_angeles_is_about_347_miles():
    assert distance_miles(SAN_FRANCISCO, LOS_ANGELES) == pytest.approx(347.4, abs=1)
    assert distance_miles(LOS_ANGELES, LOS_ANGELES) == 0


@pytest.mark.parametrize("radius", [1, 10, 100])
def test_the_bounding_box_holds_the_whole_circle_and_little_more(radius):
    box = bounding_box(LOS_ANGELES, radius)
    # Points on the circle in every direction are inside the box...
    for dlat, dlon in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
        lat = LOS_ANGELES.latitude + dlat * (box.north - LOS_ANGELES.latitude) * 0.999
        lon = LOS_ANGELES.longitude + dlon * (box.east - LOS_ANGELES.longitude) * 0.999
        point = Point(lat, lon)
        assert box.contains(point)
        assert distance_miles(LOS_ANGELES, point) == pytest.approx(radius, rel=0.02)
    # ...and a point just outside a side is farther than the radius.
    outside = Point(box.north + 0.001, LOS_ANGELES.longitude)
    assert not box.contains(outside) and distance_miles(LOS_ANGELES, outside) > radius


def test_zip_codes_are_asked_of_the_extension_never_copied_whole_into_python() -> None:
    """`zipcodes.list_all()` keeps 42,000 dicts (about 150 MiB) in every process for good."""
    import zipcodes

    from referrals.directory import geo

    assert geo.lookup_zip("94601").city == "Oakland"
    assert len(geo.zips_in_state("CA")) > 2000
    with pytest.raises(InvalidInput):
        geo.lookup_zip("99999")
    assert zipcodes._zips_cache is None


@pytest.mark.parametrize("typed", ["٩٤٦٠١", "9460١", "９４６０１"])
def test_a_zip_code_is_five_digits_0_to_9(typed: str) -> None:
    with pytest.raises(InvalidInput, match="five digits"):
        lookup_zip(typed)
