"""The tabular export opens in a spreadsheet without running what organisations typed, and
imported back gives every value as it was; the JSON export is left as it is."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referrals.db import db, transaction
from referrals.directory.hsds.exporter import export_json, export_tabular
from referrals.directory.hsds.files import MIB, ImportLimits
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.hsds.reader import read_path
from referrals.directory.models import Service
from tests.directory.test_hsds_roundtrip import wipe_directory

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
LIMITS = ImportLimits(64 * MIB, 64 * MIB, 100)
TYPED = {
    "name": '=HYPERLINK("http://evil.example","Food")',
    "description": "+1 510 555 0100 for help",
    "eligibility_description": "-2+3+cmd|' /C calc'!A0",
    "application_process": "@SUM(A1:A9)",
    "fees_description": "'Twas free, and still is",
    "referral_contact_name": "@intake desk",  # in the x_referrals JSON cell
}


def cells(folder: Path) -> list[str]:
    """Every cell of every CSV file in an exported package."""
    found = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            found += [cell for row in csv.reader(f) for cell in row]
    return found


def test_what_an_organisation_typed_cannot_run_in_a_spreadsheet(world, client, tmp_path):
    client.login(world, "food_admin")
    url = f"/listings/{world.service_ids['food']}/edit"
    client.get(url)
    response = client.post(url, {**TYPED, "categories": ["food-insecurity"]})
    assert response.status_code == 302
    export_tabular(tmp_path / "package")
    written = cells(tmp_path / "package")
    assert TYPED["name"] not in written  # the raw formula is nowhere
    assert "'" + TYPED["name"] in written and "''Twas free, and still is" in written
    assert not [cell for cell in written if cell.startswith(DANGEROUS)]
    manifest = json.loads((tmp_path / "package" / "datapackage.json").read_text())
    assert manifest["x_referrals_csv_text_prefix"] == "'"

    # Imported back, every value is as typed; the JSON export never changed them.
    wipe_directory()
    report = import_hsds(tmp_path / "package")
    assert report.ok, report.lines()
    db.session.remove()
    service = db.session().get(Service, world.service_ids["food"])
    assert {key: getattr(service, key) for key in TYPED} == TYPED
    export_json(tmp_path / "json")
    [food] = [
        s
        for s in json.loads((tmp_path / "json" / "services.json").read_text())
        if s["id"] == str(service.id)
    ]
    assert food["name"] == TYPED["name"] and food["description"] == TYPED["description"]


def test_a_package_from_elsewhere_keeps_its_leading_quotes(app, tmp_path):
    """Only a package that declares the prefix has it taken off."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "organizations.csv").write_text(
        "id,name,description\n22222222-2222-4222-8222-222222222222,'Twas,'=1\n"
    )
    (folder / "datapackage.json").write_text(
        json.dumps({"resources": [{"name": "organization", "path": "organizations.csv"}]})
    )
    [record] = read_path(folder, LIMITS).records["organization"].values()
    assert (record.values["name"], record.values["description"]) == ("'Twas", "'=1")


# Text as a database keeps it: PostgreSQL refuses NUL; an empty cell reads as no value.
STORED_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.sampled_from(["", *DANGEROUS, "'", "''", "\r\n", " "]),
    text=STORED_TEXT,
)
def test_any_text_comes_back_from_the_tabular_export(world, tmp_path_factory, start, text):
    value = start + text
    with transaction() as session:
        session.get(Service, world.service_ids["food"]).description = value
    folder = tmp_path_factory.mktemp("package")
    export_tabular(folder)
    assert not [cell for cell in cells(folder) if cell.startswith(DANGEROUS)]
    dataset = read_path(folder, LIMITS)
    assert not dataset.errors
    record = dataset.records["service"][uuid.UUID(str(world.service_ids["food"]))]
    assert record.values["description"] == value
