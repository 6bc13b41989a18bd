"""The FHIR R4 API on /fhir: our CapabilityStatement, and reads and searches of the referral
resources for machine clients holding a bearer token (SMART Backend Services). Thin, like the
pages: authenticate, check the scope, call the services, map to FHIR, answer.

Errors are OperationOutcome resources with the right HTTP status (see `outcomes`, the one
table): 401 without a valid token, 403 for a scope or another organisation's data, 404 for an
unknown type or id, 400 for an unknown search parameter or a body that is not FHIR JSON (nested
too deeply included: it is measured before it is parsed), 406 for a format we do not speak."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, request

from referrals.fhir import outcomes
from referrals.fhir.capability import SERVED, capability_statement
from referrals.fhir.outcomes import FHIR_JSON, FhirError, base_url, fhir_response
from referrals.text_values import shown

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
log = logging.getLogger(__name__)

JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
JSON_MEDIA = JSON_FORMATS - {"json"} | {"*/*", "application/*"}  # what Accept may name
# Every error while serving these routes, ours or not, is an OperationOutcome.
bp.register_error_handler(Exception, outcomes.answer)


@bp.before_request
def _negotiate() -> None:
    """`_format` and Accept: we speak FHIR JSON only."""
    wanted = request.args.get("_format")
    if wanted is not None and wanted not in JSON_FORMATS:
        raise FhirError(
            406, "not-supported", f"_format={shown(wanted)} is not supported; use json.", "_format"
        )
    accepted = request.headers.get("Accept")
    if accepted and not _accepts_json(accepted):
        raise FhirError(
            406, "not-supported", f"Accept: {shown(accepted)} is not served; we answer {FHIR_JSON}."
        )


def _accepts_json(header: str) -> bool:
    """Whether an Accept header takes FHIR JSON. Its parameters (`fhirVersion=4.0`, a charset)
    do not matter; `q=0` refuses."""
    for media_range in header.split(","):
        media, *parameters = (part.strip().lower() for part in media_range.split(";"))
        weight = next((p.removeprefix("q=") for p in parameters if p.startswith("q=")), "1")
        try:
            refused = float(weight) <= 0
        except ValueError:
            refused = False
        if media in JSON_MEDIA and not refused:
            return True
    return False


@bp.get("/metadata")
def metadata() -> Response:
    return fhir_response(capability_statement(base_url()))


# --- authentication -----------------------------------------------------------------------------


def authenticate() -> None:
    """A valid bearer token: its client acts for the request."""
    from referrals.fhir import oauth

    try:
        g.fhir_actor = oauth.authenticate_bearer(
            request.headers.get("Authorization"), ip=request.remote_addr
        )
    except oauth.InvalidToken as err:
        raise FhirError(err.status_code, "login", str(err) or "A bearer token is needed.") from None


def require(resource_type: str, access: str) -> None:
    """A valid bearer token whose scopes allow this access to this resource type."""
    authenticate()
    _require_each({resource_type}, access)


def actor():
    return g.fhir_actor


def _require_each(resource_types: set[str], access: str) -> None:
    """The token allows this access to every one of these types (a transaction's)."""
    for resource_type in sorted(resource_types):
        if not actor().allows(resource_type, access):
            what = {"c": "create"}.get(access, access)
            raise FhirError(
                403, "forbidden", f"The token's scopes do not allow {what} of {resource_type}."
            )


# --- reads -----------------------------------------------------------------------------------


Reader = Callable[[Any, uuid.UUID], dict]


@bp.get("/<resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str) -> Response:
    if resource_type not in SERVED:
        raise FhirError(404, "not-supported", f"We do not serve {shown(resource_type)} resources.")
    require(resource_type, "read")
    try:
        key = uuid.UUID(resource_id)
    except ValueError:
        raise FhirError(
            404, "not-found", f"{resource_type}/{shown(resource_id)} does not exist."
        ) from None
    from referrals.fhir import reads

    resource = reads.read(actor(), resource_type, key, base_url())
    headers = {}
    version = resource.get("meta", {}).get("versionId")
    if version:
        headers["ETag"] = f'W/"{version}"'
    return fhir_response(resource, headers=headers)


# --- Task updates -------------------------------------------------------------------------------

MAX_BODY = 1024 * 1024  # a Task is a few kilobytes; anything this large is not one


def _body(resource_type: str) -> dict[str, Any]:
    """The request's FHIR JSON resource, or the FhirError saying what is wrong with it."""
    from referrals.fhir.json_input import JsonRefused, read_json

    if request.mimetype not in {"application/fhir+json", "application/json"}:
        raise FhirError(
            415,
            "not-supported",
            f"Send {resource_type} as application/fhir+json, not {request.mimetype or 'nothing'}.",
        )
    if (request.content_length or 0) > MAX_BODY:
        raise FhirError(413, "too-long", f"The body is over {MAX_BODY // 1024} KiB.")
    raw = request.get_data(cache=False, as_text=False)[: MAX_BODY + 1]
    if len(raw) > MAX_BODY:
        raise FhirError(413, "too-long", f"The body is over {MAX_BODY // 1024} KiB.")
    try:
        body = read_json(raw)
    except JsonRefused as err:
        raise FhirError(400, "structure", str(err)) from None
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise FhirError(
            400, "structure", f"Expected a {resource_type}, got {found}.", "resourceType"
        )
    _validate_structure(resource_type, body)
    return body


# What FHIR's model classes may raise, besides their ValidationError, on input they were not
# written for (a number where a URL belongs, an object as a resourceType).
VALIDATOR_FAILURES = (AttributeError, KeyError, TypeError, ValueError, IndexError)


def _validate_structure(resource_type: str, body: dict[str, Any]) -> None:
    """FHIR's own structure rules (R4B models): types, cardinalities, required elements."""
    from pydantic import ValidationError

    _check_resource_types(body, resource_type)
    model = _model(resource_type)
    try:
        model.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}"
            for part in first.get("loc", ())
            if part != "__root__"
        ).removeprefix(".")
        raise FhirError(
            400,
            "structure",
            f"{resource_type}.{path}: {first.get('msg')}" if path else str(first.get("msg")),
            f"{resource_type}.{path}" if path else None,
        ) from None
    except VALIDATOR_FAILURES as err:
        log.warning(
            "FHIR %s structure check failed on its input: %s at %s",
            resource_type,
            type(err).__name__,
            outcomes.where(err, 3),
        )
        element = _unreadable_element(model, body, resource_type) or resource_type
        raise FhirError(
            400,
            "structure",
            f"{element} cannot be read as FHIR R4: an element holds a value of another type "
            "(an object, a number or true/false where text belongs, or the reverse).",
            element,
        ) from None


def _model(resource_type: str) -> type:
    """FHIR R4B's model class of a resource type we were told is one."""
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _is_resource_type(name: Any) -> bool:
    """Whether a resourceType names a concrete FHIR resource (not Resource, not a data type)."""
    from fhir.resources.R4B.resource import Resource

    if not isinstance(name, str) or not name.isascii() or not name.isalpha():
        return False
    if name in {"Resource", "DomainResource"} or len(name) > 64:
        return False
    try:
        return issubclass(_model(name), Resource)
    except (ValueError, AttributeError):
        return False


def _check_resource_types(body: Any, path: str) -> None:
    """Every resource the body holds (a Bundle's entries, contained ones) names a resource
    type FHIR has, before the validator looks each one up."""
    waiting: list[tuple[Any, str]] = [(body, path)]
    while waiting:
        value, where = waiting.pop()
        if isinstance(value, dict):
            if "resourceType" in value and not _is_resource_type(value["resourceType"]):
                raise FhirError(
                    400,
                    "structure",
                    f"{where}.resourceType {value['resourceType']!r} is not a FHIR resource type.",
                    f"{where}.resourceType",
                )
            waiting.extend((item, f"{where}.{key}") for key, item in value.items())
        elif isinstance(value, list):
            waiting.extend((item, f"{where}[{index}]") for index, item in enumerate(value))


def _unreadable_element(model: type, resource: dict[str, Any], path: str) -> str | None:
    """Which top-level element of a resource (inside a Bundle's entries too) the model classes
    cannot read: each is tried on its own."""
    from pydantic import ValidationError

    for key, value in resource.items():
        if key == "resourceType":
            continue
        try:
            model.model_validate({"resourceType": resource["resourceType"], key: value})
        except ValidationError:
            continue
        except VALIDATOR_FAILURES:
            where = f"{path}.{key}"
            if key == "entry" and isinstance(value, list):
                for index, entry in enumerate(value):
                    inner = entry.get("resource") if isinstance(entry, dict) else None
                    if isinstance(inner, dict) and _is_resource_type(inner.get("resourceType")):
                        found = _unreadable_element(
                            _model(inner["resourceType"]), inner, f"{where}[{index}].resource"
                        )
                        if found:
                            return found
            return where
    return None


@bp.put("/Task/<task_id>")
def update_task(task_id: str) -> Response:
    """A partner moves a Task: the same lifecycle, permissions, audit and family notices as
    the pages. `If-Match: W/"<version>"` (or meta.versionId) must be the current version."""
    from referrals.errors import Conflict
    from referrals.fhir import procedures, reads, tasks
    from referrals.loop import service as loop

    require("Task", "write")
    try:
        key = uuid.UUID(task_id)
    except ValueError:
        raise FhirError(404, "not-found", f"Task/{shown(task_id)} does not exist.") from None
    incoming = _body("Task")
    if incoming.get("id") not in {None, task_id}:
        raise FhirError(400, "invalid", "The Task's id is not the one in the URL.", "Task.id")
    current = reads.read(actor(), "Task", key, base_url())
    version = current["meta"]["versionId"]
    wanted = _if_match() or (incoming.get("meta") or {}).get("versionId")
    if wanted is not None and str(wanted) != str(version):
        raise FhirError(
            412,
            "conflict",
            f"Task/{task_id} is at version {version}, not {wanted}: read it again, then update.",
        )
    form = tasks.update_form(incoming, current, procedures.procedure_code_for(key))
    from referrals.errors import InvalidInput
    from referrals.loop.lifecycle import Refusal

    try:
        loop.change_referral(actor(), _referral_id(current), form)
    except Refusal as refusal:
        raise FhirError(422, "business-rule", str(refusal), "Task.status") from None
    except InvalidInput as err:
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in err.fields.items())
        raise FhirError(422, "invariant", f"{err.message} {details}".strip()) from None
    except Conflict as err:
        raise FhirError(412, "conflict", err.message) from None
    updated = reads.read(actor(), "Task", key, base_url())
    return fhir_response(updated, headers={"ETag": f'W/"{updated["meta"]["versionId"]}"'})


def _if_match() -> str | None:
    value = request.headers.get("If-Match")
    if not value:
        return None
    return value.strip().removeprefix("W/").strip('"')


def _referral_id(task: dict[str, Any]) -> uuid.UUID:
    """The referral (ServiceRequest) a Task we serve is about: its focus."""
    return uuid.UUID(task["focus"]["reference"].rsplit("/", 1)[-1])


# --- search -------------------------------------------------------------------------------------


@bp.get("/<resource_type>")
def search(resource_type: str) -> Response:
    """Search: Tasks as the polling recipients and referrers do, the other referral resources
    within what the client's organisation may read, and the directory, which every client
    reads."""
    from urllib.parse import urlencode

    from referrals.fhir import mapping
    from referrals.fhir.search import SearchProblem
    from referrals.fhir.search import search as run_search

    if resource_type not in SERVED:
        raise FhirError(404, "not-supported", f"We do not serve {shown(resource_type)} resources.")
    require(resource_type, "read")
    params = {key: request.args.getlist(key) for key in request.args}
    try:
        page = run_search(actor(), resource_type, params, base_url())
    except SearchProblem as problem:
        raise FhirError(400, "invalid", str(problem), problem.parameter) from None
    kept = [(k, v) for k, values in params.items() if k != "_offset" for v in values]
    here = f"{base_url()}/{resource_type}"
    self_url = f"{here}?{urlencode([*kept, ('_offset', page.offset)])}"
    next_url = None
    if page.offset + len(page.resources) < page.total and page.count:
        next_url = f"{here}?{urlencode([*kept, ('_offset', page.offset + page.count)])}"
    bundle = mapping.bundle_searchset(
        page.resources, page.total, self_url, next_url, included=page.included, base_url=base_url()
    )
    return fhir_response(bundle)


# --- Procedure create ---------------------------------------------------------------------------


@bp.post("/Procedure")
def create_procedure() -> Response:
    """A recipient records what it did for one of its referrals (SDOHCC-Procedure, basedOn the
    ServiceRequest), kept as the Task's outcome without moving the Task: 201 with a Location,
    or 200 with the same Procedure for a retry."""
    from referrals.fhir import procedures

    require("Procedure", "write")
    incoming = _body("Procedure")  # an id sent is ignored, as FHIR create says: ours is the Task's
    form = procedures.procedure_form(incoming, base_url())
    resource, created = procedures.record_procedure(actor(), form, base_url())
    location = f"{base_url()}/Procedure/{resource['id']}"
    return fhir_response(resource, 201 if created else 200, {"Location": location})


# --- referrals sent as a transaction ------------------------------------------------------------

# What a referral's field problems are about, as FHIRPath in the Bundle's resources.
FIELD_PATHS = {
    "given_name": "Patient.name.given",
    "family_name": "Patient.name.family",
    "birth_date": "Patient.birthDate",
    "gender": "Patient.gender",
    "phone": "Patient.telecom",
    "language": "Patient.communication.language",
    "zip_code": "Patient.address.postalCode",
    "mrn": "Patient.identifier",
    "guardian_name": "Patient.contact.name",
    "guardian_phone": "Patient.contact.telecom",
    "guardian_relationship": "Patient.contact.relationship",
    "patient": "ServiceRequest.subject",
    "service_id": "ServiceRequest.performer",
    "owner": "Task.owner",
    "category": "ServiceRequest.category",
    "priority": "ServiceRequest.priority",
    "note": "ServiceRequest.note",
    "need": "Condition",
    "consent": "Consent",
    "consent_given_by": "Consent.performer",
    "consent_given_by_name": "Consent.performer.display",
    "consent_method": "Consent.sourceAttachment",
    "consent_date": "Consent.dateTime",
}


@bp.post("")
@bp.post("/")
def transaction() -> Response:
    """A referral sent as a transaction Bundle: written whole by the same services as the
    referral form, or refused whole. Creates whose identifiers the client's organisation sent
    before answer `200 OK` with what the first request made, so a retry never duplicates."""
    from referrals.errors import InvalidInput
    from referrals.fhir import reads
    from referrals.fhir.transactions import parse_transaction
    from referrals.loop.intake import receive_referral

    authenticate()
    body = _body("Bundle")
    parsed = parse_transaction(body, base_url())
    _require_each(parsed.types, "c")
    try:
        received = receive_referral(actor(), parsed.incoming)
    except InvalidInput as err:
        field, messages = next(iter(err.fields.items()), ("", [err.message]))
        path = FIELD_PATHS.get(field)
        detail = " ".join(messages)
        if err.message.rstrip(".?") not in detail:
            detail = f"{err.message} {detail}"
        raise FhirError(422, "processing", f"{path}: {detail}" if path else detail, path) from None
    records = {
        "Patient": received.patient.id,
        "Condition": received.need.id if received.need else None,
        "Consent": received.consent.id if received.consent else None,
        "ServiceRequest": received.referral.id,
        "Task": received.referral.task.id,
    }
    versions = {"Task": received.referral.task.version}
    full = "return=representation" in (request.headers.get("Prefer") or "")
    entries = []
    for entry in parsed.entries:
        key = records[entry.resource_type]
        version = versions.get(entry.resource_type)
        location = f"{entry.resource_type}/{key}" + (f"/_history/{version}" if version else "")
        answer: dict[str, Any] = {
            "status": "201 Created" if entry.resource_type in received.created else "200 OK",
            "location": location,
        }
        if version:
            answer["etag"] = f'W/"{version}"'
        warnings = [
            *parsed.warnings.get(entry.index, []),
            *received.warnings.get(entry.resource_type, []),
        ]
        if warnings and entry.resource_type in received.created:
            answer["outcome"] = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "warning", "code": "value", "diagnostics": text}
                    for text in warnings
                ],
            }
        out: dict[str, Any] = {"fullUrl": f"{base_url()}/{entry.resource_type}/{key}"}
        if full:
            out["resource"] = reads.read(actor(), entry.resource_type, key, base_url())
        out["response"] = answer
        entries.append(out)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "transaction-response",
        "entry": entries,
    }
    return fhir_response(bundle)
