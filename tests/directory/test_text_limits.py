"""Every text of the directory has a length limit, one table of them (models.TEXT_LIMITS and the
columns' own lengths) that the HSDS import, the listing form and the database agree on; over it
is a message naming the field and the limit, never a stored novel or a server error."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from marshmallow import validate
from sqlalchemy import String

from referrals.auth.models import Organization
from referrals.db import db
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.hsds.serialize import MODELS
from referrals.directory.listing import ListingSchema
from referrals.directory.models import (
    KEPT_FIELDS_LIMIT,
    LONG_TEXT,
    TEXT_LIMITS,
    Address,
    Service,
    max_length,
)
from tests.directory.test_hsds_import import ORG_CSV, package, service_doc, write


def test_every_text_column_of_the_directory_has_a_limit():
    for table, model in MODELS.items():
        for column in model.__table__.columns:  # type: ignore[attr-defined]
            if isinstance(column.type, String):
                assert max_length(model, column.name), f"{table}.{column.name}"
    for key in TEXT_LIMITS:
        table, name = key.split(".")
        model = next(m for m in MODELS.values() if m.__table__.name == table)  # type: ignore[attr-defined]
        assert model.__table__.c[name].type.length is None  # type: ignore[attr-defined]
    assert max_length(Service, "description") == LONG_TEXT
    assert max_length(Service, "name") == 300 and max_length(Organization, "description")


def test_an_over_long_description_is_an_error_naming_file_record_field_and_limit(app, tmp_path):
    doc = service_doc(description="x" * (LONG_TEXT + 1))
    doc["service_at_locations"][0]["location"]["transportation"] = "Bus " * 3000
    doc["organization"]["description"] = "y" * (LONG_TEXT + 5)
    report = import_hsds(write(tmp_path, "long.json", doc))
    assert [str(p) for p in report.dataset.errors] == [
        "long.json:record 1: description: at most 10000 characters (10001 given)",
        "long.json:record 1/organization: description: at most 10000 characters (10005 given)",
        "long.json:record 1/service_at_locations[0]/location: transportation: at most 10000 "
        "characters (12000 given)",
    ]
    assert db.session().get(Service, uuid.UUID(doc["id"])) is None


def test_over_long_text_in_a_csv_cell_names_file_row_and_field(app, tmp_path):
    tables = {
        "organizations": ORG_CSV,
        "services": "id,organization_id,name,status,alert\n"
        "11111111-1111-4111-8111-111111111111,22222222-2222-4222-8222-222222222222,"
        f"Pantry,active,{'!' * (LONG_TEXT + 1)}\n",
    }
    report = import_hsds(package(tmp_path / "pkg", tables))
    assert [str(p) for p in report.dataset.errors] == [
        "pkg/services.csv:row 2: alert: at most 10000 characters (10001 given)"
    ]


def test_the_extension_and_the_kept_fields_have_their_limits_too(app, tmp_path):
    doc = service_doc(
        funding=[{"source": "z" * KEPT_FIELDS_LIMIT}],
        x_referrals={
            "capacity": {"status": "capacity", "note": "n" * 2001},
            "referral_contact": {"name": "a" * 201},
        },
    )
    report = import_hsds(write(tmp_path, "ext.json", doc))
    assert [str(p) for p in report.dataset.errors] == [
        "ext.json:record 1: x_referrals.referral_contact.name: at most 200 characters (201 given)",
        "ext.json:record 1: x_referrals.capacity.note: at most 2000 characters (2001 given)",
        f"ext.json:record 1: funding: at most {KEPT_FIELDS_LIMIT} characters as JSON, with the "
        f"other fields kept without a column of ours ({KEPT_FIELDS_LIMIT + 16} given)",
    ]


def _length(schema_field) -> validate.Length:  # type: ignore[no-untyped-def]
    return next(v for v in schema_field.validators if isinstance(v, validate.Length))


@pytest.mark.parametrize(
    ("field", "model", "column"),
    [
        ("name", Service, "name"),
        ("description", Service, "description"),
        ("eligibility_description", Service, "eligibility_description"),
        ("application_process", Service, "application_process"),
        ("fees_description", Service, "fees_description"),
        ("referral_contact_name", Service, "referral_contact_name"),
        ("referral_contact_email", Service, "referral_contact_email"),
        ("address_1", Address, "address_1"),
        ("city", Address, "city"),
        ("postal_code", Address, "postal_code"),
    ],
)
def test_the_listing_form_takes_what_the_column_takes(field, model, column):
    assert _length(ListingSchema().fields[field]).max == max_length(model, column)


def test_the_listing_form_refuses_over_long_text_with_a_message_and_saves_nothing(world, client):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    email = "a" * 60 + "@" + ("b" * 60 + ".") * 4 + "org"  # a valid address of 308 characters
    response = client.post(
        url,
        {
            "name": "Weekend food boxes",
            "categories": ["food-insecurity"],
            "description": "d" * (LONG_TEXT + 1),
            "referral_contact_email": email,
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "At most 10000 characters." in html and "At most 254 characters." in html
    db.session.remove()
    service = db.session().get(Service, world.service_ids["food"])
    assert service.name == "Food boxes" and service.referral_contact_email is None


@pytest.mark.parametrize(
    "field", ["description", "eligibility_description", "application_process", "fees_description"]
)
def test_each_long_text_of_the_listing_form_says_what_is_wrong_beside_it(world, client, field):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    response = client.post(
        url, {"name": "Food boxes", "categories": ["food-insecurity"], field: "x" * 10_001}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'<p class="field-error" id="{field}-error">At most 10000 characters.</p>' in html
    assert f'aria-describedby="{field}-error"' in html


def test_a_listing_at_the_limits_is_saved_whole(world, client):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    response = client.post(
        url,
        {"name": "n" * 300, "categories": ["food-insecurity"], "description": "d" * LONG_TEXT},
    )
    assert response.status_code == 302
    db.session.remove()
    service = db.session().get(Service, world.service_ids["food"])
    assert len(service.name) == 300 and len(service.description) == LONG_TEXT


def test_limits_are_read_from_the_one_table(tmp_path):
    """The import reads the same table: a description at the limit is taken."""
    path = Path(tmp_path) / "ok.json"
    path.write_text(json.dumps(service_doc(description="x" * LONG_TEXT)))
    from referrals.directory.hsds.files import MIB, ImportLimits
    from referrals.directory.hsds.reader import read_path

    dataset = read_path(path, ImportLimits(MIB, MIB, 1))
    assert not dataset.errors
    [record] = dataset.records["service"].values()
    assert len(record.values["description"]) == LONG_TEXT
