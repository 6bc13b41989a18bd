"""The synthetic California directory: every county and need, realistic variety, searchable."""

from __future__ import annotations

from collections import Counter

from click.testing import CliRunner
from sqlalchemy import func, select

from referrals.auth.models import Organization
from referrals.db import db
from referrals.directory.generate import generate_directory
from referrals.directory.models import Schedule, Service
from referrals.directory.search import SearchRow, parse_search, search_services
from referrals.terminology import SDOH_CATEGORIES


def test_a_small_directory_covers_every_county_and_need(world):
    made = generate_directory(db.session(), 600, seed=7)
    session = db.session()
    assert made.services == 600 and len(made.counties) == 58
    assert made.categories == set(SDOH_CATEGORIES)
    services = session.scalars(select(Service).where(Service.name != "")).all()
    generated = [s for s in services if s.organization.kind == "cbo" and "#" in s.organization.name]
    assert len(generated) == 600
    languages = Counter(code for s in generated for code in s.language_codes)
    assert {"en", "es", "zh", "vi"} <= set(languages) and languages["es"] > languages["zh"]
    assert Counter(s.capacity_status for s in generated).keys() >= {
        "capacity",
        "waitlist",
        "no-capacity",
    }
    assert 0 < sum(bool(s.free_of_charge) for s in generated) < 600
    assert session.scalar(select(func.count(Schedule.id))) > 300
    # Every active service has search rows, inactive ones none.
    active = {s.id for s in generated if s.active}
    indexed = set(session.scalars(select(SearchRow.service_id).distinct()))
    assert active <= indexed and not (indexed - active - {s.id for s in world.services.values()})


def test_the_same_seed_gives_the_same_directory(world):
    generate_directory(db.session(), 50, seed=3)
    generate_directory(db.session(), 50, seed=3)
    rows = db.session().execute(
        select(Organization.name, Service.name, Service.language_codes, Service.minimum_age)
        .join(Service.organization)
        .where(Organization.name.contains("#"))
    )
    counts = Counter((org, name, tuple(langs), age) for org, name, langs, age in rows)
    assert sum(counts.values()) == 100 and set(counts.values()) == {2}
    organizations = select(func.count()).where(Organization.name.contains("#"))
    assert db.session().scalar(organizations) == 2 * 7  # eight services an organisation


def test_generated_services_are_found_by_the_search(world):
    generate_directory(db.session(), 2000, seed=1)
    page = search_services(
        db.session(), parse_search({"need": "food-insecurity", "zip": "90011", "radius": "25"})
    )
    assert page.results and all(r.distance_miles <= 25 for r in page.results)
    assert all("food-insecurity" in r.service.categories for r in page.results)
    distances = [r.distance_miles for r in page.results]
    assert distances == sorted(distances)


def test_the_command_reports_what_it_added(app):
    result = CliRunner().invoke(app.cli, ["gen-directory", "--services", "80", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "Added 80 services of 10 organisations" in result.output
    assert db.session().scalar(select(func.count(Service.id))) == 80
    result = CliRunner().invoke(app.cli, ["gen-directory", "--services", "0"])
    assert result.exit_code == 2 and "--services" in result.output


def test_a_generated_directory_exports_as_valid_hsds(world, tmp_path):
    from referrals.directory.hsds.exporter import export_json
    from referrals.directory.hsds.importer import import_hsds

    generate_directory(db.session(), 300, seed=11)
    db.session().commit()
    export_json(tmp_path / "out")
    db.session.remove()
    report = import_hsds(tmp_path / "out", dry_run=True)
    assert report.ok, report.lines()[:5]
    assert report.dataset.count("service") >= 300
