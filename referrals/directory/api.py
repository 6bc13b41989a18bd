"""The public, read-only HSDS 3.1 API under /hsds.

`/` describes the API; `/services` and `/services/{id}` are the endpoints HSDS requires;
`/organizations`, `/taxonomies` and `/taxonomy_terms` (and one of each by id) are optional ones.
Lists are pages in the spec's shape (total_items, total_pages, page_number, size, first_page,
last_page, empty, contents; `size` is the number of items in `contents`).

Every service is served whatever its status (clients filter on `status`), since a 211 mirroring
us must learn that a service closed. Only directory data is served, all of it public by nature;
nothing from patients or referrals ever is. Mistaken parameters get a 400 and unknown ids a
404, both as JSON with a message."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.sql import Select
from werkzeug.exceptions import HTTPException

from referrals.auth.models import Organization
from referrals.db import db
from referrals.directory.hsds.schema import HSDS_VERSION, PROFILE_URL
from referrals.directory.hsds.serialize import Serializer
from referrals.directory.models import Attribute, Service, Taxonomy, TaxonomyTerm
from referrals.text_values import shown, utc_moment, whole_number

log = logging.getLogger(__name__)

bp = Blueprint("hsds", __name__, url_prefix="/hsds")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100


class BadParameter(ValueError):
    """A query parameter the API cannot use; the message says which and why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@bp.errorhandler(BadParameter)
def _bad_parameter(err: BadParameter) -> tuple[Response, int]:
    return jsonify(error="bad_request", parameter=err.name, message=str(err)), 400


def serves(path: str) -> bool:
    return path == "/hsds" or path.startswith("/hsds/")


def api_error(error: Exception) -> Response | None:
    """The answer to any error under /hsds in the API's own JSON (a method it does not take, a
    body too large, a failure of ours); None elsewhere, where the pages answer."""
    if not serves(request.path):
        return None
    if isinstance(error, HTTPException) and (error.code or 500) < 500:
        status = error.code or 400
        response = jsonify(
            error=error.name.lower().replace(" ", "_"),
            message=(
                f"{shown(request.method, 20)} is not how {shown(request.path, 200)} is used; "
                "this API takes GET."
                if status == 405
                else f"There is nothing at {shown(request.path, 200)}; "
                f"{url_for('hsds.api_info')} describes this API."
                if status == 404
                else error.description
            ),
        )
        for name, value in error.get_headers():
            if name.lower() in {"allow", "retry-after"}:
                response.headers[name] = value
        response.status_code = status
        return response
    if not isinstance(error, HTTPException) or error.code == 500:
        original = getattr(error, "original_exception", None) or error
        log.error("HSDS request failed", exc_info=original)
    response = jsonify(error="server_error", message="Something went wrong on our side.")
    response.status_code = 500
    return response


def _not_found(kind: str, raw_id: str) -> tuple[Response, int]:
    return jsonify(error="not_found", message=f"No {kind} with id {raw_id}."), 404


# ----- parameters --------------------------------------------------------------------------


def _int_arg(name: str, default: int, low: int, high: int = 10**9) -> int:
    """A whole number in the digits 0-9 from `low` to `high` (a page past a billion would ask
    the database for an offset it cannot hold)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw, 10**12)
    if value is None:
        raise BadParameter(name, f"{raw[:40]!r} is not a whole number written in digits 0-9")
    if value < low or value > high:
        shown = str(value) if value < 10**12 else "a number of more than 12 digits"
        raise BadParameter(name, f"must be between {low} and {high}, not {shown}")
    return value


def _uuid_arg(name: str) -> uuid.UUID | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not a UUID") from None


def _bool_arg(name: str) -> bool:
    raw = (request.args.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadParameter(name, f"must be true or false, not {raw!r}")
    return raw in ("true", "1")


def _datetime_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))  # a '+' decoded as a space
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not an ISO 8601 date-time") from None
    return utc_moment(value)


def _search_arg() -> str:
    """The `search` words. PostgreSQL text cannot hold the NUL character, so words with one
    would fail there (and match nothing anywhere): refused, the same way on both databases."""
    raw = (request.args.get("search") or "").strip()
    if "\x00" in raw:
        raise BadParameter("search", "may not contain the NUL character")
    return raw


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page(stmt: Select, render: Callable[[list[Any]], list[dict]]) -> Response:
    """Run `stmt` for the requested page and wrap the rendered items in the HSDS page."""
    page = _int_arg("page", 1, 1)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    session = db.session()
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.offset((page - 1) * per_page).limit(per_page)))
    pages = math.ceil(total / per_page) if total else 0
    contents = render(rows)
    return jsonify(
        total_items=total,
        total_pages=pages,
        page_number=page,
        size=len(contents),
        first_page=page == 1,
        last_page=page >= pages,
        empty=not contents,
        contents=contents,
    )


# ----- endpoints ---------------------------------------------------------------------------


@bp.get("/")
def api_info() -> Response:
    """What this API is and which HSDS it speaks."""
    return jsonify(
        version=HSDS_VERSION,
        profile=PROFILE_URL,
        openapi_url="https://raw.githubusercontent.com/openreferral/specification/3.1/schema/openapi.json",
        description=(
            "Community services directory of the referral network, in Open Referral HSDS "
            "3.1. Services carry an x_referrals extension (SDOH categories, SNOMED CT codes, "
            "capacity). All services are listed whatever their status."
        ),
        publisher={"name": "referrals", "website": url_for("hsds.api_info", _external=True)},
    )


@bp.get("/services")
def services() -> Response:
    """A page of services: one-to-one fields by default, `full=true` nests everything,
    `minimal=true` gives just id and last_modified (to find what changed)."""
    stmt = select(Service).order_by(Service.name, Service.id)
    search = _search_arg()
    if search:
        like = _like(search)
        stmt = stmt.where(
            or_(
                Service.name.ilike(like, escape="\\"),
                Service.alternate_name.ilike(like, escape="\\"),
                Service.description.ilike(like, escape="\\"),
                Service.organization_id.in_(
                    select(Organization.id).where(Organization.name.ilike(like, escape="\\"))
                ),
            )
        )
    term_id = _uuid_arg("taxonomy_term_id")
    if term_id:
        stmt = stmt.where(
            Service.id.in_(
                select(Attribute.link_id).where(
                    Attribute.taxonomy_term_id == term_id, Attribute.link_entity == "service"
                )
            )
        )
    taxonomy_id = _uuid_arg("taxonomy_id")
    if taxonomy_id:
        stmt = stmt.where(
            Service.id.in_(
                select(Attribute.link_id)
                .join(TaxonomyTerm, Attribute.taxonomy_term_id == TaxonomyTerm.id)
                .where(TaxonomyTerm.taxonomy_id == taxonomy_id, Attribute.link_entity == "service")
            )
        )
    organization_id = _uuid_arg("organization_id")
    if organization_id:
        stmt = stmt.where(Service.organization_id == organization_id)
    modified_after = _datetime_arg("modified_after")
    if modified_after:
        stmt = stmt.where(Service.last_modified > modified_after)
    minimal, full = _bool_arg("minimal"), _bool_arg("full")
    if minimal and full:
        raise BadParameter("minimal", "cannot be combined with full=true")

    def render(rows: list[Service]) -> list[dict]:
        if minimal:
            return [
                {"id": str(s.id), "last_modified": Serializer.stamp(s.last_modified)} for s in rows
            ]
        serializer = Serializer(db.session())
        serializer.prefetch_services(rows)
        return [public(serializer.service(s, minimal=not full)) for s in rows]

    return _page(stmt, render)


@bp.get("/services/<service_id>")
def service(service_id: str) -> Response | tuple[Response, int]:
    """One fully nested service."""
    row = _get(Service, service_id)
    if row is None:
        return _not_found("service", service_id)
    return jsonify(public(Serializer(db.session()).service(row)))


@bp.get("/organizations")
def organizations() -> Response:
    """A page of organizations (their own fields; one by id nests the rest)."""
    stmt = (
        select(Organization)
        .where(Organization.id.in_(select(Service.organization_id)))
        .order_by(Organization.name, Organization.id)
    )
    search = _search_arg()
    if search:
        like = _like(search)
        stmt = stmt.where(
            or_(
                Organization.name.ilike(like, escape="\\"),
                Organization.alternate_name.ilike(like, escape="\\"),
                Organization.description.ilike(like, escape="\\"),
            )
        )
    full = _bool_arg("full")

    def render(rows: list[Organization]) -> list[dict]:
        serializer = Serializer(db.session())
        if full:
            serializer.prefetch_organizations(rows)
        return [serializer.organization(o, minimal=not full) for o in rows]

    return _page(stmt, render)


@bp.get("/organizations/<organization_id>")
def organization(organization_id: str) -> Response | tuple[Response, int]:
    row = _get(Organization, organization_id)
    if row is None or not _provides_services(row.id):
        return _not_found("organization", organization_id)
    return jsonify(Serializer(db.session()).organization(row))


@bp.get("/taxonomies")
def taxonomies() -> Response:
    stmt = select(Taxonomy).order_by(Taxonomy.name, Taxonomy.id)
    search = _search_arg()
    if search:
        stmt = stmt.where(Taxonomy.name.ilike(_like(search), escape="\\"))

    def render(rows: list[Taxonomy]) -> list[dict]:
        serializer = Serializer(db.session())
        return [serializer.taxonomy(t) for t in rows]

    return _page(stmt, render)


@bp.get("/taxonomies/<taxonomy_id>")
def taxonomy(taxonomy_id: str) -> Response | tuple[Response, int]:
    row = _get(Taxonomy, taxonomy_id)
    if row is None:
        return _not_found("taxonomy", taxonomy_id)
    return jsonify(Serializer(db.session()).taxonomy(row))


@bp.get("/taxonomy_terms")
def taxonomy_terms() -> Response:
    stmt = select(TaxonomyTerm).order_by(TaxonomyTerm.code, TaxonomyTerm.name, TaxonomyTerm.id)
    search = _search_arg()
    if search:
        like = _like(search)
        stmt = stmt.where(
            or_(
                TaxonomyTerm.name.ilike(like, escape="\\"),
                TaxonomyTerm.code.ilike(like, escape="\\"),
            )
        )
    taxonomy_id = _uuid_arg("taxonomy_id")
    if taxonomy_id:
        stmt = stmt.where(TaxonomyTerm.taxonomy_id == taxonomy_id)
    parent_id = _uuid_arg("parent_id")
    if parent_id:
        stmt = stmt.where(TaxonomyTerm.parent_id == parent_id)

    def render(rows: list[TaxonomyTerm]) -> list[dict]:
        serializer = Serializer(db.session())
        return [serializer.taxonomy_term(t) for t in rows]

    return _page(stmt, render)


@bp.get("/taxonomy_terms/<term_id>")
def taxonomy_term(term_id: str) -> Response | tuple[Response, int]:
    row = _get(TaxonomyTerm, term_id)
    if row is None:
        return _not_found("taxonomy term", term_id)
    return jsonify(Serializer(db.session()).taxonomy_term(row))


def _provides_services(organization_id: uuid.UUID) -> bool:
    """Only organisations in the directory are public: not clinics or the network itself."""
    return (
        db.session().scalar(
            select(Service.id).where(Service.organization_id == organization_id).limit(1)
        )
        is not None
    )


def public(service: dict) -> dict:
    """A service as the public may see it: a sensitive one (a shelter for people escaping
    violence, say) does not publish where it is."""
    if not (service.get("x_referrals") or {}).get("sensitive"):
        return service
    for link in service.get("service_at_locations") or []:
        location = link.get("location")
        if isinstance(location, dict):
            location["addresses"] = []
            location["latitude"] = location["longitude"] = None
    return service


def _get(model: type, raw_id: str) -> Any:
    try:
        key = uuid.UUID(raw_id)
    except ValueError:
        return None
    return db.session().get(model, key)
