"""A synthetic, realistic California directory for demos and benchmarks (`flask gen-directory`):
community organisations in every one of the 58 counties (more where there are more ZIP codes),
services for every SDOH domain in the languages Californians speak, with ages, schedules,
capacity reports of every age, some free, some stale. Rows are written in bulk (Core inserts,
one transaction per batch), search rows included, so 100,000 services take minutes, not hours.
Nothing here is real: names, streets and phone numbers are made up (555 numbers)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import insert
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.models import Organization
from referrals.db import utcnow
from referrals.directory.geo import Point, Zip, zips_in_state
from referrals.directory.models import (
    Address,
    CostOption,
    Language,
    Location,
    Phone,
    Schedule,
    Service,
    ServiceAtLocation,
)
from referrals.directory.search import SearchHours, SearchRow, hours_values, search_row_values
from referrals.terminology import LANGUAGES, SDOH_CATEGORIES

SERVICES_PER_ORGANIZATION = 8
T = TypeVar("T")

# What a community organisation offers for each domain, and the SNOMED CT code it performs.
OFFERS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "food-insecurity": (
        (
            "Food pantry",
            "Emergency food boxes",
            "Home-delivered meals",
            "CalFresh application help",
            "Free produce market",
        ),
        "710925007",
        "Provision of food",
    ),
    "housing-instability": (
        ("Rental assistance", "Eviction prevention", "Housing navigation", "Tenant rights clinic"),
        "710911006",
        "Referral to housing service",
    ),
    "homelessness": (
        ("Emergency shelter", "Street outreach", "Rapid rehousing", "Family shelter beds"),
        "710911006",
        "Referral to housing service",
    ),
    "inadequate-housing": (
        ("Home repair program", "Lead and mold remediation", "Weatherization"),
        "410606002",
        "Social service procedure",
    ),
    "transportation-insecurity": (
        ("Rides to medical appointments", "Transit pass program", "Volunteer driver program"),
        "710929001",
        "Assistance with application for transportation services",
    ),
    "financial-insecurity": (
        ("Free tax preparation", "Financial coaching", "Emergency cash assistance"),
        "410606002",
        "Social service procedure",
    ),
    "material-hardship": (
        ("Diaper bank", "Clothing closet", "Furniture bank", "School supplies drive"),
        "410606002",
        "Social service procedure",
    ),
    "educational-attainment": (
        ("GED preparation", "Adult literacy classes", "Tutoring for students", "ESL classes"),
        "410606002",
        "Social service procedure",
    ),
    "employment-status": (
        ("Job readiness training", "Career center", "Youth employment program"),
        "410606002",
        "Social service procedure",
    ),
    "veteran-status": (
        ("Veteran services office", "Veteran peer support", "VA benefits help"),
        "410606002",
        "Social service procedure",
    ),
    "stress": (
        ("Counseling", "Parent support group", "Peer warmline", "Mindfulness classes"),
        "409063005",
        "Counseling",
    ),
    "social-connection": (
        ("Senior center activities", "Friendly visitor program", "Youth mentoring"),
        "410606002",
        "Social service procedure",
    ),
    "intimate-partner-violence": (
        (
            "Domestic violence hotline and shelter",
            "Legal advocacy for survivors",
            "Safety planning",
        ),
        "409063005",
        "Counseling",
    ),
    "elder-abuse": (
        ("Adult protective services liaison", "Elder abuse prevention"),
        "410606002",
        "Social service procedure",
    ),
    "personal-health-literacy": (
        ("Community health workers", "Diabetes education", "Health navigation"),
        "410606002",
        "Social service procedure",
    ),
    "health-insurance-coverage-status": (
        ("Medi-Cal enrollment help", "Covered California navigators"),
        "410606002",
        "Social service procedure",
    ),
    "medical-cost-burden": (
        ("Medical bill advocacy", "Prescription assistance"),
        "410606002",
        "Social service procedure",
    ),
    "digital-literacy": (
        ("Computer basics classes", "Digital skills for seniors"),
        "410606002",
        "Social service procedure",
    ),
    "digital-access": (
        ("Free laptops and hotspots", "Affordable internet enrollment"),
        "410606002",
        "Social service procedure",
    ),
    "utility-insecurity": (
        ("Utility bill assistance (LIHEAP)", "Water bill relief"),
        "410606002",
        "Social service procedure",
    ),
    "incarceration-status": (
        ("Reentry services", "Record expungement clinic"),
        "410606002",
        "Social service procedure",
    ),
    "language-access": (
        ("Interpretation services", "Translation help for families"),
        "410606002",
        "Social service procedure",
    ),
    "sdoh-category-unspecified": (
        ("Family resource center", "211 information and referral"),
        "410606002",
        "Social service procedure",
    ),
}
ORG_WORDS = (
    "Community Services",
    "Family Resource Center",
    "Community Action Partnership",
    "Food Bank",
    "Neighborhood Center",
    "Health Collaborative",
    "Youth Alliance",
    "Senior Services",
    "Housing Partners",
    "Mutual Aid Network",
    "Catholic Charities",
    "Community Clinic Outreach",
)
STREETS = (
    "Main St",
    "Oak Ave",
    "Mission Blvd",
    "El Camino Real",
    "Broadway",
    "1st St",
    "Park Ave",
    "Center St",
    "Washington Blvd",
    "Alameda St",
    "Pine St",
    "Lincoln Ave",
)
# (share of services, language) in the languages Californians speak at home.
LANGUAGE_SHARES = (
    (0.92, "en"),
    (0.55, "es"),
    (0.10, "zh"),
    (0.08, "vi"),
    (0.07, "tl"),
    (0.05, "ko"),
    (0.03, "hy"),
    (0.03, "ru"),
    (0.03, "fa"),
    (0.02, "ar"),
)
AGE_RANGES = ((0, 5), (0, 17), (5, 18), (12, 24), (18, None), (55, None), (60, None))
CAPACITY_SHARES: tuple[tuple[str | None, int], ...] = (
    ("capacity", 55),
    ("waitlist", 15),
    ("no-capacity", 12),
    ("additional-assessment-required", 5),
    (None, 13),
)
# Weekly schedules (freq, byday, opens, closes), all valid HSDS (freq WEEKLY or MONTHLY, times
# HH:MM): round the clock is every day 00:00-23:59; empty: none published.
SCHEDULE_PATTERNS: tuple[tuple[tuple[str, str, str, str], ...], ...] = (
    (("WEEKLY", "MO,TU,WE,TH,FR", "09:00", "17:00"),),
    (("WEEKLY", "MO,TU,WE,TH,FR", "08:00", "16:30"), ("WEEKLY", "SA", "10:00", "14:00")),
    (("WEEKLY", "TU,TH", "13:00", "19:00"),),
    (("WEEKLY", "MO,WE,FR", "10:00", "15:00"),),
    (("WEEKLY", "MO,TU,WE,TH,FR,SA,SU", "00:00", "23:59"),),
    (("WEEKLY", "FR,SA", "18:00", "02:00"),),
    (),
)


# Parents before children, for the foreign keys.
INSERT_ORDER = (
    Organization,
    Service,
    Language,
    Phone,
    CostOption,
    Location,
    Address,
    ServiceAtLocation,
    Schedule,
    SearchRow,
    SearchHours,
)


@dataclass
class Generated:
    organizations: int = 0
    services: int = 0
    counties: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)


def _california_zips() -> list[Zip]:
    return [z for z in zips_in_state("CA") if z.county]


def _near(rng: random.Random, point: Point, spread: float = 0.02) -> Point:
    return Point(
        round(point.latitude + rng.uniform(-spread, spread), 6),
        round(point.longitude + rng.uniform(-spread, spread), 6),
    )


def _weighted(rng: random.Random, shares: tuple[tuple[T, int], ...]) -> T:
    values, weights = zip(*shares, strict=True)
    return rng.choices(values, weights=weights)[0]


def _languages(rng: random.Random) -> list[str]:
    codes = [code for share, code in LANGUAGE_SHARES if rng.random() < share]
    return codes or ["es"]


def generate_directory(
    session: Session,
    services: int,
    *,
    seed: int = 0,
    now: datetime | None = None,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> Generated:
    """Add `services` synthetic services (and their organisations, kind "cbo") to the
    directory, committing every `batch` services; the same seed gives the same directory."""
    rng = random.Random(seed)
    now = now or utcnow()
    zips = _california_zips()
    by_county: dict[str, list[Zip]] = {}
    for z in zips:
        by_county.setdefault(z.county, []).append(z)
    counties = sorted(by_county)
    categories = list(SDOH_CATEGORIES)
    hours_by_pattern = [
        hours_values(uuid.UUID(int=0), [_schedule(*s) for s in pattern])
        for pattern in SCHEDULE_PATTERNS
    ]
    result = Generated()
    org_id: uuid.UUID | None = None
    org_name = ""
    org_home: Zip = zips[0]
    tables: dict[type, list[dict]] = {table: [] for table in INSERT_ORDER}

    def flush() -> None:
        for table, rows in tables.items():
            if rows:
                session.execute(insert(table), rows)
                rows.clear()
        session.commit()

    for n in range(services):
        # The first services cover every county and every domain; then places follow the
        # ZIP codes (more ZIPs, more people, more services).
        if n % SERVICES_PER_ORGANIZATION == 0:
            home = (
                rng.choice(by_county[counties[n // SERVICES_PER_ORGANIZATION]])
                if n // SERVICES_PER_ORGANIZATION < len(counties)
                else rng.choice(zips)
            )
            org_id, org_home = uuid.uuid4(), home
            org_name = f"{home.city} {rng.choice(ORG_WORDS)} #{result.organizations + 1}"
            tables[Organization].append(
                {
                    "id": org_id,
                    "name": org_name,
                    "kind": "cbo",
                    "hipaa_covered": False,
                    "phone": f"+1{rng.randint(200, 999)}555{rng.randint(1000, 1999)}",
                    "description": f"A community organisation serving {home.county}.",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            result.organizations += 1
        place = org_home if rng.random() < 0.6 else rng.choice(by_county[org_home.county])
        need = categories[n] if n < len(categories) else rng.choice(categories)
        needs = [need]
        if rng.random() < 0.3:
            needs.append(rng.choice([c for c in categories if c != need]))
        names, code, display = OFFERS[need]
        service_id = uuid.uuid4()
        languages = _languages(rng)
        min_age, max_age = rng.choice(AGE_RANGES) if rng.random() < 0.4 else (None, None)
        capacity = _weighted(rng, CAPACITY_SHARES)
        stale = rng.random() < 0.12
        last_modified = now - timedelta(
            days=rng.randint(181, 720) if stale else rng.randint(0, 170)
        )
        capacity_at = (
            None
            if capacity is None
            else now - timedelta(days=rng.randint(181, 400) if stale else rng.randint(0, 90))
        )
        free = rng.random() < 0.6
        active = rng.random() < 0.97
        name = rng.choice(names)
        description = f"{name} for residents of {place.county} and nearby communities."
        tables[Service].append(
            {
                "id": service_id,
                "organization_id": org_id,
                "name": name,
                "description": description,
                "status": "active" if active else "inactive",
                "minimum_age": min_age,
                "maximum_age": max_age,
                "fees_description": "Free" if free else "Sliding scale",
                "last_modified": last_modified,
                "categories": needs,
                "service_code": code,
                "service_display": display,
                "procedure_codes": [{"code": code, "display": display}],
                "accepts_electronic_referrals": True,
                "sensitive": need == "intimate-partner-violence",
                "capacity_status": capacity,
                "capacity_updated_at": capacity_at,
                "language_codes": languages,
                "free_of_charge": free,
                "created_at": last_modified,
            }
        )
        tables[Language].extend(
            {"id": uuid.uuid4(), "service_id": service_id, "code": c, "name": LANGUAGES[c][0]}
            for c in languages
        )
        tables[Phone].append(
            {
                "id": uuid.uuid4(),
                "service_id": service_id,
                "number": f"+1{rng.randint(200, 999)}555{rng.randint(2000, 9999)}",
                "type": "voice",
            }
        )
        if not free:
            tables[CostOption].append(
                {
                    "id": uuid.uuid4(),
                    "service_id": service_id,
                    "option": "Sliding scale by household income",
                    "currency": "USD",
                    "amount": float(rng.choice((5, 10, 20, 35))),
                }
            )
        places = []
        for zip_ in [place] + ([rng.choice(zips)] if rng.random() < 0.1 else []):
            location_id, point = uuid.uuid4(), _near(rng, zip_.point)
            places.append((location_id, point))
            tables[Location].append(
                {
                    "id": location_id,
                    "organization_id": org_id,
                    "location_type": "physical",
                    "name": f"{org_name}, {zip_.city}",
                    "latitude": point.latitude,
                    "longitude": point.longitude,
                }
            )
            tables[Address].append(
                {
                    "id": uuid.uuid4(),
                    "location_id": location_id,
                    "address_1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
                    "city": zip_.city,
                    "region": zip_.county,
                    "state_province": "CA",
                    "postal_code": zip_.code,
                    "country": "US",
                    "address_type": "physical",
                }
            )
            tables[ServiceAtLocation].append(
                {"id": uuid.uuid4(), "service_id": service_id, "location_id": location_id}
            )
            result.counties.add(zip_.county)
        pattern = rng.randrange(len(SCHEDULE_PATTERNS))
        tables[Schedule].extend(
            {
                "id": uuid.uuid4(),
                "service_id": service_id,
                "freq": freq,
                "byday": byday or None,
                "opens_at": opens,
                "closes_at": closes,
                "description": None,
            }
            for freq, byday, opens, closes in SCHEDULE_PATTERNS[pattern]
        )
        if active:
            tables[SearchRow].extend(
                search_row_values(
                    service_id=service_id,
                    name=name,
                    organization_name=org_name,
                    description=description,
                    categories=needs,
                    places=places,
                    language_codes=languages,
                    minimum_age=min_age,
                    maximum_age=max_age,
                    capacity_status=capacity,
                    free_of_charge=free,
                )
            )
            tables[SearchHours].extend(
                {**h, "service_id": service_id} for h in hours_by_pattern[pattern]
            )
        result.services += 1
        result.categories.update(needs)
        if result.services % batch == 0:
            flush()
            if progress:
                progress(batch)
    flush()
    if progress and result.services % batch:
        progress(result.services % batch)
    audit.record(
        session,
        Actor.system("gen-directory"),
        "directory.generate",
        "Service",
        detail={"services": result.services, "organizations": result.organizations, "seed": seed},
    )
    session.commit()
    return result


def _schedule(freq: str, byday: str, opens: str, closes: str) -> Schedule:
    return Schedule(freq=freq, byday=byday or None, opens_at=opens, closes_at=closes)
