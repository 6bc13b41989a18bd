"""The FHIR R4 API on /fhir: our CapabilityStatement, and reads and searches of the referral
resources for machine clients holding a bearer token (SMART Backend Services). Thin, like the
pages: authenticate, check the scope, call the services, map to FHIR, answer.

Errors are OperationOutcome resources with the right HTTP status: 401 without a valid token,
403 for a scope or another organisation's data, 404 for an unknown type or id, 400 for an
unknown search parameter or a bad `_format`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from referrals.errors import ServiceError
from referrals.fhir.capability import SERVED, capability_statement

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

FHIR_JSON = "application/fhir+json"
JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}


class FhirError(Exception):
    """An error answered as an OperationOutcome."""

    def __init__(
        self, status: int, code: str, diagnostics: str, expression: str | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics, self.expression = (
            status,
            code,
            diagnostics,
            expression,
        )


def base_url() -> str:
    return current_app.config["SETTINGS"].public_base_url.rstrip("/") + "/fhir"


def fhir_response(body: dict, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype=FHIR_JSON,
    )
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def outcome_response(error: FhirError) -> Response:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": error.code,
        "diagnostics": error.diagnostics,
    }
    if error.expression:
        issue["expression"] = [error.expression]
    body = {"resourceType": "OperationOutcome", "issue": [issue]}
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="fhir", error="invalid_token"'
    return fhir_response(body, error.status, headers)


@bp.errorhandler(FhirError)
def _fhir_error(error: FhirError) -> Response:
    return outcome_response(error)


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> Response:
    codes = {403: "forbidden", 404: "not-found", 409: "conflict", 422: "processing"}
    return outcome_response(
        FhirError(error.status_code, codes.get(error.status_code, "invalid"), error.message)
    )


@bp.before_request
def _negotiate() -> None:
    """`_format` and Accept: we speak FHIR JSON only."""
    wanted = request.args.get("_format")
    if wanted is not None and wanted not in JSON_FORMATS:
        raise FhirError(406, "not-supported", f"_format={wanted} is not supported; use json.")


@bp.get("/metadata")
def metadata() -> Response:
    return fhir_response(capability_statement(base_url()))


# --- authentication -----------------------------------------------------------------------------


def require(resource_type: str, access: str) -> None:
    """A valid bearer token whose scopes allow this access to this resource type."""
    from referrals.fhir import oauth

    try:
        client = oauth.authenticate_bearer(
            request.headers.get("Authorization"), ip=request.remote_addr
        )
    except oauth.InvalidToken as err:
        raise FhirError(err.status_code, "login", str(err) or "A bearer token is needed.") from None
    if not client.allows(resource_type, access):
        raise FhirError(
            403, "forbidden", f"The token's scopes do not allow {access} of {resource_type}."
        )
    g.fhir_actor = client


def actor():
    return g.fhir_actor


# --- reads -----------------------------------------------------------------------------------


Reader = Callable[[Any, uuid.UUID], dict]


@bp.get("/<resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str) -> Response:
    if resource_type not in SERVED:
        raise FhirError(404, "not-supported", f"We do not serve {resource_type} resources.")
    require(resource_type, "read")
    try:
        key = uuid.UUID(resource_id)
    except ValueError:
        raise FhirError(
            404, "not-found", f"{resource_type}/{resource_id} does not exist."
        ) from None
    from referrals.fhir import reads

    resource = reads.read(actor(), resource_type, key, base_url())
    headers = {}
    version = resource.get("meta", {}).get("versionId")
    if version:
        headers["ETag"] = f'W/"{version}"'
    return fhir_response(resource, headers=headers)
