"""`flask import-hsds` and `flask export-hsds` as operators run them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from sqlalchemy import func, select

from referrals.db import db
from referrals.directory.models import Service

EXAMPLES = Path(__file__).parent / "fixtures" / "hsds" / "examples"


def test_import_reports_counts_and_warnings(app):
    result = app.test_cli_runner().invoke(args=["import-hsds", str(EXAMPLES / "service_full.json")])
    assert result.exit_code == 0, result.output
    assert "Read 1 taxonomy, 1 taxonomy_term, 1 organization, 1 program, 1 service" in result.output
    assert "Created: 1 address, 1 attribute" in result.output
    assert "warning: service_full.json:record 1/organization: parent_organization_id" in (
        result.output
    )
    assert db.session().scalar(select(func.count(Service.id))) == 1


def test_import_with_errors_exits_non_zero_and_writes_nothing(app, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "nope", "name": "X", "status": "active"}))
    result = app.test_cli_runner().invoke(args=["import-hsds", str(bad)])
    assert result.exit_code == 1
    assert "bad.json:record 1: id: 'nope' is not a UUID" in result.output
    assert "problem(s) found; nothing was imported." in result.output


def test_dry_run_and_strict_flags(app):
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["import-hsds", "--dry-run", str(EXAMPLES / "service_full.json")])
    assert dry.exit_code == 0 and "Dry run: the input is valid" in dry.output
    strict = runner.invoke(args=["import-hsds", "--strict", str(EXAMPLES / "service_full.json")])
    assert strict.exit_code == 1 and "latitude: 100 is outside -90..90" in strict.output
    assert db.session().scalar(select(func.count(Service.id))) == 0


def test_export_writes_json_and_a_zipped_data_package(app, world, tmp_path):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["export-hsds", str(tmp_path / "json")])
    assert out.exit_code == 0, out.output
    assert "Exported 4 services, 4 organizations" in out.output
    services = json.loads((tmp_path / "json" / "services.json").read_text())
    assert sorted(s["name"] for s in services)[0] == "Confidential counselling"
    zipped = runner.invoke(args=["export-hsds", "--format", "tabular", str(tmp_path / "d.zip")])
    assert zipped.exit_code == 0, zipped.output
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("datapackage.json"))
    assert {"datapackage.json", "services.csv", "organizations.csv"} <= names
    assert [r["name"] for r in manifest["resources"]][:3] == ["organization", "program", "service"]


def test_long_imports_show_a_progress_bar(app, monkeypatch):
    from referrals.directory.hsds import commands

    monkeypatch.setattr(commands, "PROGRESS_FROM", 1)
    result = app.test_cli_runner().invoke(args=["import-hsds", str(EXAMPLES / "service_full.json")])
    assert result.exit_code == 0, result.output
    assert "Importing" in result.output
