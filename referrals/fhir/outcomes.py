"""What every answer under /fhir that is not a success is: an OperationOutcome (FHIR JSON, never
HTML, never a cookie), with an HTTP status and an issue code (http://hl7.org/fhir/issue-type)
from one table. Whatever goes wrong while serving /fhir comes here: our own refusals
(FhirError, FhirProblem), the services' (ServiceError, a lifecycle Refusal), HTTP's (unknown
route 404, method 405, 406, 413, 415...) and the unexpected, which is logged without what was
sent (it may quote a patient) under an incident number the answer gives, and answered 500
`exception`. The OAuth token endpoint answers in its own format (RFC 6749 §5.2) the same way."""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from pathlib import Path
from typing import Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from referrals.text_values import printable, shown

FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"

log = logging.getLogger(__name__)

# HTTP status -> issue type, for the statuses that do not come with their own code.
ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


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
        self.headers: dict[str, str] = {}


def serves(path: str) -> bool:
    """Whether a request path is the FHIR API's."""
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")


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


# --- the table ----------------------------------------------------------------------------------


def fhir_error(error: BaseException) -> FhirError:
    """The status, issue code and diagnostics an exception raised while serving /fhir is
    answered with."""
    from referrals.errors import ServiceError
    from referrals.fhir.tasks import FhirProblem
    from referrals.loop.lifecycle import Refusal

    if isinstance(error, FhirError):
        return error
    if isinstance(error, FhirProblem):
        return FhirError(error.status, error.code, error.diagnostics, error.expression)
    if isinstance(error, Refusal):
        return FhirError(422, "business-rule", str(error))
    if isinstance(error, ServiceError):
        status = error.status_code
        return FhirError(status, ISSUE_TYPES.get(status, "invalid"), error.message)
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        return _http_error(error)
    return _unexpected(error)


def _http_error(error: HTTPException) -> FhirError:
    """What HTTP itself refused (routing, methods, sizes), in words for the client."""
    status = error.code or 400
    if status == 404:
        diagnostics = (
            f"There is nothing at {shown(request.path, 200)}: {base_url()}/metadata lists what "
            "we serve."
        )
    elif status == 405:
        allowed = sorted(getattr(error, "valid_methods", None) or [])
        diagnostics = (
            f"{shown(request.method, 20)} is not supported at {shown(request.path, 200)}"
            + (f"; it takes {', '.join(allowed)}." if allowed else ".")
        )
    elif status == 406:
        diagnostics = f"We answer {FHIR_JSON} only."
    elif status == 413:
        limit = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024
        diagnostics = f"The body is over {limit} KiB." if limit else "The body is too large."
    else:
        diagnostics = error.description or error.name
    found = FhirError(status, ISSUE_TYPES.get(status, "invalid"), diagnostics)
    found.headers = {
        name: value
        for name, value in error.get_headers()
        if name.lower() in {"allow", "retry-after", "www-authenticate"}
    }
    return found


def _unexpected(error: BaseException) -> FhirError:
    """Something we did not foresee: logged for us by its type and where it happened (not its
    message, which may quote what was sent), answered with an incident number to quote."""
    incident = uuid.uuid4().hex[:12]
    cause = getattr(error, "original_exception", None) or error  # a 500 Flask made of it
    log.error(
        "FHIR %s %s failed, incident %s: %s at %s",
        request.method,
        request.url_rule.rule if request.url_rule else "(no route)",
        incident,
        type(cause).__name__,
        where(cause),
    )
    status = getattr(error, "code", None) if isinstance(error, HTTPException) else None
    return FhirError(
        status or 500,
        "exception",
        f"The server could not complete the request (incident {incident}). Read the "
        "resource before trying again: the request may or may not have been carried out.",
    )


def where(error: BaseException, frames: int = 8) -> str:
    """The last frames of an exception's traceback, as file:line function (no values)."""
    stack = traceback.extract_tb(error.__traceback__)[-frames:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))


# --- answers ------------------------------------------------------------------------------------


def base_url() -> str:
    return current_app.config["SETTINGS"].public_base_url.rstrip("/") + FHIR_PREFIX


def _log_refusal(error: FhirError) -> None:
    """A partner's write we refused, for whoever looks after the integration: the request, the
    client, the status and where the problem was. Not the diagnostics: they may quote what
    was sent (a name, a number); the partner has them in the OperationOutcome."""
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and 400 <= error.status < 500:
        client = getattr(g.get("fhir_actor"), "client_id", None) or "-"
        log.warning(
            "FHIR %s %s from client %s refused %d %s at %s",
            request.method,
            request.path,
            client,
            error.status,
            error.code,
            error.expression or "-",
        )


def outcome_response(error: FhirError) -> Response:
    """The OperationOutcome answering a FhirError."""
    _log_refusal(error)
    issue: dict[str, Any] = {
        "severity": "error",
        "code": error.code,
        # what was sent may be quoted in it: FHIR strings hold no control characters
        "diagnostics": printable(error.diagnostics),
    }
    if error.expression:
        issue["expression"] = [printable(error.expression)]
    body = {"resourceType": "OperationOutcome", "issue": [issue]}
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="fhir", error="invalid_token"')
    return fhir_response(body, error.status, headers)


def answer(error: Exception) -> Response:
    """Any exception raised while serving /fhir, as its OperationOutcome."""
    return outcome_response(fhir_error(error))


def api_error(error: Exception) -> Response | None:
    """The answer to an error on the machine APIs, in their own formats: an OperationOutcome
    under /fhir, RFC 6749 JSON at /oauth; None for the pages, which answer with pages."""
    if serves(request.path):
        return answer(error)
    from referrals.fhir import oauth

    if oauth.serves(request.path):
        return oauth.error_response(error)
    return None
