"""Export, import and export again: nothing is lost, in either format."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from referrals.db import db, transaction
from referrals.directory.hsds.exporter import export_json, export_tabular
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.models import (
    Address,
    Attribute,
    Contact,
    CostOption,
    Language,
    Location,
    Phone,
    Program,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    Taxonomy,
    TaxonomyTerm,
)

EXAMPLES = Path(__file__).parent / "fixtures" / "hsds" / "examples"
DIRECTORY_TABLES = (
    Attribute,
    Language,
    Phone,
    Contact,
    Schedule,
    ServiceArea,
    CostOption,
    Address,
    ServiceAtLocation,
    Service,
    Location,
    Program,
    TaxonomyTerm,
    Taxonomy,
)


def wipe_directory() -> None:
    with transaction() as session:
        for model in DIRECTORY_TABLES:
            session.execute(delete(model))
    db.session.remove()


def enrich(world) -> None:
    """Give the world's food service what only our extension and HSDS children carry."""
    with transaction() as session:
        service = session.get(Service, world.services["food"].id)
        service.capacity_status = "waitlist"
        service.capacity_note = "About two weeks"
        service.capacity_updated_at = datetime(2026, 11, 1, 17, 30, tzinfo=UTC)
        service.referral_contact_name = "Intake desk"
        service.referral_contact_phone = "+15105550199"
        service.referral_contact_email = "intake@food.example"
        service.sensitive = False
        service.accepts_electronic_referrals = False
        service.fees_description = "Free"
        service.free_of_charge = True  # as every write derives it
        service.cost_options = [CostOption(option="Everyone", currency="USD", amount=0)]
        taxonomy = Taxonomy(name="211 LA", description="AIRS", uri="https://211taxonomy.org")
        session.add(taxonomy)
        session.flush()
        term = TaxonomyTerm(
            code="BD-1800.2000", name="Food Pantries", taxonomy_id=taxonomy.id, taxonomy="211 LA"
        )
        session.add(term)
        session.flush()
        session.add(
            Attribute(
                link_id=service.id,
                link_entity="service",
                taxonomy_term_id=term.id,
                value="yes",
                label="Pantry",
            )
        )
        location = Location(
            organization_id=service.organization_id,
            name="Warehouse",
            latitude=37.8044,
            longitude=-122.2712,
            addresses=[
                Address(
                    address_1="1 Main St",
                    city="Oakland",
                    state_province="CA",
                    postal_code="94607",
                    country="US",
                    address_type="physical",
                )
            ],
            schedules=[Schedule(freq="WEEKLY", byday="MO,WE", opens_at="09:00", closes_at="17:00")],
        )
        service.service_at_locations = [ServiceAtLocation(location=location, description="Dock")]
    db.session.remove()


def read_export(folder: Path) -> dict[str, list]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


@pytest.mark.parametrize("fmt", ["json", "tabular", "zip"])
def test_import_export_import_loses_nothing(app, world, tmp_path, fmt):
    enrich(world)
    assert import_hsds(EXAMPLES / "service_full.json").ok
    db.session.remove()
    first = tmp_path / "first"
    export_json(first)
    package = tmp_path / ("package.zip" if fmt == "zip" else "package")
    if fmt == "json":
        package = first
    else:
        export_tabular(package)
    wipe_directory()

    report = import_hsds(package)
    assert report.ok, report.lines()
    db.session.remove()
    second = tmp_path / "second"
    export_json(second)

    before, after = read_export(first), read_export(second)
    assert before.keys() == after.keys()
    for name in before:
        assert len(after[name]) == len(before[name]), name
        for old, new in zip(before[name], after[name], strict=True):
            for key in old:
                assert new.get(key) == old[key], f"{name} {old.get('id')} {key}"
    food = next(s for s in after["services"] if s["name"] == "Food boxes")
    assert food["x_referrals"]["capacity"] == {
        "status": "waitlist",
        "note": "About two weeks",
        "updated_at": "2026-11-01T17:30:00.000Z",
    }
    assert food["x_referrals"]["referral_contact"]["email"] == "intake@food.example"
    assert food["x_referrals"]["accepts_electronic_referrals"] is False
    assert food["attributes"][0]["taxonomy_term"]["code"] == "BD-1800.2000"
    assert food["service_at_locations"][0]["location"]["latitude"] == 37.8044


def test_importing_the_same_export_twice_changes_nothing(app, world, tmp_path):
    enrich(world)
    export_json(tmp_path / "out")
    report = import_hsds(tmp_path / "out")
    assert report.ok, report.lines()
    assert sum(report.created.values()) == 0
    assert sum(report.updated.values()) == 0
    assert sum(report.removed.values()) == 0
    db.session.remove()
    service = db.session().get(Service, world.services["food"].id)
    assert service.categories == ["food-insecurity"]
    assert service.free_of_charge is True
    assert sorted(service.language_codes) == ["en", "es"]
    assert db.session().scalar(select(Service.status).where(Service.id == uuid.uuid4())) is None
