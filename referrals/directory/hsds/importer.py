"""Importing HSDS 3.x into the directory: the use case behind `flask import-hsds`.

Everything is read and checked first (see reader.py); with any error nothing is written. A real
run then writes each input file in one transaction, with an audit entry, updating records by
their HSDS id so that importing the same input again changes nothing.

What an input replaces. A list given in the input (a service's phones, a location's addresses…,
or in a data package every table it has a file for) replaces the list we hold: rows missing from
it are removed. Services themselves are removed only with `prune` (the input is a full snapshot
of its organizations, say a 211's complete export): an organization whose services the input
lists then keeps only those. Without it a partial feed (one page, a delta) removes no service.
A service that referrals point at is never deleted but becomes `inactive`. Organizations,
taxonomies and taxonomy terms are never removed, and nothing outside the input's organizations
is touched. The HSDS fields we have no column for are kept verbatim on organizations, services,
locations and service_at_locations (`hsds_extra`) and follow the same rule: a field left out is
cleared, an array left out (funding, required_documents…) is kept, `[]` empties it.

Problems that only warn (the import goes ahead) unless `strict`: a location's coordinates out of
range (the location is kept without them), an optional parent link to a record that is in
neither the input nor the directory (parent organization, parent taxonomy term; the link is
left empty), and a US address's ZIP code that does not exist or lies outside California (the
address is kept as given). The examples published with HSDS have all three."""

from __future__ import annotations

import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from referrals import audit
from referrals.auth.actor import Actor
from referrals.db import db, transaction, utcnow
from referrals.directory.geo import check_zip
from referrals.directory.hsds.files import ImportLimits
from referrals.directory.hsds.reader import (
    Dataset,
    Problem,
    Record,
    link_field,
    parse_value,
    read_path,
)
from referrals.directory.hsds.schema import (
    KEEPS_EXTRA,
    NOT_STORED,
    TABLES,
    WRITE_ORDER,
    Field,
)
from referrals.directory.hsds.serialize import MODELS
from referrals.directory.models import (
    Attribute,
    CostOption,
    Language,
    Service,
    ServiceAtLocation,
    TaxonomyTerm,
)
from referrals.directory.search import SEARCH_LOADS, refresh_search_rows
from referrals.directory.taxonomy_map import SdohMapper, seed_taxonomy_map
from referrals.jobs import describe_error

ACTOR = Actor.system("hsds import")
FREE_RE = re.compile(r"^\s*(free|no (cost|charge|fee)s?|none|\$?0(\.00)?)\b", re.IGNORECASE)
CHUNK = 500  # ids per IN (...) query
SELF_LINKS = {"organization": "parent_organization_id", "taxonomy_term": "parent_id"}
# Text columns we hold as NOT NULL that HSDS may leave out: kept as an empty string.
EMPTY_NOT_NULL = {
    (table, "description")
    for table in ("organization", "program", "service", "taxonomy", "taxonomy_term")
}


@dataclass
class ImportReport:
    """What an import found and did, counted per table."""

    dataset: Dataset
    dry_run: bool
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    inactivated: list[uuid.UUID] = field(default_factory=list)
    # A file the database refused although it passed every check (a gap in the checks, or
    # the database gone): (file, what it said). Files before it stay written.
    write_error: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        return not self.dataset.errors and self.write_error is None

    def lines(self) -> list[str]:
        """The report as lines for a person: problems first, then counts."""
        data = self.dataset
        out = [str(p) for p in data.errors] + [str(p) for p in data.warnings]
        if data.errors:
            out.append(f"{len(data.errors)} problem(s) found; nothing was imported.")
            return out
        read = ", ".join(f"{data.count(t)} {t}" for t in WRITE_ORDER if data.count(t))
        out.append(f"Read {read or 'nothing'} from {len(data.files)} file(s).")
        for key, count in sorted(data.not_stored.items()):
            out.append(f"Not stored (no place for it yet): {key} ×{count}")
        if self.dry_run:
            out.append("Dry run: the input is valid; nothing was written.")
            return out
        for label, counter in (
            ("Created", self.created),
            ("Updated", self.updated),
            ("Removed", self.removed),
        ):
            if counter:
                out.append(f"{label}: " + ", ".join(f"{n} {t}" for t, n in sorted(counter.items())))
        if self.inactivated:
            out.append(
                f"Made inactive (referrals point at them): {len(self.inactivated)} service(s)"
            )
        if self.write_error:
            file, message = self.write_error
            out.append(
                f"{file}: the database refused it ({message}); nothing of this file or any "
                "after it was written. Files before it were."
            )
        return out


def import_hsds(
    path: Path,
    *,
    dry_run: bool = False,
    strict: bool = False,
    prune: bool = False,
    actor: Actor = ACTOR,
    progress: Callable[[int, int], None] | None = None,
    limits: ImportLimits | None = None,
) -> ImportReport:
    """Read, check and (unless `dry_run` or anything is wrong) write an HSDS input.
    `progress(step, total)` is told how many records were written after each table. `limits`
    (by default the HSDS_IMPORT_MAX_* settings) bound what the input may make us read."""
    dataset = read_path(path, limits or ImportLimits.from_settings(current_app.config["SETTINGS"]))
    report = ImportReport(dataset, dry_run)
    if not dataset.errors:
        check_references(db.session(), dataset, strict=strict)
    if dataset.errors or dry_run:
        db.session.rollback()
        return report
    with transaction() as session:
        if seed_taxonomy_map(session):
            audit.record(session, actor, "taxonomy_map.seed", "TaxonomySdohMap")
    writer = Writer(dataset, report, progress, prune=prune)
    for file in dataset.files:
        try:
            _write_file(writer, file, actor)
        except SQLAlchemyError as err:
            report.write_error = (file, describe_error(err))
            break
    return report


def _write_file(writer: Writer, file: str, actor: Actor) -> None:
    """One input file, in one transaction, with its audit entry."""
    with transaction() as session:
        writer.write_file(session, file)
        audit.record(
            session,
            actor,
            "hsds.import",
            "HSDSFile",
            file[-64:],
            detail={
                "created": dict(writer.file_created),
                "updated": dict(writer.file_updated),
                "removed": dict(writer.file_removed),
            },
        )


def total_records(dataset: Dataset) -> int:
    return sum(dataset.count(t) for t in TABLES)


# ----- references --------------------------------------------------------------------------


def check_references(session: Session, data: Dataset, *, strict: bool) -> None:
    """Every id a record points at must be in the input or already in the directory."""
    for record_id, record in list(data.records["attribute"].items()):
        entity = record.values.get("link_entity")
        if entity in NOT_STORED:  # it describes a record we keep only inside another
            del data.records["attribute"][record_id]
            data.not_stored[f"attribute of {entity}"] += 1
    wanted: dict[str, set[uuid.UUID]] = defaultdict(set)
    for table, records in data.records.items():
        for record in records.values():
            for spec in TABLES[table].fields:
                value = record.values.get(spec.name)
                if spec.ref and value is not None and value not in data.records[spec.ref]:
                    wanted[spec.ref].add(value)
            if table == "attribute":
                entity = record.values.get("link_entity")
                link = record.values.get("link_id")
                if entity in TABLES and link is not None and link not in data.records[entity]:
                    wanted[entity].add(link)
    known = {table: existing_ids(session, table, ids) for table, ids in wanted.items()}
    for records in data.records.values():
        for record in records.values():
            _check_record_links(data, record, known, strict=strict)


def _check_record_links(
    data: Dataset, record: Record, known: dict[str, set[uuid.UUID]], *, strict: bool
) -> None:
    values = record.values
    for spec in TABLES[record.table].fields:
        value = values.get(spec.name)
        if not spec.ref or value is None:
            continue
        if value in data.records[spec.ref] or value in known.get(spec.ref, set()):
            continue
        what = "taxonomy term" if spec.ref == "taxonomy_term" else spec.ref.replace("_", " ")
        message = f"no {what} with id {value} in the input or the directory"
        if spec.soft_ref and not strict:
            data.problems.append(
                Problem(record.where, spec.name, message + "; link left empty", True)
            )
            values[spec.name] = None
        else:
            data.error(record.where, spec.name, message)
    if record.table == "attribute":
        entity, link = values.get("link_entity"), values.get("link_id")
        if entity is not None and entity not in TABLES:
            data.error(record.where, "link_entity", f"{entity!r} is not an HSDS table")
        elif (
            entity is not None
            and link is not None
            and link not in data.records[entity]
            and link not in known.get(entity, set())
        ):
            data.error(record.where, "link_id", f"no {entity} with id {link}")
    if record.table == "location":
        for name, limit in (("latitude", 90), ("longitude", 180)):
            value = values.get(name)
            if value is not None and abs(value) > limit:
                message = f"{value} is outside -{limit}..{limit}"
                if strict:
                    data.error(record.where, name, message)
                else:
                    data.problems.append(
                        Problem(
                            record.where, name, message + "; imported without coordinates", True
                        )
                    )
                    values["latitude"] = values["longitude"] = None
    if record.table == "address":
        _check_zip(data, record, strict=strict)
    if record.table == "service":
        low, high = values.get("minimum_age"), values.get("maximum_age")
        if low is not None and high is not None and low > high:
            data.error(record.where, "minimum_age", f"{low} is above maximum_age {high}")
    if record.table == "program" and values.get("organization_id") is None:
        data.error(record.where, "organization_id", "a program needs its organization")


def _check_zip(data: Dataset, record: Record, *, strict: bool) -> None:
    """A US address's ZIP code, by the rule the listing form applies. A ZIP that does not
    exist, or one outside California, is a warning (an error with `strict`), as coordinates out
    of range are: feeds carry placeholders (the published examples do), HSDS requires the
    field so it cannot be left out, and there is nobody to confirm a state line crossed. The
    address is kept as given; search places it by its coordinates, or not at all."""
    values = record.values
    code = values.get("postal_code")
    if not code or str(values.get("country") or "").upper() != "US":
        return
    found = check_zip(str(code))
    if found.taken:
        return
    if found.refusal:
        message = f"{code!r} is not a US ZIP code that exists"
        kept = "; kept, but search cannot place the address by it"
    else:
        message, kept = f"{found.code} is in {found.state_name}, not California", "; kept"
    if strict:
        data.error(record.where, "postal_code", message)
    else:
        data.problems.append(Problem(record.where, "postal_code", message + kept, True))


def existing_ids(session: Session, table: str, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of `ids` the directory holds in `table`."""
    model: Any = MODELS[table]
    found: set[uuid.UUID] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        found |= set(session.scalars(select(model.id).where(model.id.in_(chunk))))
    return found


def load_rows(session: Session, model: Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The rows of `model` with these ids that exist, by id, in a few IN queries."""
    found: dict[uuid.UUID, Any] = {}
    for start in range(0, len(ids), CHUNK):
        for row in session.scalars(select(model).where(model.id.in_(ids[start : start + CHUNK]))):
            found[row.id] = row
    return found


# ----- writing -----------------------------------------------------------------------------


class Writer:
    """Writes a checked Dataset file by file."""

    def __init__(
        self,
        data: Dataset,
        report: ImportReport,
        progress: Callable[[int, int], None] | None,
        *,
        prune: bool = False,
    ) -> None:
        self.data = data
        self.prune = prune
        self.report = report
        self.progress = progress
        self.written: set[tuple[str, uuid.UUID]] = set()
        self.file_created: Counter[str] = Counter()
        self.file_updated: Counter[str] = Counter()
        self.file_removed: Counter[str] = Counter()

    def batch(self, file: str) -> dict[str, list[Record]]:
        """The records first read from `file`, and any not yet written that they point at."""
        found: dict[str, list[Record]] = defaultdict(list)
        pending = [r for t in WRITE_ORDER for r in self.data.records[t].values() if r.file == file]
        while pending:
            record = pending.pop()
            key = (record.table, record.id)
            if key in self.written:
                continue
            self.written.add(key)
            found[record.table].append(record)
            for spec in TABLES[record.table].fields:
                value = record.values.get(spec.name)
                if spec.ref and value is not None and value in self.data.records[spec.ref]:
                    pending.append(self.data.records[spec.ref][value])
        return found

    def write_file(self, session: Session, file: str) -> None:
        self.file_created, self.file_updated, self.file_removed = Counter(), Counter(), Counter()
        batch = self.batch(file)
        for table in WRITE_ORDER:
            records = batch.get(table, [])
            if not records:
                continue
            self.upsert(session, table, records)
            if self.progress:
                self.progress(len(records), total_records(self.data))
        self.remove_missing(session, batch)
        self.derive(session, batch.get("service", []))
        self.refresh_linked(session, batch)
        self.report.created.update(self.file_created)
        self.report.updated.update(self.file_updated)
        self.report.removed.update(self.file_removed)

    def upsert(self, session: Session, table: str, records: list[Record]) -> None:
        model = MODELS[table]
        existing = load_rows(session, model, [r.id for r in records])
        self_link = SELF_LINKS.get(table)
        later: list[tuple[Any, uuid.UUID]] = []
        for record in records:
            row = existing.get(record.id)
            created = row is None
            if row is None:
                row = model(id=record.id)
                self.new_row(table, row)
                session.add(row)
            changed = False
            for spec in TABLES[table].fields:
                if spec.name in ("id", "last_modified"):
                    continue
                value = record.values.get(spec.name)
                if spec.name == self_link and value is not None:
                    # Set once every row of the table exists (a parent may come later).
                    later.append((row, value))
                    changed |= getattr(row, spec.name) != value
                    continue
                if value is None and (table, spec.name) in EMPTY_NOT_NULL:
                    value = ""
                if getattr(row, spec.name) != value:
                    setattr(row, spec.name, value)
                    changed = True
            changed |= self.apply_extension(table, row, record.extension)
            if record.extra is not None:
                extra = kept_lists(row.hsds_extra) | record.extra
                if row.hsds_extra != extra:
                    row.hsds_extra = extra
                    changed = True
            if table == "service":
                stamp = record.values.get("last_modified")
                # HSDS carries milliseconds; we keep microseconds: same millisecond, same time.
                if stamp is not None and not same(row.last_modified, stamp):
                    changed = True
                    row.last_modified = stamp
                elif stamp is None and (created or changed):
                    row.last_modified = utcnow()
            if table == "organization" and (created or changed):
                row.updated_at = utcnow()
            if created:
                self.file_created[table] += 1
            elif changed:
                self.file_updated[table] += 1
        session.flush()
        if later:
            for row, value in later:
                setattr(row, self_link, value)  # type: ignore[arg-type]
            session.flush()

    @staticmethod
    def new_row(table: str, row: Any) -> None:
        """Defaults for what HSDS does not say (the extension may say otherwise)."""
        if table == "organization":
            row.kind, row.hipaa_covered = "cbo", False
        if table == "service":
            row.categories, row.procedure_codes, row.language_codes = [], [], []
        if table in KEEPS_EXTRA:
            row.hsds_extra = {}

    @staticmethod
    def apply_extension(table: str, row: Any, ext: dict | None) -> bool:
        """Copy our extension's fields onto the row; True when something changed."""
        if not ext:
            return False
        updates: dict[str, Any] = {}
        if table == "organization":
            for name in ("kind", "hipaa_covered", "phone", "timezone"):
                if name in ext and ext[name] is not None:
                    updates[name] = ext[name]
        if table == "service":
            for name in (
                "categories",
                "service_code",
                "service_display",
                "procedure_codes",
                "accepts_electronic_referrals",
                "sensitive",
                "free_of_charge",
            ):
                if name in ext:
                    updates[name] = ext[name]
            contact = ext.get("referral_contact") or {}
            for name in ("name", "phone", "email"):
                if name in contact:
                    updates[f"referral_contact_{name}"] = contact[name]
            capacity = ext.get("capacity") or {}
            if "status" in capacity:
                updates["capacity_status"] = capacity["status"]
            if "note" in capacity:
                updates["capacity_note"] = capacity["note"]
            if "updated_at" in capacity:
                stamp = capacity["updated_at"]
                updates["capacity_updated_at"] = (
                    parse_value("service", Field("at", "datetime"), stamp, from_text=False)
                    if stamp
                    else None
                )
        changed = False
        for name, value in updates.items():
            if not same(getattr(row, name), value):
                setattr(row, name, value)
                changed = True
        return changed

    # ----- removals -------------------------------------------------------------------

    def remove_missing(self, session: Session, batch: dict[str, list[Record]]) -> None:
        """Rows of the lists the input gave that the input no longer has."""
        for parent, records in batch.items():
            for key, child in TABLES[parent].nested.items():
                parents = [r.id for r in records if key in r.lists]
                if not parents:
                    continue
                link = link_field(child, parent)
                assert link is not None
                self.remove_rows(session, child, link, parents)
        if self.prune:
            self.remove_services(session, [r.id for r in batch.get("organization", [])])

    def remove_rows(
        self, session: Session, child: str, link: str, parents: list[uuid.UUID]
    ) -> None:
        model = MODELS[child]
        keep = self.data.records[child]
        column = getattr(model, link)
        stale = [
            row_id
            for row_id in session.scalars(select(model.id).where(column.in_(parents)))  # type: ignore[attr-defined]
            if row_id not in keep
        ]
        if child == "location":  # a location still used by a service stays
            used = set(
                session.scalars(
                    select(ServiceAtLocation.location_id).where(
                        ServiceAtLocation.location_id.in_(stale)
                    )
                )
            )
            stale = [i for i in stale if i not in used]
        if child == "program":
            used = set(
                session.scalars(select(Service.program_id).where(Service.program_id.in_(stale)))
            )
            stale = [i for i in stale if i not in used]
        if not stale:
            return
        session.execute(delete(Attribute).where(Attribute.link_id.in_(stale)))
        session.execute(delete(model).where(model.id.in_(stale)))  # type: ignore[attr-defined]
        self.file_removed[child] += len(stale)

    def remove_services(self, session: Session, org_ids: list[uuid.UUID]) -> None:
        """Services of the input's organizations that the input no longer lists."""
        from referrals.loop.models import Referral

        listed = self.data.records["service"]
        orgs = {r.values.get("organization_id") for r in listed.values()} & set(org_ids)
        if not orgs:
            return
        stale = [
            s
            for s in session.scalars(select(Service).where(Service.organization_id.in_(orgs)))
            if s.id not in listed
        ]
        if not stale:
            return
        referred = set(
            session.scalars(
                select(Referral.service_id).where(Referral.service_id.in_([s.id for s in stale]))
            )
        )
        for service in stale:
            if service.id in referred:
                if service.status != "inactive":
                    service.status = "inactive"
                    service.last_modified = utcnow()
                    refresh_search_rows(session, service)  # inactive: out of search
                    self.report.inactivated.append(service.id)
                    audit.record(session, ACTOR, "service.deactivate", "Service", service.id)
                continue
            session.execute(delete(Attribute).where(Attribute.link_id == service.id))
            session.delete(service)
            audit.record(session, ACTOR, "service.delete", "Service", service.id)
            self.file_removed["service"] += 1
        session.flush()

    # ----- derived fields -------------------------------------------------------------

    def derive(self, session: Session, records: list[Record]) -> None:
        """Search fields of the written services: language codes, free of charge and (when
        the extension does not give them) SDOH categories from their taxonomy terms."""
        if not records:
            return
        ids = [r.id for r in records]
        languages: dict[uuid.UUID, list[str]] = defaultdict(list)
        for service_id, code in session.execute(
            select(Language.service_id, Language.code)
            .where(Language.service_id.in_(ids))
            .order_by(Language.code)
        ):
            if code and code not in languages[service_id]:
                languages[service_id].append(code)
        # Languages spoken where the service is delivered count too.
        for service_id, code in session.execute(
            select(ServiceAtLocation.service_id, Language.code)
            .join(Language, Language.location_id == ServiceAtLocation.location_id)
            .where(ServiceAtLocation.service_id.in_(ids))
            .order_by(Language.code)
        ):
            if code and code not in languages[service_id]:
                languages[service_id].append(code)
        amounts: dict[uuid.UUID, list[float | None]] = defaultdict(list)
        for service_id, amount in session.execute(
            select(CostOption.service_id, CostOption.amount).where(CostOption.service_id.in_(ids))
        ):
            amounts[service_id].append(amount)
        terms: dict[uuid.UUID, list[tuple[str | None, str | None]]] = defaultdict(list)
        for link_id, code, name in session.execute(
            select(Attribute.link_id, TaxonomyTerm.code, TaxonomyTerm.name)
            .join(TaxonomyTerm, Attribute.taxonomy_term_id == TaxonomyTerm.id)
            .where(Attribute.link_id.in_(ids))
        ):
            terms[link_id].append((code, name))
        mapper = SdohMapper.load(session)
        services = load_rows(session, Service, ids)
        for record in records:
            service = services[record.id]
            ext = record.extension or {}
            service.language_codes = languages.get(record.id, [])
            if ext.get("free_of_charge") is None:
                service.free_of_charge = free_of_charge(
                    amounts.get(record.id, []), service.fees_description
                )
            if "categories" not in ext:
                service.categories = mapper.categories(terms.get(record.id, []))
        session.flush()
        self.refresh_search(session, ids)

    def refresh_linked(self, session: Session, batch: dict[str, list[Record]]) -> None:
        """Search rows of services this file did not list but whose places or organization
        it changed (a moved location, a renamed organization)."""
        location_ids = {r.id for r in batch.get("location", [])} | {
            r.values["location_id"]
            for table in ("address", "schedule", "language", "phone")
            for r in batch.get(table, [])
            if r.values.get("location_id") is not None
        }
        org_ids = [r.id for r in batch.get("organization", [])]
        listed = {r.id for r in batch.get("service", [])}
        linked: set[uuid.UUID] = set()
        locations = sorted(location_ids)
        for start in range(0, len(locations), CHUNK):
            linked |= set(
                session.scalars(
                    select(ServiceAtLocation.service_id).where(
                        ServiceAtLocation.location_id.in_(locations[start : start + CHUNK])
                    )
                )
            )
        for start in range(0, len(org_ids), CHUNK):
            linked |= set(
                session.scalars(
                    select(Service.id).where(
                        Service.organization_id.in_(org_ids[start : start + CHUNK])
                    )
                )
            )
        self.refresh_search(session, sorted(linked - listed))

    @staticmethod
    def refresh_search(session: Session, ids: list[uuid.UUID]) -> None:
        """Rewrite these services' search rows from the database as it is now."""
        session.flush()
        # The search rows read the service's places and hours through its relationships,
        # which the column-level writes bypassed: read them afresh, in bulk, in an empty
        # session (every statement there would otherwise scan all the rows written).
        session.expunge_all()
        for start in range(0, len(ids), CHUNK):
            for service in session.scalars(
                select(Service)
                .where(Service.id.in_(ids[start : start + CHUNK]))
                .options(*SEARCH_LOADS)
            ):
                refresh_search_rows(session, service)
            session.flush()
            session.expunge_all()


def kept_lists(extra: dict | None) -> dict:
    """The arrays among a record's kept fields: an input that leaves one out keeps it, as it
    keeps a nested list it does not give (a service's organization comes without them)."""
    return {k: v for k, v in (extra or {}).items() if isinstance(v, list)}


def same(before: Any, after: Any) -> bool:
    """Equal, taking times to HSDS's millisecond (we keep microseconds, exports carry ms)."""
    if isinstance(before, datetime) and isinstance(after, datetime):
        return abs((before - after).total_seconds()) < 0.001
    return before == after


def free_of_charge(amounts: list[float | None], fees: str | None) -> bool | None:
    """True when a cost option costs nothing or the fees text clearly says free; False when
    every cost option has a price; None when we cannot tell."""
    known = [a for a in amounts if a is not None]
    if any(a == 0 for a in known) or (fees and FREE_RE.match(fees)):
        return True
    if known:
        return False
    return None
