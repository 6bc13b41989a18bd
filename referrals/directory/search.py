"""Searching the directory: by need, words, place (ZIP + radius), language, the patient's age,
open now, accepting referrals and free of charge. The search page and the referral form both
call `search_services`.

The HSDS tables are normalised for exchange, not for search: answering "food, within 10 miles
of 90011, in Spanish" from them means joining five tables and reading JSON lists. So every
write to a service also writes its search rows (`refresh_search_rows`): one row per active
service × place × need, carrying what the filters read, indexed on (need, latitude,
longitude) so that a radius search reads only the rows in its bounding box. Opening hours are
kept beside them as (weekday, opens, closes) minutes of California time."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Select,
    String,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload

from referrals.db import Base, db, utcnow
from referrals.directory.geo import (
    MILES_PER_DEGREE_LATITUDE,
    Point,
    Zip,
    bounding_box,
    distance_miles,
    lookup_zip,
)
from referrals.directory.models import (
    CAPACITY_STATUSES,
    Address,
    Location,
    Schedule,
    Service,
    ServiceAtLocation,
)
from referrals.errors import InvalidInput
from referrals.terminology import CALIFORNIA, LANGUAGES, SDOH_CATEGORIES
from referrals.text_values import whole_number

MIN_RADIUS_MILES = 1
MAX_RADIUS_MILES = 100
DEFAULT_RADIUS_MILES = 10
MAX_AGE = 120
PAGE_SIZE = 25
UNSPECIFIED_NEED = "sdoh-category-unspecified"
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # iCalendar BYDAY, Monday first
MINUTES_PER_DAY = 24 * 60
# The fields of a search form, as the pages name them.
SEARCH_FIELDS = ("need", "q", "zip", "radius", "language", "age", "open_now", "accepting", "free")


class SearchRow(Base):
    """One active service at one place for one need: what the search filters read."""

    __tablename__ = "directory_search_rows"
    __table_args__ = (
        Index("ix_directory_search_rows_place", "category", "latitude", "longitude"),
        # For a place searched without a need (a ZIP typed first, as people do).
        Index("ix_directory_search_rows_point", "latitude", "longitude"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE")
    )
    category: Mapped[str] = mapped_column(String(64))
    # None for a service with no known place (virtual, or an address without a known ZIP).
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    languages: Mapped[str] = mapped_column(String(400), default="")  # "|en|es|"
    minimum_age: Mapped[int | None]
    maximum_age: Mapped[int | None]
    accepting: Mapped[bool]  # capacity is anything but no-capacity
    free: Mapped[bool]
    sort_name: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text, default="")  # lower-case words free text matches


class SearchHours(Base):
    """When a service is open: a weekday (0 = Monday) and minutes after midnight, California
    time; an interval past midnight is split at it."""

    __tablename__ = "directory_search_hours"
    __table_args__ = (
        Index("ix_directory_search_hours_open", "service_id", "weekday", "opens", "closes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    weekday: Mapped[int]
    opens: Mapped[int]
    closes: Mapped[int]


# --- pure rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectorySearch:
    """A valid search: every field is optional, `origin` comes with `radius_miles`."""

    need: str | None = None
    text: str = ""
    origin: Zip | None = None
    radius_miles: float = DEFAULT_RADIUS_MILES
    language: str | None = None
    age: int | None = None
    open_now: bool = False
    accepting: bool = False
    free: bool = False

    @property
    def is_empty(self) -> bool:
        return not (
            self.need
            or self.words
            or self.origin
            or self.language
            or self.age is not None
            or self.open_now
            or self.accepting
            or self.free
        )

    @property
    def words(self) -> list[str]:
        return [w for w in re.split(r"\s+", self.text.strip().lower()) if w][:6]


_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")

FIELD_NAMES = {
    "need": "need",
    "q": "words",
    "zip": "ZIP code",
    "radius": "radius",
    "language": "language",
    "age": "age",
}


def _checked(value: object) -> bool:
    return str(value or "").lower() in {"1", "y", "yes", "on", "true"}


def parse_search(values: Mapping[str, str]) -> DirectorySearch:
    """A search from a form's fields (need, q, zip, radius, language, age, open_now,
    accepting, free); InvalidInput naming every field that is wrong, and why."""
    errors: dict[str, list[str]] = {}
    need = (values.get("need") or values.get("category") or "").strip() or None
    if need and need not in SDOH_CATEGORIES:
        errors["need"] = [f"“{need}” is not a need we know: choose one from the list."]
    text = (values.get("q") or "").strip()[:200]
    if "\x00" in text:  # PostgreSQL text cannot hold it: no service could match
        errors["q"] = ["Words cannot contain the NUL character."]
    language = (values.get("language") or "").strip().lower() or None
    if language and not re.fullmatch(r"[a-z]{2,3}", language):
        errors["language"] = ["Choose a language from the list."]

    age = None
    raw_age = (values.get("age") or "").strip()
    if raw_age:
        age = whole_number(raw_age, MAX_AGE + 1)
        if age is None or age > MAX_AGE:
            age = None
            errors["age"] = [f"Age is a whole number of years from 0 to {MAX_AGE}."]

    radius = float(DEFAULT_RADIUS_MILES)
    raw_radius = (values.get("radius") or "").strip()
    if raw_radius:
        # Digits 0-9 and a decimal point only: float() also reads "٣", "1_0", "1e1" and "nan".
        radius = float(raw_radius) if _DECIMAL.fullmatch(raw_radius) else math.nan
        if not MIN_RADIUS_MILES <= radius <= MAX_RADIUS_MILES:  # also refuses nan
            errors["radius"] = [
                f"Radius is a number of miles from {MIN_RADIUS_MILES} to {MAX_RADIUS_MILES}."
            ]

    origin = None
    raw_zip = (values.get("zip") or "").strip()
    if raw_zip:
        try:
            origin = lookup_zip(raw_zip)
        except InvalidInput as err:
            errors.update(err.fields)

    if errors:
        named = [FIELD_NAMES[name] for name in errors]
        listed = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]
        raise InvalidInput(f"Check the {listed}.", errors)
    return DirectorySearch(
        need=need,
        text=text,
        origin=origin,
        radius_miles=radius,
        language=language,
        age=age,
        open_now=_checked(values.get("open_now")),
        accepting=_checked(values.get("accepting")),
        free=_checked(values.get("free")),
    )


def encode_languages(codes: Iterable[str]) -> str:
    """Language codes as one string a LIKE can match a whole code in: "|en|es|"."""
    codes = sorted({c.strip().lower() for c in codes if c and c.strip()})
    return "|" + "|".join(codes) + "|" if codes else ""


def search_text(*parts: str | None) -> str:
    """The lower-case text that free-text search matches."""
    return " ".join(p.strip().lower() for p in parts if p and p.strip())


_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})")


def _minutes(value: str | None) -> int | None:
    match = _TIME_RE.match(value or "")
    if not match:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def weekly_hours(schedules: Iterable[Schedule]) -> list[tuple[int, int, int]]:
    """(weekday, opens, closes) in minutes from HSDS schedules: weekly ones with BYDAY (or
    daily ones) and opening and closing times. Other rules (monthly, by date) cannot be
    answered as "open now" and are left to their description."""
    intervals: set[tuple[int, int, int]] = set()
    for schedule in schedules:
        freq = (schedule.freq or "WEEKLY").upper()
        opens, closes = _minutes(schedule.opens_at), _minutes(schedule.closes_at)
        if opens is None or closes is None:
            continue
        if opens == closes == 0 or (opens == 0 and closes == MINUTES_PER_DAY - 1):
            closes = MINUTES_PER_DAY  # 00:00-00:00 or 00:00-23:59: round the clock
        elif opens == closes:
            continue
        if freq == "DAILY":
            days = range(7)
        elif freq == "WEEKLY" and schedule.byday:
            names = [d.strip().upper()[-2:] for d in schedule.byday.split(",")]
            days = [WEEKDAYS.index(d) for d in names if d in WEEKDAYS]
        else:
            continue
        for day in days:
            if closes > opens:
                intervals.add((day, opens, closes))
            else:  # open past midnight
                intervals.add((day, opens, MINUTES_PER_DAY))
                if closes:
                    intervals.add(((day + 1) % 7, 0, closes))
    return sorted(intervals)


def _clock(minutes: int) -> str:
    hour, minute = divmod(minutes % MINUTES_PER_DAY, 60)
    suffix = "AM" if hour < 12 else "PM"
    return f"{hour % 12 or 12}:{minute:02d} {suffix}"


def hours_label(intervals: Iterable[tuple[int, int, int]], weekday: int) -> str:
    """A day's opening hours for people: "9:00 AM–5:00 PM", "Closed today", or "Hours not
    listed" when the service published none."""
    intervals = list(intervals)
    if not intervals:
        return "Hours not listed"
    today = sorted((o, c) for d, o, c in intervals if d == weekday)
    if not today:
        return "Closed today"
    if (0, MINUTES_PER_DAY) in today:
        return "Open 24 hours"
    parts = []
    for opens, closes in today:
        end = "midnight" if closes == MINUTES_PER_DAY else _clock(closes)
        parts.append(f"{_clock(opens)}–{end}")
    return ", ".join(parts)


def is_open(intervals: Iterable[tuple[int, int, int]], weekday: int, minute: int) -> bool:
    return any(d == weekday and o <= minute < c for d, o, c in intervals)


def age_in_words(then: datetime | None, now: datetime) -> str:
    """How long ago, for people: "today", "yesterday", "12 days ago", "7 months ago"."""
    if then is None:
        return "never"
    days = max(0, (now - then).days)
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 60:
        return f"{days} days ago"
    if days < 730:
        return f"{days // 30} months ago"
    return f"{days // 365} years ago"


# --- keeping the search rows --------------------------------------------------------------------


def _places(service: Service) -> list[tuple[uuid.UUID | None, Point | None]]:
    """Where a service is delivered: each location with its coordinates, or the centroid of
    its physical address's ZIP when the location has none."""
    places: list[tuple[uuid.UUID | None, Point | None]] = []
    for link in service.service_at_locations:
        location: Location = link.location
        if location.latitude is not None and location.longitude is not None:
            point = Point(location.latitude, location.longitude)
        else:
            point = _address_point(location.addresses)
        places.append((location.id, point))
    return places or [(None, None)]


def _address_point(addresses: list[Address]) -> Point | None:
    for address in addresses:
        if address.address_type == "physical" and address.postal_code:
            try:
                return lookup_zip(address.postal_code).point
            except InvalidInput:
                return None
    return None


def search_row_values(
    *,
    service_id: uuid.UUID,
    name: str,
    organization_name: str,
    categories: Iterable[str],
    places: Iterable[tuple[uuid.UUID | None, Point | None]],
    language_codes: Iterable[str],
    minimum_age: int | None,
    maximum_age: int | None,
    capacity_status: str | None,
    free_of_charge: bool | None,
    alternate_name: str | None = None,
    description: str | None = None,
) -> list[dict]:
    """The search rows of one active service, as values for a bulk insert."""
    common = {
        "service_id": service_id,
        "languages": encode_languages(language_codes),
        "minimum_age": minimum_age,
        "maximum_age": maximum_age,
        "accepting": capacity_status != "no-capacity",
        "free": bool(free_of_charge),
        "sort_name": name.lower()[:300],
        "text": search_text(name, alternate_name, organization_name, description),
    }
    places = list(places)
    return [
        {
            **common,
            "category": category,
            "location_id": location_id,
            "latitude": point.latitude if point else None,
            "longitude": point.longitude if point else None,
        }
        for category in (list(categories) or [UNSPECIFIED_NEED])
        for location_id, point in places
    ]


def hours_values(service_id: uuid.UUID, schedules: Iterable[Schedule]) -> list[dict]:
    return [
        {"service_id": service_id, "weekday": d, "opens": o, "closes": c}
        for d, o, c in weekly_hours(schedules)
    ]


def _schedules(service: Service) -> list[Schedule]:
    """A service's own schedules, or else those of the service at its places, or else those
    of the places themselves."""
    if service.schedules:
        return list(service.schedules)
    at_places = [s for link in service.service_at_locations for s in link.schedules]
    if at_places:
        return at_places
    return [s for link in service.service_at_locations for s in link.location.schedules]


# What refresh_search_rows reads, loaded in bulk by the writers that refresh many services.
SEARCH_LOADS = (
    selectinload(Service.schedules),
    selectinload(Service.service_at_locations).selectinload(ServiceAtLocation.schedules),
    selectinload(Service.service_at_locations)
    .joinedload(ServiceAtLocation.location)
    .selectinload(Location.addresses),
    selectinload(Service.service_at_locations)
    .joinedload(ServiceAtLocation.location)
    .selectinload(Location.schedules),
)


def refresh_search_rows(session: Session, service: Service) -> None:
    """Rewrite a service's search rows and hours from the service as it is now; every writer
    of services calls this in its own transaction (after a flush). Inactive services have none."""
    session.execute(delete(SearchRow).where(SearchRow.service_id == service.id))
    session.execute(delete(SearchHours).where(SearchHours.service_id == service.id))
    if not service.active:
        return
    rows = search_row_values(
        service_id=service.id,
        name=service.name,
        alternate_name=service.alternate_name,
        organization_name=service.organization.name if service.organization else "",
        description=service.description,
        categories=service.categories or [],
        places=_places(service),
        language_codes=service.language_codes or [],
        minimum_age=service.minimum_age,
        maximum_age=service.maximum_age,
        capacity_status=service.capacity_status,
        free_of_charge=service.free_of_charge,
    )
    session.execute(insert(SearchRow), rows)
    hours = hours_values(service.id, _schedules(service))
    if hours:
        session.execute(insert(SearchHours), hours)


def rebuild_search_rows(session: Session, batch: int = 500) -> int:
    """Rewrite the search rows of every service (after a bulk import or this migration);
    returns how many services were read."""
    session.execute(delete(SearchRow))
    session.execute(delete(SearchHours))
    ids = list(session.scalars(select(Service.id).order_by(Service.id)))
    for start in range(0, len(ids), batch):
        services = session.scalars(
            select(Service).where(Service.id.in_(ids[start : start + batch])).options(*SEARCH_LOADS)
        )
        for service in services:
            refresh_search_rows(session, service)
        session.flush()
        session.expunge_all()
    return len(ids)


# --- searching ------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """A service as a result: what a person needs to choose it."""

    service: Service
    distance_miles: float | None
    address: Address | None
    languages: list[str]
    hours_today: str
    open_now: bool
    capacity_status: str | None
    capacity_updated: str
    stale: bool

    @property
    def capacity_label(self) -> str:
        if self.capacity_status is None:
            return "Capacity not reported"
        return CAPACITY_STATUSES.get(self.capacity_status, self.capacity_status)

    @property
    def accepting(self) -> bool:
        return self.capacity_status != "no-capacity"


@dataclass
class SearchPage:
    search: DirectorySearch
    results: list[SearchResult] = field(default_factory=list)
    more: bool = False  # there are results beyond this page


def _filters(search: DirectorySearch, now: datetime) -> list:
    conditions: list = []
    row = SearchRow
    if search.need:
        conditions.append(row.category == search.need)
    if search.language:
        conditions.append(row.languages.contains(f"|{search.language}|"))
    if search.age is not None:
        conditions.append(or_(row.minimum_age.is_(None), row.minimum_age <= search.age))
        conditions.append(or_(row.maximum_age.is_(None), row.maximum_age >= search.age))
    if search.accepting:
        conditions.append(row.accepting.is_(True))
    if search.free:
        conditions.append(row.free.is_(True))
    for word in search.words:
        conditions.append(row.text.contains(word, autoescape=True))
    if search.open_now:
        local = now.astimezone(CALIFORNIA)
        minute = local.hour * 60 + local.minute
        conditions.append(
            exists().where(
                SearchHours.service_id == row.service_id,
                SearchHours.weekday == local.weekday(),
                SearchHours.opens <= minute,
                SearchHours.closes > minute,
            )
        )
    return conditions


def _squared_distance(origin: Point) -> ColumnElement[float]:
    """Squared distance in degrees of latitude on a local flat map (equirectangular): plain
    arithmetic every database has, within a fraction of a percent of the great circle at the
    radii people search."""
    k = math.cos(math.radians(origin.latitude))
    dlat = SearchRow.latitude - origin.latitude
    dlon = (SearchRow.longitude - origin.longitude) * k
    return dlat * dlat + dlon * dlon


def ranked_services(search: DirectorySearch, now: datetime, limit: int) -> Select:
    """The query behind a search: (service id, rank) of matching active services, best first
    (nearest, or by name), one row per service."""
    conditions = _filters(search, now)
    if search.origin is not None:
        origin = search.origin.point
        box = bounding_box(origin, search.radius_miles)
        within = (search.radius_miles / MILES_PER_DEGREE_LATITUDE) ** 2
        distance = _squared_distance(origin)
        # The box lets the index on (need, latitude, longitude) read only nearby rows.
        conditions += [
            SearchRow.latitude.between(box.south, box.north),
            SearchRow.longitude.between(box.west, box.east),
            distance <= within,
        ]
        rank = func.min(distance)
    else:
        rank = func.min(SearchRow.sort_name)
    return (
        select(SearchRow.service_id, rank.label("rank"))
        .where(and_(*conditions))
        .group_by(SearchRow.service_id)
        .order_by(rank, SearchRow.service_id)
        .limit(limit)
    )


def search_services(
    session: Session,
    search: DirectorySearch,
    *,
    now: datetime | None = None,
    limit: int = PAGE_SIZE,
) -> SearchPage:
    """Active services matching the search: nearest first when a ZIP is given, else by name;
    at most `limit`, with `more` set when there are others."""
    now = now or utcnow()
    page = SearchPage(search)
    if search.is_empty:
        return page
    ranked = session.execute(ranked_services(search, now, limit + 1)).all()
    page.more = len(ranked) > limit
    ids = [service_id for service_id, _ in ranked[:limit]]
    page.results = _results(session, ids, search, now)
    return page


def _results(
    session: Session, ids: list[uuid.UUID], search: DirectorySearch, now: datetime
) -> list[SearchResult]:
    if not ids:
        return []
    services = {
        s.id: s
        for s in session.scalars(
            select(Service)
            .where(Service.id.in_(ids))
            .options(
                selectinload(Service.service_at_locations)
                .joinedload(ServiceAtLocation.location)
                .selectinload(Location.addresses)
            )
        )
    }
    hours: dict[uuid.UUID, list[tuple[int, int, int]]] = {i: [] for i in ids}
    for h in session.scalars(select(SearchHours).where(SearchHours.service_id.in_(ids))):
        hours[h.service_id].append((h.weekday, h.opens, h.closes))
    places: dict[uuid.UUID, list[tuple[uuid.UUID | None, Point | None]]] = {i: [] for i in ids}
    for service_id, location_id, lat, lon in session.execute(
        select(SearchRow.service_id, SearchRow.location_id, SearchRow.latitude, SearchRow.longitude)
        .where(SearchRow.service_id.in_(ids))
        .distinct()
    ):
        point = Point(lat, lon) if lat is not None and lon is not None else None
        places[service_id].append((location_id, point))

    # Imported here: listings (the other writer of services) refresh search rows from this module.
    from referrals.directory.listing import is_stale

    local = now.astimezone(CALIFORNIA)
    minute = local.hour * 60 + local.minute
    results = []
    for service_id in ids:
        service = services[service_id]
        distance, location_id = _nearest(places[service_id], search.origin)
        results.append(
            SearchResult(
                service=service,
                distance_miles=distance,
                address=_address_of(service, location_id),
                languages=sorted(service.language_codes or [], key=_language_order),
                hours_today=hours_label(hours[service_id], local.weekday()),
                open_now=is_open(hours[service_id], local.weekday(), minute),
                capacity_status=service.capacity_status,
                capacity_updated=age_in_words(service.capacity_updated_at, now),
                stale=is_stale(service, now),
            )
        )
    return results


def _language_order(code: str) -> tuple[int, str]:
    order = list(LANGUAGES)
    return (order.index(code) if code in order else len(order), code)


def _nearest(
    places: list[tuple[uuid.UUID | None, Point | None]], origin: Zip | None
) -> tuple[float | None, uuid.UUID | None]:
    located = [(loc, p) for loc, p in places if p is not None]
    if origin is None or not located:
        return None, (places[0][0] if places else None)
    location_id, point = min(located, key=lambda place: distance_miles(origin.point, place[1]))
    return distance_miles(origin.point, point), location_id


def _address_of(service: Service, location_id: uuid.UUID | None) -> Address | None:
    for link in service.service_at_locations:
        if location_id is None or link.location_id == location_id:
            for address in link.location.addresses:
                if address.address_type == "physical":
                    return address
    return None


@dataclass
class SearchOutcome:
    """What a search form gets back: a page of results, or the errors to show; and, when asked
    for, services that match all but the language (for a family that also speaks another)."""

    page: SearchPage | None
    errors: dict[str, list[str]] = field(default_factory=dict)
    message: str | None = None
    other_languages: list[SearchResult] = field(default_factory=list)


def run_search(
    values: Mapping[str, str], *, limit: int = PAGE_SIZE, other_languages: bool = False
) -> SearchOutcome:
    """Parse a search form and run it: what both the directory page and the referral form call."""
    try:
        search = parse_search(values)
    except InvalidInput as err:
        return SearchOutcome(None, err.fields, err.message)
    session = db.session()
    outcome = SearchOutcome(search_services(session, search, limit=limit))
    if other_languages and search.language:
        shown = {r.service.id for r in outcome.page.results}
        wider = search_services(session, replace(search, language=None), limit=limit)
        outcome.other_languages = [r for r in wider.results if r.service.id not in shown]
    return outcome
