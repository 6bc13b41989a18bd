"""Reading HSDS 3.x input into flat records, checking everything on the way.

Both input forms end up the same: the nested JSON of the API (a service object, a list of them,
or a page `{"contents": [...]}`; files named organizations/taxonomies/taxonomy_terms hold those
objects instead) is flattened into one record per table row, the parent's id filled into the
child's link field; a tabular data package (datapackage.json and one CSV per table, in a folder
or a .zip) is read row by row. Every problem is collected as `where: field: message`, where
`where` is `file:row N` or `file:record N/path`, so that a whole file can be fixed in one go.

The same object may appear several times in nested JSON (a phone listed under the service and
under its location): that is one record linked to several parents, as long as the copies agree.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path, PurePosixPath
from typing import IO, Any
from zoneinfo import available_timezones

from referrals import csv_cells
from referrals.auth.models import Organization
from referrals.auth.roles import OrgKind
from referrals.directory.hsds.files import (
    ARCHIVE_SUFFIXES,
    READ_CHUNK,
    Budget,
    ImportLimits,
    InputFile,
    Refused,
    folder_files,
    one_file,
    zip_files,
)
from referrals.directory.hsds.schema import (
    EXTENSION,
    KEEPS_EXTRA,
    NESTED_ONE,
    TABLES,
    Field,
    Table,
)
from referrals.directory.hsds.serialize import MODELS
from referrals.directory.models import (
    CAPACITY_STATUSES,
    KEPT_FIELDS_LIMIT,
    Service,
    max_length,
)
from referrals.terminology import SDOH_CATEGORIES
from referrals.text_values import utc_moment

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_RE = re.compile(
    r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?$"
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")  # ISO 639-1/3, BCP 47 subtags
LIST_ITEM_RE = re.compile(r"^[+-]?\d*[A-Za-z]{0,2}$")

MAX_PROCEDURE_CODES = 100  # on one service: more is a mistake, or an attack on memory

# A file holding these objects instead of services, by its name.
OBJECT_FILES = {
    "organization": "organization",
    "organizations": "organization",
    "taxonomy": "taxonomy",
    "taxonomies": "taxonomy",
    "taxonomy_term": "taxonomy_term",
    "taxonomy_terms": "taxonomy_term",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. Warnings are reported but do not stop an import."""

    where: str
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{prefix}{self.where}: {self.field}: {self.message}"


@dataclass
class Record:
    """One row to write: its table, id, checked column values and where it came from."""

    table: str
    id: uuid.UUID
    values: dict[str, Any]
    where: str
    file: str
    extension: dict[str, Any] | None = None
    lists: set[str] = field(default_factory=set)  # nested lists given: they replace ours
    extra: dict[str, Any] | None = None  # fields without a column, verbatim (KEEPS_EXTRA)


@dataclass
class Dataset:
    """Everything read from one input path, file by file, and what was wrong with it."""

    records: dict[str, dict[uuid.UUID, Record]] = field(
        default_factory=lambda: {name: {} for name in TABLES}
    )
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    not_stored: Counter[str] = field(default_factory=Counter)
    tabular_tables: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]

    def error(self, where: str, name: str, message: str) -> None:
        self.problems.append(Problem(where, name, message))

    def count(self, table: str) -> int:
        return len(self.records[table])

    def add(self, record: Record) -> None:
        """Keep a record, or merge it with an earlier copy of the same id."""
        known = self.records[record.table].get(record.id)
        if known is None:
            self.records[record.table][record.id] = record
            return
        table = TABLES[record.table]
        for name, value in record.values.items():
            if value is None:
                continue
            before = known.values.get(name)
            if before is None:
                known.values[name] = value
            elif before != value:
                spec = table.get(name)
                what = (
                    f"the {record.table} {record.id} is linked to two different records "
                    f"({before} at {known.where}, {value} here)"
                    if spec is not None and spec.ref
                    else f"id {record.id} is used for two different {record.table} records "
                    f"(first at {known.where}, where {name} is {before!r})"
                )
                self.error(record.where, name, what)
        if record.extension is not None:
            if known.extension is None:
                known.extension = record.extension
            elif known.extension != record.extension:
                self.error(record.where, EXTENSION, f"differs from the copy at {known.where}")
        known.lists |= record.lists
        if record.extra is not None:
            if known.extra is None:
                known.extra = {}
            for name, value in record.extra.items():
                if name in known.extra and known.extra[name] != value:
                    self.error(record.where, name, f"differs from the copy at {known.where}")
                known.extra.setdefault(name, value)


# ----- values ------------------------------------------------------------------------------


class BadValue(ValueError):
    """A value that does not fit its field; the message is for the person fixing the file."""


def load_json(text: str) -> Any:
    """json.loads, where nesting deeper than Python can follow is malformed JSON too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def too_long(text: str, limit: int) -> str:
    """The message for text over its limit: `at most N characters`, and how many it has."""
    return f"at most {limit} characters ({len(text)} given)"


def parse_value(table: str, spec: Field, raw: Any, *, from_text: bool) -> Any:
    """The column value for `raw`, or BadValue. CSV cells arrive as text (`from_text`)."""
    if raw is None or (isinstance(raw, str) and raw == "" and (from_text or spec.type != "str")):
        return None
    kind = spec.type
    if isinstance(raw, bool):
        raise BadValue(f"must not be true/false ({raw!r})")
    if kind == "uuid":
        if not isinstance(raw, str) or not UUID_RE.match(raw.strip()):
            raise BadValue(f"{raw!r} is not a UUID")
        return uuid.UUID(raw.strip())
    if kind in ("int", "number"):
        value = _number(raw, whole=kind == "int")
        if spec.minimum is not None and value < spec.minimum:
            raise BadValue(f"{raw} is below the minimum {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise BadValue(f"{raw} is outside {spec.minimum:g}..{spec.maximum:g}")
        return value
    if kind in ("date", "datetime", "time", "email", "currency", "language") and not isinstance(
        raw, str
    ):
        raise BadValue(f"{raw!r} must be text")
    if kind == "date":
        try:
            if not DATE_RE.match(raw):
                raise ValueError
            return date.fromisoformat(raw)
        except ValueError:
            raise BadValue(f"{raw!r} is not a date (YYYY-MM-DD)") from None
    if kind == "datetime":
        try:
            value = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            raise BadValue(f"{raw!r} is not a date-time (ISO 8601)") from None
        # HSDS says UTC; a time without an offset is read as UTC.
        return utc_moment(value)
    if kind == "time":
        if not TIME_RE.match(raw):
            raise BadValue(f"{raw!r} is not a time (HH:MM, optionally with Z or an offset)")
        return raw
    if kind == "email" and not EMAIL_RE.match(raw):
        raise BadValue(f"{raw!r} is not an email address")
    if kind == "currency" and not CURRENCY_RE.match(raw):
        raise BadValue(f"{raw!r} is not a three-letter currency code")
    if kind == "language" and not LANGUAGE_RE.match(raw):
        raise BadValue(f"{raw!r} is not an ISO 639-1 or 639-3 language code")
    if kind == "extension":
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        raw = str(raw)
    if kind == "list":
        parts = raw if isinstance(raw, list) else str(raw).split(",")
        items = [str(p).strip() for p in parts]
        if not all(item and LIST_ITEM_RE.match(item) for item in items):
            raise BadValue(f"{raw!r} is not a comma-separated list of RRULE values")
        raw = ",".join(items)
    if isinstance(raw, int | float):
        raw = str(raw)  # a postal code written as a number, say
    if not isinstance(raw, str):
        raise BadValue(f"must be text, not {type(raw).__name__}")
    if "\x00" in raw:
        raise BadValue("contains a NUL character")
    if spec.enum and raw not in spec.enum:
        raise BadValue(f"{raw!r} is not one of: {', '.join(spec.enum)}")
    limit = max_length(MODELS[table], spec.name)
    if limit is not None and len(raw) > limit:
        raise BadValue(too_long(raw, limit))
    return raw


def _number(raw: Any, *, whole: bool) -> float | int:
    if isinstance(raw, str):
        try:
            raw = float(raw.strip()) if not re.fullmatch(r"[+-]?\d+", raw.strip()) else int(raw)
        except ValueError:
            raise BadValue(f"{raw!r} is not a number") from None
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        raise BadValue(f"{raw!r} is not a number")
    if whole:
        if isinstance(raw, float) and not raw.is_integer():
            raise BadValue(f"{raw} is not a whole number")
        return int(raw)
    return raw


@cache
def _time_zones() -> frozenset[str]:
    # Listing the zone database walks the disk: once per process, not once per record.
    return frozenset(available_timezones())


def _text_problem(value: Any, limit: int | None, *, required: bool = False) -> str | None:
    """Why `value` cannot go in a text column of `limit` characters, or None."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        return "must be non-empty text" if required else "must be text"
    if limit is not None and len(value) > limit:
        return too_long(value, limit)
    return None


def _extension_text(ext: dict, names: dict[str, int | None], prefix: str) -> list[tuple[str, str]]:
    """Problems with the text fields `names` (each with its limit) of an extension object."""
    problems = []
    for name, limit in names.items():
        if name in ext:
            problem = _text_problem(ext[name], limit)
            if problem:
                problems.append((f"{prefix}.{name}", problem))
    return problems


def check_service_extension(ext: Any) -> list[tuple[str, str]]:
    """Problems with a service's `x_referrals` object, as (field, message) pairs. Every value
    is checked against the column it goes to, so that nothing fails half-way through a write."""
    if not isinstance(ext, dict):
        return [(EXTENSION, "must be an object")]
    problems = []
    categories = ext.get("categories")
    if categories is not None:
        if not isinstance(categories, list):
            problems.append((f"{EXTENSION}.categories", "must be a list of SDOH category codes"))
        else:
            for code in categories:
                if code not in SDOH_CATEGORIES:
                    problems.append(
                        (f"{EXTENSION}.categories", f"{code!r} is not an SDOH category")
                    )
    for name in ("accepts_electronic_referrals", "sensitive"):
        if name in ext and not isinstance(ext[name], bool):
            problems.append((f"{EXTENSION}.{name}", "must be true or false"))
    if ext.get("free_of_charge") is not None and not isinstance(ext["free_of_charge"], bool):
        problems.append((f"{EXTENSION}.free_of_charge", "must be true, false or null"))
    for name in ("service_code", "service_display"):
        if name in ext:
            problem = _text_problem(ext[name], max_length(Service, name), required=True)
            if problem:
                problems.append((f"{EXTENSION}.{name}", problem))
    # Procedure codes are SNOMED CT codes as the service's own is, with their displays.
    code, display = max_length(Service, "service_code"), max_length(Service, "service_display")
    codes = ext.get("procedure_codes")
    if codes is not None and not (
        isinstance(codes, list)
        and len(codes) <= MAX_PROCEDURE_CODES
        and all(
            isinstance(c, dict)
            and _text_problem(c.get("code"), code, required=True) is None
            and _text_problem(c.get("display"), display) is None
            for c in codes
        )
    ):
        problems.append(
            (
                f"{EXTENSION}.procedure_codes",
                f"must be a list of at most {MAX_PROCEDURE_CODES} {{code (at most {code} "
                f"characters), display (at most {display})}}",
            )
        )
    contact = ext.get("referral_contact")
    if contact is not None and not isinstance(contact, dict):
        problems.append((f"{EXTENSION}.referral_contact", "must be an object"))
    elif contact is not None:
        problems += _extension_text(
            contact,
            {
                name: max_length(Service, f"referral_contact_{name}")
                for name in ("name", "phone", "email")
            },
            f"{EXTENSION}.referral_contact",
        )
    capacity = ext.get("capacity")
    if capacity is not None:
        if not isinstance(capacity, dict):
            problems.append((f"{EXTENSION}.capacity", "must be an object"))
        else:
            status = capacity.get("status")
            if status is not None and status not in CAPACITY_STATUSES:
                allowed = ", ".join(CAPACITY_STATUSES)
                problems.append(
                    (f"{EXTENSION}.capacity.status", f"{status!r} is not one of: {allowed}")
                )
            problems += _extension_text(
                capacity, {"note": max_length(Service, "capacity_note")}, f"{EXTENSION}.capacity"
            )
            stamp = capacity.get("updated_at")
            if stamp is not None:
                try:
                    parse_value("service", Field("updated_at", "datetime"), stamp, from_text=False)
                except BadValue as err:
                    problems.append((f"{EXTENSION}.capacity.updated_at", str(err)))
    return problems


def check_organization_extension(ext: Any) -> list[tuple[str, str]]:
    """Problems with an organization's `x_referrals` object."""
    if not isinstance(ext, dict):
        return [(EXTENSION, "must be an object")]
    problems = []
    kinds = [k.value for k in OrgKind]
    if "kind" in ext and ext["kind"] not in kinds:
        problems.append((f"{EXTENSION}.kind", f"{ext['kind']!r} is not one of: {', '.join(kinds)}"))
    if "hipaa_covered" in ext and not isinstance(ext["hipaa_covered"], bool):
        problems.append((f"{EXTENSION}.hipaa_covered", "must be true or false"))
    if ext.get("timezone") is not None and ext["timezone"] not in _time_zones():
        problems.append((f"{EXTENSION}.timezone", f"{ext['timezone']!r} is not a time zone"))
    problems += _extension_text(ext, {"phone": max_length(Organization, "phone")}, EXTENSION)
    return problems


EXTENSION_CHECKS = {
    "service": check_service_extension,
    "organization": check_organization_extension,
}


# ----- nested JSON -------------------------------------------------------------------------


def link_field(child: str, parent: str) -> str | None:
    """The field of a nested `child` that names the `parent` it sits in."""
    if child == "attribute":
        return "link_id"
    for spec in TABLES[child].fields:
        if spec.ref == parent and spec.name != "parent_id":
            return spec.name
    return None


def _left_out(table: Table, key: str, raw: Any) -> bool:
    """Whether `key` holds HSDS content (or an extension) that we do not store."""
    if key in ("id", "taxonomy") or raw in (None, [], ""):
        return False
    return table.get(key) is None


class JsonReader:
    """Flattens nested HSDS JSON objects into a Dataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.data = dataset

    def read_file(self, name: str, content: bytes) -> None:
        self.data.files.append(name)
        text = decode(self.data, name, content)
        if text is None:
            return
        try:
            document = load_json(text)
        except json.JSONDecodeError as err:
            self.data.error(f"{name}:line {err.lineno}", "JSON", f"malformed: {err.msg}")
            return
        if isinstance(document, dict) and isinstance(document.get("contents"), list):
            items = document["contents"]
        elif isinstance(document, list):
            items = document
        elif isinstance(document, dict):
            items = [document]
        else:
            self.data.error(name, "JSON", "expected an object, a list or a page with contents")
            return
        table = OBJECT_FILES.get(PurePosixPath(name).stem.lower(), "service")
        for number, item in enumerate(items, start=1):
            try:
                self.flatten(table, item, f"{name}:record {number}", name, {})
            except RecursionError:  # what is kept verbatim is compared and sized whole
                self.data.error(f"{name}:record {number}", "JSON", "nested too deeply")

    def flatten(
        self, table_name: str, obj: Any, where: str, file: str, links: dict[str, Any]
    ) -> uuid.UUID | None:
        """Check one object and its nested objects; return its id when it has a valid one."""
        table = TABLES[table_name]
        if not isinstance(obj, dict):
            self.data.error(where, table_name, "must be an object")
            return None
        values: dict[str, Any] = {}
        record_id = self._id(obj, where)
        for spec in table.fields:
            if spec.name == "id" or spec.name not in obj:
                continue
            if spec.name == "taxonomy" and isinstance(obj[spec.name], dict):
                continue  # HSDS 3.0 put the taxonomy object here; it is read below
            try:
                values[spec.name] = parse_value(table_name, spec, obj[spec.name], from_text=False)
            except BadValue as err:
                self.data.error(where, spec.name, str(err))
        for name, value in links.items():
            given = values.get(name)
            if table_name == "attribute" and name == "link_entity":
                values[name] = value  # the object it sits in is what it describes
            elif given is not None and given != value:
                self.data.error(where, name, f"{given} is not the record it is nested in ({value})")
            else:
                values[name] = value
        extension = None
        lists: set[str] = set()
        extra: dict[str, Any] | None = {} if table_name in KEEPS_EXTRA else None
        parent_id = record_id or uuid.uuid4()  # children still get checked under a bad id
        for key, raw in obj.items():
            if key in table.nested:
                child = table.nested[key]
                lists.add(key)
                if raw is None:
                    continue
                if not isinstance(raw, list):
                    self.data.error(where, key, "must be a list")
                    continue
                link = link_field(child, table_name)
                child_links: dict[str, Any] = {link: parent_id} if link else {}
                if child == "attribute":
                    child_links["link_entity"] = table_name
                for index, item in enumerate(raw):
                    self.flatten(child, item, f"{where}/{key}[{index}]", file, child_links)
            elif key in NESTED_ONE.get(table_name, {}) or (
                table_name == "taxonomy_term" and key == "taxonomy" and isinstance(raw, dict)
            ):
                one_table, id_field = NESTED_ONE[table_name].get(key, ("taxonomy", "taxonomy_id"))
                if raw is None:
                    continue
                child_id = self.flatten(one_table, raw, f"{where}/{key}", file, {})
                given = values.get(id_field)
                if child_id is not None:
                    if given is not None and given != child_id:
                        self.data.error(
                            where, id_field, f"{given} is not the {key} given ({child_id})"
                        )
                    values[id_field] = child_id
            elif key == EXTENSION and table_name in EXTENSION_CHECKS:
                for name, message in EXTENSION_CHECKS[table_name](raw):
                    self.data.error(where, name, message)
                extension = raw if isinstance(raw, dict) else None
            elif extra is not None and key != "id" and table.get(key) is None:
                extra[key] = raw
            elif _left_out(table, key, raw):
                self.data.not_stored[f"{table_name}.{key}"] += 1
        if table_name == "service" and values.get("program_id") and values.get("organization_id"):
            # A program given inside a service belongs to the service's organization.
            program = self.data.records["program"].get(values["program_id"])
            if program is not None and program.values.get("organization_id") is None:
                program.values["organization_id"] = values["organization_id"]
        self._required(table, values, obj, where, nested=True)
        self.check_kept(where, extra)
        if record_id is None:
            return None
        self.data.add(Record(table_name, record_id, values, where, file, extension, lists, extra))
        return record_id

    def check_kept(self, where: str, extra: dict[str, Any] | None) -> None:
        """The fields kept without a column of ours, as JSON, fit KEPT_FIELDS_LIMIT."""
        if not extra:
            return
        try:
            sizes = {
                name: len(json.dumps(value, ensure_ascii=False)) for name, value in extra.items()
            }
        except RecursionError:
            self.data.error(where, next(iter(extra)), "is nested too deeply")
            return
        if sum(sizes.values()) > KEPT_FIELDS_LIMIT:
            largest = max(sizes, key=lambda name: sizes[name])
            self.data.error(
                where,
                largest,
                f"at most {KEPT_FIELDS_LIMIT} characters as JSON, with the other fields kept "
                f"without a column of ours ({sum(sizes.values())} given)",
            )

    def _id(self, obj: dict, where: str) -> uuid.UUID | None:
        raw = obj.get("id")
        if raw in (None, ""):
            self.data.error(where, "id", "is required")
            return None
        try:
            return parse_value("service", Field("id", "uuid"), raw, from_text=False)
        except BadValue as err:
            self.data.error(where, "id", str(err))
            return None

    def _required(self, table: Table, values: dict, obj: dict, where: str, *, nested: bool) -> None:
        for spec in table.fields:
            if spec.name == "id":
                continue
            needed = spec.required or (spec.tabular_required and not nested)
            if not needed or values.get(spec.name) not in (None, ""):
                continue
            if spec.name == "description" and obj.get(spec.name) == "":
                continue  # HSDS requires the field; an empty description is still one
            if spec.name in obj and obj[spec.name] not in (None, ""):
                continue  # already reported as a bad value
            self.data.error(where, spec.name, "is required")
        need_link = {
            "service": (
                "organization_id",
                "a service needs its organization (organization or organization_id)",
            ),
            "service_at_location": ("location_id", "needs its location (location or location_id)"),
            "attribute": (
                "taxonomy_term_id",
                "needs its taxonomy term (taxonomy_term or taxonomy_term_id)",
            ),
            "cost_option": ("service_id", "must sit in a service"),
            "address": ("location_id", "must sit in a location"),
        }
        if nested and table.name in need_link:
            name, message = need_link[table.name]
            if values.get(name) is None and name not in obj:
                self.data.error(where, name, message)


# ----- tabular data packages ---------------------------------------------------------------

TABLE_BY_FILE = {
    **{name: name for name in TABLES},
    **{PurePosixPath(t.path).stem: name for name, t in TABLES.items()},
}


class TabularReader(JsonReader):
    """Reads a tabular data package: datapackage.json names one CSV file per table."""

    def __init__(self, dataset: Dataset, budget: Budget) -> None:
        super().__init__(dataset)
        self.budget = budget

    def read_package(self, label: str, files: list[InputFile]) -> None:
        """`files` are the package's files, by their paths inside it."""
        self.data.files.append(label)
        by_path = {f.name: f for f in files}
        manifest_path = next(
            (p for p in sorted(by_path, key=len) if PurePosixPath(p).name == "datapackage.json"),
            None,
        )
        if manifest_path is None:
            self.data.error(label, "datapackage.json", "is missing")
            return
        base = PurePosixPath(manifest_path).parent
        text = decode(
            self.data, f"{label}/datapackage.json", by_path[manifest_path].read(self.budget)
        )
        if text is None:
            return
        try:
            manifest = load_json(text)
        except json.JSONDecodeError as err:
            self.data.error(f"{label}/datapackage.json:line {err.lineno}", "JSON", err.msg)
            return
        resources = manifest.get("resources") if isinstance(manifest, dict) else None
        if not isinstance(resources, list):
            self.data.error(f"{label}/datapackage.json", "resources", "must be a list")
            return
        # Cells our export protected from spreadsheets carry a prefix to take off again.
        protected = isinstance(manifest, dict) and csv_cells.declared(manifest)
        tables: list[tuple[str, str]] = []
        types: dict[str, dict[str, str]] = {}
        for index, resource in enumerate(resources):
            path = resource.get("path") if isinstance(resource, dict) else None
            where = f"{label}/datapackage.json"
            if not isinstance(path, str):
                self.data.error(where, f"resources[{index}]", "has no path")
                continue
            if "://" in path or path.startswith("/") or ".." in PurePosixPath(path).parts:
                self.data.error(
                    where, f"resources[{index}].path", f"{path!r} leads outside the package"
                )
                continue
            name = str(resource.get("name") or PurePosixPath(path).stem)
            table = TABLE_BY_FILE.get(name) or TABLE_BY_FILE.get(PurePosixPath(path).stem)
            full = str(base / path) if str(base) != "." else path
            if table is None:
                if full in by_path:
                    self.data.not_stored[f"table {name}"] += 1
                continue
            if full not in by_path:
                self.data.error(
                    f"{label}/{path}", "file", "is listed in datapackage.json but missing"
                )
                continue
            if full.lower().endswith(ARCHIVE_SUFFIXES):
                self.data.error(
                    f"{label}/{path}", "file", "is an archive; archives inside are not read"
                )
                continue
            tables.append((table, full))
            types[table] = declared_types(resource)
        order = {name: i for i, name in enumerate(TABLES)}
        for table, path in sorted(tables, key=lambda t: order[t[0]]):
            self.data.tabular_tables.add(table)
            name = f"{label}/{PurePosixPath(path).name}"
            self.read_csv(
                table, name, by_path[path], label, types.get(table, {}), protected=protected
            )
        # A table given in full replaces, for each parent in the package, the rows we hold.
        for table, records in self.data.records.items():
            given = {
                k for k, child in TABLES[table].nested.items() if child in self.data.tabular_tables
            }
            for record in records.values():
                if record.file == label:
                    record.lists |= given

    def read_csv(
        self,
        table_name: str,
        name: str,
        file: InputFile,
        package: str,
        types: dict[str, str],
        *,
        protected: bool = False,
    ) -> None:
        """Read one table's CSV row by row; `types` are its columns' Table Schema types, where
        declared. `protected`: the package says its text cells carry csv_cells' prefix."""
        table = TABLES[table_name]
        # csv's own cap on a field (128 KiB by default, for the whole process) would stop a long
        # field with no word of which column it is in; our lines and text limits bound them.
        csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_LINE))
        with file.open(self.budget) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(_bounded_lines(text, name), strict=True)
            try:
                self._read_rows(table, reader, name, package, types, protected)
            except UnicodeDecodeError:
                self.data.problems.append(first_bad_byte(file, name, self.budget.limits))
            except csv.Error as err:
                self.data.error(f"{name}:row {reader.line_num}", "CSV", f"malformed: {err}")

    def _read_rows(
        self,
        table: Table,
        reader: Any,
        name: str,
        package: str,
        types: dict[str, str],
        protected: bool,
    ) -> None:
        clean = csv_cells.unprotect if protected else (lambda cell: cell)
        header = [clean(cell) for cell in next(reader, [])]
        if "id" not in header:
            self.data.error(f"{name}:row 1", "id", "the header has no id column")
            return
        ours = ("id", EXTENSION) if table.name in EXTENSION_CHECKS else ("id",)
        extra = [h for h in header if table.get(h) is None and h not in ours]
        if table.name in KEEPS_EXTRA:
            kept = {column: types.get(column, "string") for column in extra}
        else:
            kept = {}
            for column in extra:
                self.data.not_stored[f"{table.name}.{column}"] += 1
        for cells in reader:
            if not cells:
                continue  # a blank line, as csv.DictReader skips it
            row: dict[Any, Any] = dict.fromkeys(header)
            row.update(zip(header, (clean(c) for c in cells), strict=False))
            if len(cells) > len(header):
                row[None] = cells[len(header) :]
            where = f"{name}:row {reader.line_num}"
            try:
                self.read_row(table, row, where, package, kept)
            except RecursionError:  # a JSON cell is compared and sized whole
                self.data.error(where, "JSON", "nested too deeply")

    def read_row(
        self, table: Table, row: dict, where: str, package: str, kept: dict[str, str]
    ) -> None:
        if None in row:
            self.data.error(where, "CSV", "has more cells than the header has columns")
            return
        values: dict[str, Any] = {}
        record_id = self._id({"id": row.get("id") or None}, where)
        for spec in table.fields:
            if spec.name == "id" or spec.name not in row or row[spec.name] is None:
                continue
            try:
                values[spec.name] = parse_value(table.name, spec, row[spec.name], from_text=True)
            except BadValue as err:
                self.data.error(where, spec.name, str(err))
        self._required(table, values, row, where, nested=False)
        extension = None
        if row.get(EXTENSION) and table.name in EXTENSION_CHECKS:
            try:
                extension = load_json(row[EXTENSION])
            except json.JSONDecodeError as err:
                self.data.error(where, EXTENSION, f"is not JSON: {err.msg}")
            else:
                for name, message in EXTENSION_CHECKS[table.name](extension):
                    self.data.error(where, name, message)
                if not isinstance(extension, dict):
                    extension = None
        extra = None
        if table.name in KEEPS_EXTRA:
            extra = {}
            for column, kind in kept.items():
                if row.get(column) in (None, ""):
                    continue  # a CSV cannot tell an empty text from a missing field
                try:
                    extra[column] = cell_value(row[column], kind)
                except BadValue as err:
                    self.data.error(where, column, str(err))
            self.check_kept(where, extra)
        if record_id is not None:
            self.data.add(
                Record(table.name, record_id, values, where, package, extension, extra=extra)
            )


# Table Schema types whose cells are JSON text (RFC 4180 cells are all text otherwise).
JSON_CELL_TYPES = ("array", "object", "integer", "number", "boolean", "any")


def declared_types(resource: dict) -> dict[str, str]:
    """The Table Schema type of each field a datapackage.json resource declares."""
    schema = resource.get("schema")
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list):
        return {}
    return {
        str(f["name"]): str(f.get("type") or "string")
        for f in fields
        if isinstance(f, dict) and "name" in f
    }


def cell_value(text: str, kind: str) -> Any:
    """A kept field's value from its CSV cell: JSON for the structured and typed Table Schema
    types (as our export writes them), the text itself otherwise."""
    if kind not in JSON_CELL_TYPES:
        return text
    try:
        return load_json(text)
    except json.JSONDecodeError:
        if kind in ("array", "object"):
            raise BadValue(f"is declared {kind} in datapackage.json but is not JSON") from None
        return text


# ----- files -------------------------------------------------------------------------------

# The longest physical line of a CSV file read: far above the longest row the text limits
# allow, and what one step of reading may hold (a file of zeros has no line ends).
MAX_CSV_LINE = 4 * 1024 * 1024


def _bounded_lines(text: IO[str], name: str) -> Iterator[str]:
    """The lines of a CSV file, their ends kept (csv reads quoted line breaks from them)."""
    while line := text.readline(MAX_CSV_LINE + 1):
        if len(line) > MAX_CSV_LINE:
            raise Refused(name, "CSV", f"has a line longer than {MAX_CSV_LINE} characters")
        yield line


def decode(dataset: Dataset, name: str, content: bytes) -> str | None:
    """UTF-8 text (a byte-order mark is allowed), or a problem naming the first bad byte."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = content[: err.start].count(b"\n") + 1
        bad = content[err.start : err.start + 1].hex()
        dataset.error(
            f"{name}:line {line}", "encoding", f"not UTF-8 (byte 0x{bad} at offset {err.start})"
        )
        return None


def first_bad_byte(file: InputFile, name: str, limits: ImportLimits) -> Problem:
    """The problem naming the first byte of a file that is not UTF-8, found by reading it
    again in bounded steps."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    with file.open(Budget(limits)) as stream:
        while chunk := stream.read(READ_CHUNK):
            held = len(decoder.getstate()[0])  # bytes of a character begun in the last chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                at = offset - held + err.start
                before = err.object[: err.start].count(b"\n")
                bad = err.object[err.start : err.start + 1].hex()
                return Problem(
                    f"{name}:line {lines + before + 1}",
                    "encoding",
                    f"not UTF-8 (byte 0x{bad} at offset {at})",
                )
            lines += chunk.count(b"\n")
            offset += len(chunk)
    return Problem(name, "encoding", "not UTF-8")


def read_path(path: Path, limits: ImportLimits) -> Dataset:
    """Read a JSON file, a folder of JSON files, or a tabular package (folder or .zip), within
    `limits`: an input past them is refused before, or as soon as, it is read past them."""
    dataset = Dataset()
    reader = TabularReader(dataset, Budget(limits))
    try:
        _read(path, reader, limits)
    except Refused as refused:
        dataset.error(refused.where, refused.field, refused.message)
    return dataset


def _read(path: Path, reader: TabularReader, limits: ImportLimits) -> None:
    dataset = reader.data
    if not path.exists():
        dataset.error(str(path), "path", "does not exist")
    elif path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zip_files(path, limits) as files:
                reader.read_package(path.name, files)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            dataset.error(path.name, "zip", f"cannot be read: {err}")
    elif path.is_dir() and (path / "datapackage.json").exists():
        reader.read_package(path.name, folder_files(path, limits))
    elif path.is_dir():
        found = folder_files(path, limits, ".json")
        if not found:
            dataset.error(str(path), "path", "holds no .json files and no datapackage.json")
        for file in found:
            reader.read_file(file.name, file.read(reader.budget))
    else:
        file = one_file(path, limits)
        reader.read_file(file.name, file.read(reader.budget))
