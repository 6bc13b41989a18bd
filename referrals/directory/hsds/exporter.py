"""Writing the whole directory as HSDS 3.1: nested JSON files, or a tabular data package.
What one writes, `flask import-hsds` reads back without loss (extension fields included).

In the tabular form, the fields kept verbatim from an import (`hsds_extra`) are extra columns
of their record's table: text as it is, any other value (funding, required_documents… arrays,
numbers) as JSON in the cell, with its Table Schema type (array, object, integer…) declared in
datapackage.json, which the importer reads back. They are not split into HSDS's own tables
(funding.csv…): a package from elsewhere that has those files gets them reported, not stored."""

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
from referrals.directory.hsds.schema import EXTENSION, HSDS_VERSION, KEEPS_EXTRA, TABLES
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
        ours = table.columns + ([EXTENSION] if name in ("service", "organization") else [])
        rows = list(session.scalars(select(model).order_by(model.id)))  # type: ignore[attr-defined]
        kept = extra_column_types(rows) if name in KEEPS_EXTRA else {}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(ours + list(kept))
        for row in rows:
            writer.writerow(
                [_cell(name, row, column) for column in ours]
                + [_extra_cell(row.hsds_extra, column, kind) for column, kind in kept.items()]
            )
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
                    )
                    + [{"name": column, "type": kind} for column, kind in kept.items()],
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


def extra_column_types(rows: list[Any]) -> dict[str, str]:
    """The kept fields of these rows, in first-seen order, each with the Table Schema type its
    values share ("any" when they differ; "string" when all are text, written as they are)."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for key, value in (row.hsds_extra or {}).items():
            found = kinds.setdefault(key, set())
            if value is not None:
                found.add(_json_type(value))
    return {
        key: (found.pop() if len(found) == 1 else "string" if not found else "any")
        for key, found in kinds.items()
    }


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _extra_cell(extra: dict | None, column: str, kind: str) -> str:
    """A kept field's cell: empty when the record does not have it, else text or JSON."""
    if not extra or column not in extra:
        return ""
    value = extra[column]
    if kind == "string":
        return "" if value is None else str(value)
    return json.dumps(value, ensure_ascii=False)


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
