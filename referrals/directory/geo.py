"""Places, offline: the centroid of a US ZIP code (from the `zipcodes` package, which bundles the
USPS list with latitudes and longitudes), great-circle distances in miles, and the bounding box
that a radius fits in, which the search uses as an index-friendly prefilter. Pure: no database,
no network."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

import zipcodes

from referrals.errors import InvalidInput

EARTH_RADIUS_MILES = 3958.7613
MILES_PER_DEGREE_LATITUDE = EARTH_RADIUS_MILES * math.pi / 180  # about 69.1
ZIP_RE = re.compile(r"^\d{5}$")


@dataclass(frozen=True)
class Point:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Zip:
    code: str
    city: str
    county: str
    state: str
    point: Point


@dataclass(frozen=True)
class BoundingBox:
    south: float
    north: float
    west: float
    east: float

    def contains(self, point: Point) -> bool:
        return (
            self.south <= point.latitude <= self.north and self.west <= point.longitude <= self.east
        )


@cache
def _zip_table() -> dict[str, Zip]:
    """Every US ZIP code that has a centroid, read once from the bundled list."""
    table = {}
    for row in zipcodes.list_all():
        if not row.get("lat") or not row.get("long"):
            continue
        table[row["zip_code"]] = Zip(
            code=row["zip_code"],
            city=row["city"].title(),
            county=row.get("county") or "",
            state=row["state"],
            point=Point(float(row["lat"]), float(row["long"])),
        )
    return table


def normalize_zip(value: str) -> str:
    """The five-digit ZIP in what a person typed ("94110", " 94110-1234 "), or InvalidInput."""
    code = (value or "").strip().split("-")[0]
    if not ZIP_RE.match(code):
        raise InvalidInput(
            "Enter a ZIP code of five digits.",
            {"zip": [f"“{value.strip()}” is not a ZIP code: use five digits, like 94110."]},
        )
    return code


def lookup_zip(value: str) -> Zip:
    """The ZIP code a person typed, with its centroid; a clear error when it does not exist."""
    code = normalize_zip(value)
    found = _zip_table().get(code)
    if found is None:
        raise InvalidInput(
            "Unknown ZIP code.",
            {"zip": [f"ZIP code {code} does not exist (or has no location on record)."]},
        )
    return found


def zip_centroid(value: str) -> Point:
    """The centroid of a ZIP code; InvalidInput when there is none."""
    return lookup_zip(value).point


def zips_in_state(state: str) -> list[Zip]:
    """Every ZIP code of a state that has a centroid, in code order."""
    return sorted((z for z in _zip_table().values() if z.state == state), key=lambda z: z.code)


def distance_miles(a: Point, b: Point) -> float:
    """Great-circle distance between two points (haversine), in miles."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))


def miles_per_degree_longitude(latitude: float) -> float:
    """How many miles one degree of longitude spans at a latitude."""
    return MILES_PER_DEGREE_LATITUDE * max(math.cos(math.radians(latitude)), 1e-6)


def bounding_box(center: Point, radius_miles: float) -> BoundingBox:
    """The smallest latitude/longitude box holding every point within `radius_miles` of
    `center` (away from the poles and the antimeridian, which California is)."""
    dlat = radius_miles / MILES_PER_DEGREE_LATITUDE
    # The circle is widest in longitude at the latitude nearer the pole.
    widest = max(abs(center.latitude - dlat), abs(center.latitude + dlat))
    dlon = radius_miles / miles_per_degree_longitude(min(widest, 89.0))
    return BoundingBox(
        south=center.latitude - dlat,
        north=center.latitude + dlat,
        west=center.longitude - dlon,
        east=center.longitude + dlon,
    )
