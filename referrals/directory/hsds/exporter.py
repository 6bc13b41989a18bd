"""Writing the whole directory as HSDS 3.1: nested JSON files, or a tabular data package.
What one writes, `flask import-hsds` reads back without loss (extension fields included)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referrals.auth.models import Organization
from referrals.db import db
from referrals.directory.hsds.schema import EXTENSION, HSDS_VERSION, TABLES
from referrals.directory.hsds.serialize import (
    MODELS,
    Serializer,
    hsds_value,
    service_extension,
)
from referrals.directory.models import Service, Taxonomy, TaxonomyTerm

TABULAR_TYPES = {
    "int": "integer",
    "number": "number",
    "date": "date",
    "datetime": "datetime",
    "extension": "number",
}


def export_json(folder: Path) -> dict[str, int]:
    """services.json, organizations.json, taxonomies.json and taxonomy_terms.json in `folder`
    (each a JSON list of HSDS objects); returns how many of each were written."""
    session = db.session()
    folder.mkdir(parents=True, exist_ok=True)
    serializer = Serializer(session)
    services = list(session.scalars(select(Service).order_by(Service.id)))
    serializer.prefetch_services(services)
    documents: dict[str, list[dict]] = {
        "services": [serializer.service(s) for s in services],
        "organizations": [
            serializer.organization(o)
            for o in session.scalars(select(Organization).order_by(Organization.id))
        ],
        "taxonomies": [
            serializer.taxonomy(t) for t in session.scalars(select(Taxonomy).order_by(Taxonomy.id))
        ],
        "taxonomy_terms": [
            serializer.taxonomy_term(t)
            for t in session.scalars(select(TaxonomyTerm).order_by(TaxonomyTerm.id))
        ],
    }
    for name, items in documents.items():
        (folder / f"{name}.json").write_text(
            json.dumps(items, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return {name: len(items) for name, items in documents.items()}


def tabular_files(session: Session) -> tuple[dict[str, str], dict[str, int]]:
    """The CSV text of each table and the datapackage.json describing them."""
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    resources = []
    for name, table in TABLES.items():
        model = MODELS[name]
        header = table.columns + ([EXTENSION] if name in ("service", "organization") else [])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        rows = list(session.scalars(select(model).order_by(model.id)))  # type: ignore[attr-defined]
        for row in rows:
            writer.writerow([_cell(name, row, column) for column in header])
        files[table.path] = out.getvalue()
        counts[name] = len(rows)
        resources.append(
            {
                "name": name,
                "path": table.path,
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "profile": "tabular-data-resource",
                "schema": {
                    "fields": [
                        {"name": f.name, "type": TABULAR_TYPES.get(f.type, "string")}
                        for f in table.fields
                    ]
                    + (
                        [{"name": EXTENSION, "type": "object"}]
                        if name in ("service", "organization")
                        else []
                    ),
                    "primaryKey": "id",
                },
            }
        )
    manifest = {
        "name": "human_services_data",
        "title": "Human Services Data Specification",
        "version": HSDS_VERSION,
        "profile": "tabular-data-package",
        "resources": resources,
    }
    files["datapackage.json"] = json.dumps(manifest, indent=2) + "\n"
    return files, counts


def _cell(table: str, row: Any, column: str) -> str:
    if column == EXTENSION:
        ext = (
            service_extension(row)
            if table == "service"
            else {
                "kind": row.kind,
                "hipaa_covered": row.hipaa_covered,
                "phone": row.phone,
                "timezone": row.timezone,
            }
        )
        return json.dumps(ext, ensure_ascii=False, sort_keys=True)
    spec = TABLES[table].get(column)
    value = hsds_value(spec.type if spec else "str", getattr(row, column))
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if spec is not None and spec.type == "int" else repr(value)
    return str(value)


def export_tabular(path: Path) -> dict[str, int]:
    """A tabular data package: a folder, or a zip file when `path` ends in .zip."""
    files, counts = tabular_files(db.session())
    if path.suffix.lower() == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                archive.writestr(name, text.encode("utf-8"))
    else:
        path.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (path / name).write_text(text, encoding="utf-8", newline="")
    return counts
