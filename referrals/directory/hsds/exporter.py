"""Writing the whole directory as HSDS 3.1: nested JSON files, or a tabular data package.
What one writes, `flask import-hsds` reads back without loss (extension fields included).

In the tabular form, the fields kept verbatim from an import (`hsds_extra`) are extra columns
of their record's table: text as it is, any other value (funding, required_documents… arrays,
numbers) as JSON in the cell, with its Table Schema type (array, object, integer…) declared in
datapackage.json, which the importer reads back. They are not split into HSDS's own tables
(funding.csv…): a package from elsewhere that has those files gets them reported, not stored."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from referrals import csv_cells
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


EXPORT_CHUNK = 500  # records serialized at a time: memory stays flat at any directory size


def directory_organizations():  # type: ignore[no-untyped-def]
    """The organizations the directory publishes: those offering services, and community
    organizations and schools; not clinics or the network itself."""
    return select(Organization).where(
        or_(
            Organization.id.in_(select(Service.organization_id)),
            Organization.kind.in_(["cbo", "school"]),
        )
    )


def _write_list(path: Path, documents: Iterator[dict]) -> int:
    """A JSON list written one item at a time, into place only once it is whole."""
    count = 0
    partial = path.with_name(path.name + ".part")
    with partial.open("w", encoding="utf-8") as out:
        out.write("[")
        for document in documents:
            out.write(",\n" if count else "\n")
            out.write(json.dumps(document, ensure_ascii=False, indent=2))
            count += 1
        out.write("\n]\n" if count else "]\n")
    partial.replace(path)
    return count


def _in_chunks(session: Session, model: Any, ids_query: Any, render: Any) -> Iterator[dict]:
    ids = list(session.scalars(ids_query))
    for start in range(0, len(ids), EXPORT_CHUNK):
        rows = list(
            session.scalars(
                select(model)
                .where(model.id.in_(ids[start : start + EXPORT_CHUNK]))
                .order_by(model.id)
            )
        )
        yield from render(rows)
        session.expunge_all()


def export_json(folder: Path) -> dict[str, int]:
    """services.json, organizations.json, taxonomies.json and taxonomy_terms.json in `folder`
    (each a JSON list of HSDS objects), written in chunks; returns how many of each."""
    session = db.session()
    folder.mkdir(parents=True, exist_ok=True)
    serializer = Serializer(session)

    def services(rows: list[Service]) -> Iterator[dict]:
        serializer.prefetch_services(rows)
        return (serializer.service(s) for s in rows)

    counts = {
        "services": _write_list(
            folder / "services.json",
            _in_chunks(session, Service, select(Service.id).order_by(Service.id), services),
        ),
        "organizations": _write_list(
            folder / "organizations.json",
            _in_chunks(
                session,
                Organization,
                directory_organizations()
                .with_only_columns(Organization.id)
                .order_by(Organization.id),
                lambda rows: (
                    serializer.prefetch_organizations(rows)
                    or (serializer.organization(o) for o in rows)
                ),
            ),
        ),
        "taxonomies": _write_list(
            folder / "taxonomies.json",
            (
                serializer.taxonomy(t)
                for t in session.scalars(select(Taxonomy).order_by(Taxonomy.id))
            ),
        ),
        "taxonomy_terms": _write_list(
            folder / "taxonomy_terms.json",
            (
                serializer.taxonomy_term(t)
                for t in session.scalars(select(TaxonomyTerm).order_by(TaxonomyTerm.id))
            ),
        ),
    }
    return counts


def tabular_files(session: Session) -> tuple[dict[str, str], dict[str, int]]:
    """The CSV text of each table and the datapackage.json describing them."""
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    resources = []
    for name, table in TABLES.items():
        model = MODELS[name]
        ours = table.columns + ([EXTENSION] if name in ("service", "organization") else [])
        query = directory_organizations() if name == "organization" else select(model)
        rows = list(session.scalars(query.order_by(model.id)))  # type: ignore[attr-defined]
        kept = extra_column_types(rows) if name in KEEPS_EXTRA else {}
        out = io.StringIO()
        csv_cells.write_rows(out, [ours + list(kept)])
        csv_cells.write_rows(
            out,
            (
                [_cell(name, row, column) for column in ours]
                + [_extra_cell(row.hsds_extra, column, kind) for column, kind in kept.items()]
                for row in rows
            ),
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
    manifest = csv_cells.declare(
        {
            "name": "human_services_data",
            "title": "Human Services Data Specification",
            "version": HSDS_VERSION,
            "profile": "tabular-data-package",
            "resources": resources,
        }
    )
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


def _extra_cell(extra: dict | None, column: str, kind: str) -> csv_cells.Cell:
    """A kept field's cell: empty when the record does not have it, else text, a number in a
    numeric column, or JSON."""
    if not extra or column not in extra:
        return None
    value = extra[column]
    if kind == "string":
        return None if value is None else str(value)
    if kind in ("integer", "number") and not isinstance(value, bool):
        return value  # the column's values are all numbers (extra_column_types)
    return json.dumps(value, ensure_ascii=False)


def _cell(table: str, row: Any, column: str) -> csv_cells.Cell:
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
    if isinstance(value, float) and value.is_integer() and spec is not None and spec.type == "int":
        return int(value)
    return value if value is None or isinstance(value, int | float) else str(value)


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
