"""Places, offline: the centroid of a US ZIP code (from the `zipcodes` package, which bundles the
USPS list with latitudes and longitudes), great-circle distances in miles, and the bounding box
that a radius fits in, which the search uses as an index-friendly prefilter. Pure: no database,
no network."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import zipcodes

from referrals.errors import InvalidInput

EARTH_RADIUS_MILES = 3958.7613
MILES_PER_DEGREE_LATITUDE = EARTH_RADIUS_MILES * math.pi / 180  # about 69.1
ZIP_RE = re.compile(r"^[0-9]{5}$")  # not \d: "٦٦٦٦٦" is no ZIP code


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


def _zip(row: dict) -> Zip | None:
    if not row.get("lat") or not row.get("long"):
        return None
    return Zip(
        code=row["zip_code"],
        city=row["city"].title(),
        county=row.get("county") or "",
        state=row["state"],
        point=Point(float(row["lat"]), float(row["long"])),
    )


@lru_cache(maxsize=4096)
def _find_zip(code: str) -> Zip | None:
    """A ZIP code with a centroid, asked of the bundled list one at a time: the list stays in
    the compiled extension's memory, shared by every process, instead of 42,000 Python dicts
    (150 MiB) in each (`zipcodes.list_all()` keeps them for good)."""
    for row in zipcodes.matching(code):
        found = _zip(row)
        if found is not None:
            return found
    return None


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
    found = _find_zip(code)
    if found is None:
        raise InvalidInput(
            "Unknown ZIP code.",
            {"zip": [f"ZIP code {code} does not exist (or has no location on record)."]},
        )
    return found


HOME_STATE = "CA"  # the directory and the families it serves are California's
STATE_NAMES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "the District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota",
    "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "AS": "American Samoa", "GU": "Guam", "MP": "the Northern Mariana Islands",
    "PR": "Puerto Rico", "VI": "the U.S. Virgin Islands", "FM": "Micronesia",
    "MH": "the Marshall Islands", "PW": "Palau",
    "AA": "the Armed Forces Americas", "AE": "the Armed Forces Europe",
    "AP": "the Armed Forces Pacific",
}  # fmt: skip


@dataclass(frozen=True)
class ZipCheck:
    """What the rule makes of a typed ZIP code: refused (`refusal` says why), to be confirmed
    first (`question` asks), or taken (`code`, five digits, and its `place`)."""

    code: str = ""
    place: Zip | None = None
    refusal: str = ""
    question: str = ""

    @property
    def taken(self) -> bool:
        return not self.refusal and not self.question

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.place.state, self.place.state) if self.place else ""


def check_zip(typed: str, confirmed: Iterable[str] = ()) -> ZipCheck:
    """The one rule for a ZIP code, wherever a person or a partner gives one: a ZIP that is not
    five digits, or that does not exist, is refused; one outside California is taken only once
    confirmed (`confirmed`: codes the person confirmed, or the one already on record), since
    families near a state line and services just across it exist."""
    try:
        place = lookup_zip(typed)
    except InvalidInput as err:
        return ZipCheck(code="", refusal=err.fields["zip"][0])
    check = ZipCheck(code=place.code, place=place)
    sure = {c.strip().split("-")[0] for c in confirmed if c}
    if place.state == HOME_STATE or place.code in sure:
        return check
    return ZipCheck(
        code=place.code,
        place=place,
        question=f"{place.code} is in {check.state_name}, not California: "
        "confirm to save it there.",
    )


def zip_centroid(value: str) -> Point:
    """The centroid of a ZIP code; InvalidInput when there is none."""
    return lookup_zip(value).point


def zips_in_state(state: str) -> list[Zip]:
    """Every ZIP code of a state that has a centroid, in code order."""
    return list(_zips_in_state(state))


@cache
def _zips_in_state(state: str) -> tuple[Zip, ...]:
    found = (_zip(row) for row in zipcodes.filter_by(state=state))
    return tuple(sorted((z for z in found if z is not None), key=lambda z: z.code))


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
