"""A fake of the health information exchange's FHIR R4 server, for tests.

It is a real HTTP server on 127.0.0.1 (an OS-chosen port) served from a background thread, so
our exchange client and third-party clients (``requests``, ``fhirclient``) talk to it over the
wire, the way they would talk to the exchange::

    with FakeExchange() as ex:
        ex.register_client("our-platform", jwks)        # our public keys
        token = ...  # POST ex.token_url with a signed client assertion
        requests.post(f"{ex.url}/Task", json=task, headers={"Authorization": f"Bearer {token}"})
        assert ex.resources("Task")[0]["meta"]["versionId"] == "1"

What it serves (JSON only, ``application/fhir+json``; every error is an OperationOutcome with a
``diagnostics`` saying what was wrong):

- SMART Backend Services: ``GET {base}/.well-known/smart-configuration`` and
  ``POST {origin}/oauth/token`` (``client_credentials`` with a ``private_key_jwt`` assertion
  signed RS384 or ES384 by a key of the client's registered JWKS). Every FHIR request but
  ``metadata`` and the SMART configuration (discovery is public) needs a bearer token whose
  scopes (``system/<Type|*>.<read|write|*>`` or ``.<cruds>``) allow it: 401 without, 403 when a
  scope is missing. ``require_auth = False`` turns that off.
- ``GET {base}/metadata``; create (with ``If-None-Exist``), read, vread, instance history,
  update (with ``If-Match``; update as create), search, and ``POST {base}`` transactions.
- R4 Subscriptions Backport IG 1.1.0 topic-based subscriptions over ``rest-hook``: a handshake
  when a Subscription is stored, then ``event-notification`` Bundles (``empty``, ``id-only`` or
  ``full-resource``) when a Task (:data:`TASK_TOPIC`) or ServiceRequest
  (:data:`SERVICE_REQUEST_TOPIC`) is created or updated and matches the Subscription's filters;
  ``GET {base}/Subscription/{id}/$status``.

Test controls: :meth:`FakeExchange.put_resource` (another system's write), ``fail_next``,
``down``/``up`` (the listening socket really closes; it comes back on the same port),
``delay_seconds``, ``expire_tokens``, ``reset``; and what happened: ``requests``,
``notifications``, ``errors``. All of them are safe to use from any thread.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
BASE_PATH = "/fhir"
TOKEN_PATH = "/oauth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGORITHMS = ("RS384", "ES384")
ASSERTION_MAX_LIFETIME = 300  # SMART Backend Services: exp at most five minutes ahead
CLOCK_SKEW = 30  # seconds of client clock drift accepted on exp/iat

# The exchange's subscription topics (canonical URLs of its own SubscriptionTopics).
TASK_TOPIC = "http://exchange.example.org/fhir/SubscriptionTopic/task-changed"
SERVICE_REQUEST_TOPIC = "http://exchange.example.org/fhir/SubscriptionTopic/servicerequest-changed"
TOPICS = {TASK_TOPIC: "Task", SERVICE_REQUEST_TOPIC: "ServiceRequest"}

# R4 Subscriptions Backport IG 1.1.0 (hl7.fhir.uv.subscriptions-backport).
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
FILTER_CRITERIA = f"{BACKPORT}/StructureDefinition/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/StructureDefinition/backport-payload-content"
TOPIC_CANONICAL = f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
STATUS_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-status-r4"
NOTIFICATION_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-notification-r4"
STATUS_OPERATION = f"{BACKPORT}/OperationDefinition/backport-subscription-status"
SUBSCRIPTION_ERROR = "http://terminology.hl7.org/CodeSystem/subscription-error"
PAYLOAD_CONTENTS = ("empty", "id-only", "full-resource")

# Every R4 (4.0.1) resource type.
R4_TYPES = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "Substance",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)
# Types that are not stored: they only travel inside requests and answers.
_NOT_STORED = frozenset({"Bundle", "OperationOutcome", "Parameters", "CapabilityStatement"})

# Reference search parameters: name -> element, per type (R4's definitions for these types).
_SUBJECT = {"subject": "subject", "patient": "subject"}
REFERENCE_PARAMS: dict[str, dict[str, str]] = {
    "Task": {
        "owner": "owner",
        "requester": "requester",
        "focus": "focus",
        "subject": "for",
        "patient": "for",
        "based-on": "basedOn",
        "part-of": "partOf",
    },
    "ServiceRequest": {
        **_SUBJECT,
        "requester": "requester",
        "performer": "performer",
        "based-on": "basedOn",
    },
    "Procedure": {**_SUBJECT, "based-on": "basedOn", "part-of": "partOf"},
    "Observation": {**_SUBJECT, "based-on": "basedOn", "part-of": "partOf"},
    "QuestionnaireResponse": {**_SUBJECT, "based-on": "basedOn", "part-of": "partOf"},
    "Condition": dict(_SUBJECT),
    "Goal": dict(_SUBJECT),
    "Consent": {"patient": "patient"},
}
# Token parameters offered on every type: _id, identifier, status.
_CONTROL_PARAMS = frozenset(
    {"_count", "_offset", "_include", "_sort", "_summary", "_total", "_format", "_pretty"}
)
_SORTS = {"_lastUpdated", "-_lastUpdated", "_id", "-_id"}
MAX_COUNT = 1000
DEFAULT_COUNT = 50

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PATH = re.compile(
    r"^/(?P<type>[A-Za-z]+)(?:/(?P<id>[^/]+)(?:/(?P<op>\$status|_history)(?:/(?P<vid>[^/]+))?)?)?$"
)
_ETAG = re.compile(r'^(?:W/)?"?(?P<version>[^"]+)"?$')
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2}):(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_SCOPE = re.compile(
    r"^system/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<verbs>read|write|\*|c?r?u?d?s?)$"
)
_V1_VERBS = {"read": "rs", "write": "cud", "*": "cruds"}
_REASONS = {200: "OK", 201: "Created"}


class FhirError(Exception):
    """An error answer: HTTP status, OperationOutcome issue code and diagnostics."""

    def __init__(
        self, status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.diagnostics)


class OAuthError(Exception):
    """A token endpoint error (RFC 6749 section 5.2): 401 for invalid_client, else 400."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = 401 if error == "invalid_client" else 400


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC with microseconds, e.g. ``2025-01-02T03:04:05.123456Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def etag(version: int | str) -> str:
    return f'W/"{version}"'


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _date_range(text: str) -> tuple[datetime, datetime]:
    """The span a FHIR date/dateTime/instant search value stands for, by its precision: a day is
    the whole day, ``...T10:00:00.123Z`` the millisecond (R4 search, "date" parameters). A value
    with no zone is read as UTC; a ``+`` the query string turned into a space is put back."""
    value = text.strip().replace(" ", "+")
    match = _DATE.match(value)
    if not match:
        raise FhirError(400, "invalid", f"Invalid date/time {text!r} in a search parameter")
    parts = match.groupdict()
    tz: timezone = UTC
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        hours, minutes = int(parts["tz"][1:3]), int(parts["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        year = int(parts["y"])
        if parts["m"] is None:
            return datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
        month = int(parts["m"])
        if parts["d"] is None:
            start = datetime(year, month, 1, tzinfo=tz)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
            return start, end
        day = datetime(year, month, int(parts["d"]), tzinfo=tz)
        if parts["H"] is None:
            return day, day + timedelta(days=1)
        start = day.replace(hour=int(parts["H"]), minute=int(parts["M"]))
        if parts["S"] is None:
            return start, start + timedelta(minutes=1)
        start = start.replace(second=int(parts["S"]))
        if parts["f"] is None:
            return start, start + timedelta(seconds=1)
        digits = parts["f"][:6]
        start = start.replace(microsecond=int(digits.ljust(6, "0")))
        return start, start + timedelta(microseconds=10 ** (6 - len(digits)))
    except ValueError as error:
        raise FhirError(400, "invalid", f"Invalid date/time {text!r}: {error}") from None


def _date_matches(value: datetime, prefix: str, start: datetime, end: datetime) -> bool:
    if prefix == "eq":
        return start <= value < end
    if prefix == "ne":
        return not start <= value < end
    if prefix == "gt":
        return value >= end
    if prefix == "ge":
        return value >= start
    if prefix == "lt":
        return value < start
    return value < end  # le


def _values(element: Any) -> list[Any]:
    if element is None:
        return []
    return element if isinstance(element, list) else [element]


def _rewrite_references(node: Any, rewrite: Callable[[str], str]) -> Any:
    """A copy of ``node`` with each ``reference`` string passed through ``rewrite``."""
    if isinstance(node, dict):
        return {
            key: rewrite(value)
            if key == "reference" and isinstance(value, str)
            else _rewrite_references(value, rewrite)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_references(item, rewrite) for item in node]
    return node


def _scope_allows(scopes: Iterable[str], resource_type: str, verb: str) -> bool:
    """SMART v1 (``read``/``write``/``*``) and v2 (``cruds``) system scopes."""
    for scope in scopes:
        match = _SCOPE.match(scope)
        if not match or match["type"] not in ("*", resource_type):
            continue
        if verb in _V1_VERBS.get(match["verbs"], match["verbs"]):
            return True
    return False


@dataclass
class _Criterion:
    """One search parameter occurrence: values are ORed, occurrences ANDed."""

    name: str
    values: list[str]
    modifier: str | None = None


@dataclass
class _Search:
    resource_type: str
    criteria: list[_Criterion]
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: list[tuple[str, str, str | None]] = field(default_factory=list)
    sort: str = "_lastUpdated"
    summary_count: bool = False
    echo: list[tuple[str, str]] = field(default_factory=list)  # for the self/next links


@dataclass
class _Client:
    client_id: str
    keys: list[dict[str, Any]]
    scopes: list[str] | None


@dataclass
class _Token:
    client_id: str
    scopes: list[str]
    expires_at: float


@dataclass
class _SubscriptionState:
    topic: str
    resource_type: str
    filters: list[_Search]
    content: str
    endpoint: str
    headers: dict[str, str]
    events: int = 0


@dataclass
class _Delivery:
    subscription_id: str
    kind: str  # handshake | event-notification
    event_number: int | None = None
    timestamp: str | None = None
    focus: dict[str, Any] | None = None  # the resource version that changed
    created: bool = False


class FakeExchange:
    """The exchange's FHIR R4 server on ``127.0.0.1:port``; see the module docstring."""

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._outbox: queue.Queue[_Delivery | None] = queue.Queue()
        self._defaults()

    def _defaults(self) -> None:
        with self._lock:
            self.require_auth = True
            self.token_seconds: float = 300
            self.delay_seconds: float = 0.0
            self.notify_attempts = 3
            self.notify_retry_seconds = 0.1
            self.notify_timeout = 2.0
            self._history: dict[tuple[str, str], list[dict[str, Any]]] = {}
            self._requests: list[dict[str, Any]] = []
            self._notifications: list[dict[str, Any]] = []
            self._errors: list[BaseException] = []
            self._clients: dict[str, _Client] = {}
            self._tokens: dict[str, _Token] = {}
            self._used_jtis: set[tuple[str, str]] = set()
            self._faults: list[tuple[int, dict[str, str]]] = []
            self._subscriptions: dict[str, _SubscriptionState] = {}
            self._pending = 0
            self._last_instant = datetime.min.replace(tzinfo=UTC)

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeExchange:
        """Listen (on the port of the last run, if any) and start the notification worker."""
        if self._worker is None:
            self._stopping.clear()
            self._worker = threading.Thread(target=self._deliver_forever, daemon=True)
            self._worker.name = "FakeExchange:notifications"
            self._worker.start()
        self.up()
        return self

    def stop(self) -> None:
        self.down()
        self._stopping.set()
        if self._worker is not None:
            self._outbox.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    def up(self) -> None:
        """Listen again, on the same port, after :meth:`down`. Stored data is kept."""
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._port = int(server.server_address[1])
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.name = f"FakeExchange:{self._port}"
        self._server, self._thread = server, thread
        thread.start()

    def down(self) -> None:
        """Close the listening socket: connections are refused until :meth:`up`."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeExchange is not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The FHIR base URL, e.g. ``http://127.0.0.1:PORT/fhir`` (no trailing slash)."""
        return self.origin + BASE_PATH

    @property
    def token_url(self) -> str:
        """The token endpoint, which client assertions must name as their ``aud``."""
        return self.origin + TOKEN_PATH

    # clients and tokens -----------------------------------------------------------------

    def register_client(
        self, client_id: str, jwks: dict[str, Any], scopes: Iterable[str] | None = None
    ) -> None:
        """Know a backend client by its public keys (a JWKS, each key with a ``kid``). With
        ``scopes``, tokens are granted at most those; without, any system scope asked for."""
        keys = list(jwks.get("keys") or [])
        if not keys or any(not isinstance(k, dict) or not k.get("kid") for k in keys):
            raise ValueError("jwks must be {'keys': [...]} with a kid on each key")
        with self._lock:
            self._clients[client_id] = _Client(
                client_id, copy.deepcopy(keys), None if scopes is None else list(scopes)
            )

    def grant_token(self, client_id: str = "test", scope: str = "system/*.*") -> str:
        """An access token issued without the assertion round trip, for tests about other
        things."""
        return self._issue(client_id, scope.split())["access_token"]

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working now."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    # scripting and inspection -----------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, retry_after: int | None = None) -> None:
        """The next ``n`` FHIR requests answer ``status`` with an OperationOutcome (and a
        ``Retry-After`` header when given) and change nothing."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._faults.extend([(status, headers)] * n)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request, oldest first: ``method``, ``path``, ``query`` (name -> values),
        ``headers``, ``json`` (the parsed body, or None), ``form`` (token requests), ``body``,
        ``status`` (None while being answered) and ``at``."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """Every notification attempt, oldest first: ``subscription`` (id), ``type``
        (handshake / event-notification), ``event_number``, ``endpoint``, ``attempt`` (0: not
        sent because the Subscription was not active), ``headers``, ``bundle``, ``status`` (the
        endpoint's HTTP status, None if it could not be reached), ``error`` and ``at``."""
        with self._lock:
            return [dict(n) for n in self._notifications]

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions in the server or the notification worker."""
        with self._lock:
            return list(self._errors)

    def wait_for_notifications(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until every queued notification has been delivered or given up on."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._pending} notifications still pending")
                self._idle.wait(left)
        return self.notifications

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """The current version of each stored resource of a type, oldest change first."""
        with self._lock:
            found = [
                copy.deepcopy(versions[-1])
                for (kind, _), versions in self._history.items()
                if kind == resource_type
            ]
        return sorted(found, key=lambda r: (r["meta"]["lastUpdated"], r["id"]))

    def resource(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with self._lock:
            versions = self._history.get((resource_type, resource_id))
            return copy.deepcopy(versions[-1]) if versions else None

    def history(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
        """Every version of one resource, oldest first."""
        with self._lock:
            return copy.deepcopy(self._history.get((resource_type, resource_id), []))

    def put_resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a resource as another system would (a new id when it has none; the next
        version otherwise) and fire the subscriptions it matches. Returns what is stored."""
        resource_type = resource.get("resourceType")
        if resource_type not in R4_TYPES or resource_type in _NOT_STORED:
            raise ValueError(f"cannot store a {resource_type!r}")
        with self._lock:
            body = copy.deepcopy(resource)
            body.setdefault("id", uuid.uuid4().hex)
            stored = self._commit([self._plan(resource_type, body["id"], body)], self._now())
        return stored[0]

    def reset(self) -> None:
        """Forget resources, subscriptions, clients, tokens, requests, notifications, errors and
        faults, and put the settings back to their defaults. The port stays."""
        with self._lock:
            while not self._outbox.empty():
                try:
                    self._outbox.get_nowait()
                except queue.Empty:
                    break
            self._defaults()
            self._idle.notify_all()

    # storage (callers hold the lock) ----------------------------------------------------

    def _now(self) -> datetime:
        """Now, and strictly later than any instant given before, so that polling with
        ``_lastUpdated=gt<last seen>`` never misses a change."""
        now = datetime.now(UTC)
        if now <= self._last_instant:
            now = self._last_instant + timedelta(microseconds=1)
        self._last_instant = now
        return now

    def _current(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        versions = self._history.get((resource_type, resource_id))
        return versions[-1] if versions else None

    def _plan(
        self,
        resource_type: str,
        resource_id: str,
        body: dict[str, Any],
        if_match: str | None = None,
        staged: dict[tuple[str, str], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The next version of a resource, checked but not stored yet."""
        if not _ID.match(resource_id):
            raise FhirError(400, "invalid", f"{resource_id!r} is not a valid FHIR id")
        key = (resource_type, resource_id)
        current = (staged or {}).get(key) or self._current(resource_type, resource_id)
        version = int(current["meta"]["versionId"]) if current else 0
        if if_match is not None:
            match = _ETAG.match(if_match.strip())
            wanted = match["version"] if match else if_match
            if current is None:
                raise FhirError(
                    412,
                    "conflict",
                    f"If-Match {if_match}: {resource_type}/{resource_id} does not exist yet",
                )
            if wanted != str(version):
                raise FhirError(
                    412,
                    "conflict",
                    f"If-Match {if_match} but {resource_type}/{resource_id} is "
                    f"at version {version} (ETag {etag(version)})",
                )
        planned = copy.deepcopy(body)
        planned["resourceType"] = resource_type
        planned["id"] = resource_id
        meta = dict(planned.get("meta") or {})
        meta["versionId"] = str(version + 1)
        planned["meta"] = meta
        if resource_type == "Subscription":
            self._check_subscription(planned)
            planned["status"] = "requested"
            planned.pop("error", None)
        return planned

    def _commit(self, planned: list[dict[str, Any]], moment: datetime) -> list[dict[str, Any]]:
        """Store planned versions at one instant and queue what they cause."""
        stored = []
        for resource in planned:
            resource["meta"]["lastUpdated"] = instant(moment)
            key = (resource["resourceType"], resource["id"])
            self._history.setdefault(key, []).append(resource)
            stored.append(copy.deepcopy(resource))
        for resource in planned:
            self._changed(resource)
        return stored

    def _changed(self, resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "Subscription":
            self._subscriptions[resource["id"]] = self._check_subscription(resource)
            self._enqueue(_Delivery(resource["id"], "handshake"))
            return
        for sub_id, state in self._subscriptions.items():
            subscription = self._current("Subscription", sub_id)
            if (
                subscription is None
                or subscription.get("status") == "off"
                or state.resource_type != resource["resourceType"]
                or not all(self._matches(resource, f.criteria) for f in state.filters)
            ):
                continue
            state.events += 1
            self._enqueue(
                _Delivery(
                    sub_id,
                    "event-notification",
                    event_number=state.events,
                    timestamp=resource["meta"]["lastUpdated"],
                    focus=copy.deepcopy(resource),
                    created=resource["meta"]["versionId"] == "1",
                )
            )

    def _enqueue(self, delivery: _Delivery) -> None:
        self._pending += 1
        self._outbox.put(delivery)

    # search (callers hold the lock) -----------------------------------------------------

    def _parse_search(
        self, resource_type: str, pairs: list[tuple[str, str]], *, controls: bool = True
    ) -> _Search:
        search = _Search(resource_type, [])
        references = REFERENCE_PARAMS.get(resource_type, {})
        for raw_name, value in pairs:
            name, _, modifier = raw_name.partition(":")
            if name in _CONTROL_PARAMS and controls:
                self._parse_control(search, name, value, references)
                continue
            if name not in {"_id", "_lastUpdated", "identifier", "status", *references}:
                known = ", ".join(
                    sorted({"_id", "_lastUpdated", "identifier", "status"} | set(references))
                )
                raise FhirError(
                    400,
                    "not-supported",
                    f"Unknown search parameter {raw_name!r} for "
                    f"{resource_type}; supported: {known}",
                )
            if modifier and not (name in references and modifier in R4_TYPES):
                raise FhirError(400, "not-supported", f"Unsupported modifier in {raw_name!r}")
            search.criteria.append(_Criterion(name, value.split(","), modifier or None))
            search.echo.append((raw_name, value))
            if name == "_lastUpdated":
                for item in value.split(","):
                    self._date_criterion(item)  # reject bad values now
        return search

    def _parse_control(
        self, search: _Search, name: str, value: str, references: dict[str, str]
    ) -> None:
        if name in ("_count", "_offset"):
            try:
                number = int(value)
            except ValueError:
                raise FhirError(400, "invalid", f"{name} must be a number, not {value!r}") from None
            if number < 0 or (name == "_count" and number > MAX_COUNT):
                raise FhirError(400, "invalid", f"{name}={value} is out of range")
            setattr(search, name[1:], number)
        elif name == "_include":
            source, _, rest = value.partition(":")
            param, _, target = rest.partition(":")
            if source != search.resource_type or param not in references:
                raise FhirError(
                    400,
                    "not-supported",
                    f"Unsupported _include={value}; supported: "
                    + ", ".join(f"{search.resource_type}:{p}" for p in references),
                )
            search.includes.append((source, param, target or None))
            search.echo.append((name, value))
        elif name == "_sort":
            if value not in _SORTS:
                raise FhirError(400, "not-supported", f"Unsupported _sort={value}")
            search.sort = value
            search.echo.append((name, value))
        elif name == "_summary":
            if value != "count":
                raise FhirError(400, "not-supported", f"Unsupported _summary={value}")
            search.summary_count = True
            search.echo.append((name, value))
        # _total, _format and _pretty change nothing: totals are always given, JSON only.

    def _date_criterion(self, value: str) -> tuple[str, datetime, datetime]:
        prefix = value[:2] if value[:2].isalpha() else "eq"
        if prefix not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise FhirError(400, "not-supported", f"Unsupported date prefix in {value!r}")
        start, end = _date_range(value[2:] if value[:2].isalpha() else value)
        return prefix, start, end

    def _local(self, reference: str) -> str:
        """``Type/id`` for a reference to this server (relative, or absolute with our base);
        other references unchanged."""
        for base in (self.url + "/", f"http://localhost:{self.port}{BASE_PATH}/"):
            if reference.startswith(base):
                return reference[len(base) :]
        return reference

    def _matches(self, resource: dict[str, Any], criteria: list[_Criterion]) -> bool:
        references = REFERENCE_PARAMS.get(resource["resourceType"], {})
        for criterion in criteria:
            if criterion.name == "_id":
                ok = resource["id"] in criterion.values
            elif criterion.name == "_lastUpdated":
                moment = parse_instant(resource["meta"]["lastUpdated"])
                ok = any(_date_matches(moment, *self._date_criterion(v)) for v in criterion.values)
            elif criterion.name == "status":
                ok = resource.get("status") in criterion.values
            elif criterion.name == "identifier":
                ok = any(
                    _identifier_matches(ident, value)
                    for ident in _values(resource.get("identifier"))
                    for value in criterion.values
                )
            else:
                element = references[criterion.name]
                ok = any(
                    self._reference_matches(ref, value, criterion)
                    for ref in _values(resource.get(element))
                    for value in criterion.values
                )
            if not ok:
                return False
        return True

    def _reference_matches(self, ref: Any, value: str, criterion: _Criterion) -> bool:
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return False
        stored = self._local(ref["reference"])
        wanted = self._local(value)
        if criterion.modifier:
            wanted = f"{criterion.modifier}/{wanted}"
        elif criterion.name == "patient" and "/" not in wanted:
            wanted = f"Patient/{wanted}"
        if "/" not in wanted:  # a bare id matches that id of any type
            return stored.rsplit("/", 1)[-1] == wanted and stored.count("/") == 1
        if criterion.name == "patient" and not stored.startswith("Patient/"):
            return False
        return stored == wanted

    def _find(self, search: _Search) -> list[dict[str, Any]]:
        found = [
            versions[-1]
            for (kind, _), versions in self._history.items()
            if kind == search.resource_type and self._matches(versions[-1], search.criteria)
        ]
        key = search.sort.lstrip("-")
        found.sort(
            key=lambda r: (r["meta"]["lastUpdated"], r["id"]) if key == "_lastUpdated" else r["id"],
            reverse=search.sort.startswith("-"),
        )
        return found

    def _search_bundle(self, search: _Search) -> dict[str, Any]:
        found = self._find(search)
        page = [] if search.summary_count else found[search.offset : search.offset + search.count]
        entries = [
            {
                "fullUrl": f"{self.url}/{r['resourceType']}/{r['id']}",
                "resource": copy.deepcopy(r),
                "search": {"mode": "match"},
            }
            for r in page
        ]
        seen = {(r["resourceType"], r["id"]) for r in page}
        for _, param, target in search.includes:
            element = REFERENCE_PARAMS[search.resource_type][param]
            for resource in page:
                for ref in _values(resource.get(element)):
                    local = self._local(ref.get("reference", "")) if isinstance(ref, dict) else ""
                    kind, _, ident = local.partition("/")
                    included = self._current(kind, ident) if ident and "/" not in ident else None
                    if included is None or (kind, ident) in seen:
                        continue
                    if target and kind != target:
                        continue
                    seen.add((kind, ident))
                    entries.append(
                        {
                            "fullUrl": f"{self.url}/{kind}/{ident}",
                            "resource": copy.deepcopy(included),
                            "search": {"mode": "include"},
                        }
                    )

        def link(offset: int) -> str:
            params = [*search.echo, ("_count", str(search.count)), ("_offset", str(offset))]
            return f"{self.url}/{search.resource_type}?{urlencode(params)}"

        links = [{"relation": "self", "url": link(search.offset)}]
        if not search.summary_count and search.offset + search.count < len(found):
            links.append({"relation": "next", "url": link(search.offset + search.count)})
        if search.offset > 0 and not search.summary_count:
            links.append(
                {"relation": "previous", "url": link(max(search.offset - search.count, 0))}
            )
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "meta": {"lastUpdated": instant(datetime.now(UTC))},
            "type": "searchset",
            "total": len(found),
            "link": links,
        }
        if entries:
            bundle["entry"] = entries
        return bundle

    def _conditional_matches(self, resource_type: str, condition: str) -> list[dict[str, Any]]:
        """The resources an ``If-None-Exist`` (or conditional reference) query finds."""
        pairs = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
        if not pairs:
            raise FhirError(400, "invalid", f"Empty condition {condition!r}")
        return self._find(self._parse_search(resource_type, pairs, controls=False))

    # subscriptions ------------------------------------------------------------------------

    def _check_subscription(self, subscription: dict[str, Any]) -> _SubscriptionState:
        """The Backport IG's R4 Subscription, as this server supports it, or 422 saying why."""

        def refuse(why: str) -> FhirError:
            return FhirError(422, "processing", f"Subscription refused: {why}")

        topic = subscription.get("criteria")
        if topic not in TOPICS:
            raise refuse(f"criteria must be a topic canonical URL, one of {sorted(TOPICS)}")
        resource_type = TOPICS[topic]
        filters = []
        for extension in (subscription.get("_criteria") or {}).get("extension") or []:
            if extension.get("url") != FILTER_CRITERIA:
                continue
            text = str(extension.get("valueString") or "")
            kind, _, query = text.partition("?")
            if kind != resource_type or not query:
                raise refuse(f"filterCriteria {text!r} must be {resource_type}?<search>")
            try:
                filters.append(
                    self._parse_search(
                        kind, parse_qsl(query, keep_blank_values=True), controls=False
                    )
                )
            except FhirError as error:
                raise refuse(f"filterCriteria {text!r}: {error.diagnostics}") from None
        channel = subscription.get("channel") or {}
        if channel.get("type") != "rest-hook":
            raise refuse("channel.type must be rest-hook")
        endpoint = str(channel.get("endpoint") or "")
        if not endpoint.startswith(("http://", "https://")):
            raise refuse("channel.endpoint must be an http(s) URL")
        if channel.get("payload") not in (FHIR_JSON, "application/json"):
            raise refuse(f"channel.payload must be {FHIR_JSON}")
        contents = [
            e.get("valueCode")
            for e in (channel.get("_payload") or {}).get("extension") or []
            if e.get("url") == PAYLOAD_CONTENT
        ]
        if len(contents) != 1 or contents[0] not in PAYLOAD_CONTENTS:
            raise refuse(
                f"channel._payload needs one {PAYLOAD_CONTENT} extension, one of {PAYLOAD_CONTENTS}"
            )
        headers = {}
        for line in _values(channel.get("header")):
            name, colon, value = str(line).partition(":")
            if not colon or not name.strip():
                raise refuse(f"channel.header {line!r} is not 'Name: value'")
            headers[name.strip()] = value.strip()
        state = _SubscriptionState(topic, resource_type, filters, contents[0], endpoint, headers)
        previous = self._subscriptions.get(str(subscription.get("id")))
        if previous is not None:
            state.events = previous.events
        return state

    def _status_parameters(
        self, sub_id: str, kind: str, delivery: _Delivery | None = None
    ) -> dict[str, Any]:
        """The Backport IG's ``backport-subscription-status-r4`` Parameters."""
        subscription = self._current("Subscription", sub_id) or {}
        state = self._subscriptions[sub_id]
        status = subscription.get("status", "off")
        parameters: list[dict[str, Any]] = [
            {"name": "subscription", "valueReference": {"reference": self._full(subscription)}},
            {"name": "topic", "valueCanonical": state.topic},
            {"name": "status", "valueCode": status},
            {"name": "type", "valueCode": kind},
            {
                "name": "events-since-subscription-start",
                # In a notification: the count when its event happened (a later event may
                # already have been counted by the time this one is sent).
                "valueString": str(
                    0
                    if kind == "handshake"
                    else delivery.event_number
                    if delivery is not None and delivery.event_number is not None
                    else state.events
                ),
            },
        ]
        if delivery is not None and delivery.event_number is not None:
            parts: list[dict[str, Any]] = [
                {"name": "event-number", "valueString": str(delivery.event_number)},
                {"name": "timestamp", "valueInstant": delivery.timestamp},
            ]
            if state.content != "empty" and delivery.focus is not None:
                parts.append(
                    {"name": "focus", "valueReference": {"reference": self._full(delivery.focus)}}
                )
            parameters.append({"name": "notification-event", "part": parts})
        if status == "error":
            parameters.append(
                {
                    "name": "error",
                    "valueCodeableConcept": {
                        "coding": [{"system": SUBSCRIPTION_ERROR, "code": "no-response"}],
                        "text": subscription.get("error", "notifications are not delivered"),
                    },
                }
            )
        status_id = str(uuid.uuid4())
        return {
            "resourceType": "Parameters",
            "id": status_id,
            "meta": {"profile": [STATUS_PROFILE]},
            "parameter": parameters,
        }

    def _full(self, resource: dict[str, Any]) -> str:
        return f"{self.url}/{resource.get('resourceType')}/{resource.get('id')}"

    def _notification_bundle(self, delivery: _Delivery) -> dict[str, Any]:
        """A ``history`` Bundle: the status Parameters first, then (``id-only``: ``fullUrl`` and
        ``request`` only; ``full-resource``: with the resource) the changed resource."""
        status = self._status_parameters(delivery.subscription_id, delivery.kind, delivery)
        entries: list[dict[str, Any]] = [
            {
                "fullUrl": f"urn:uuid:{status['id']}",
                "resource": status,
                "request": {
                    "method": "GET",
                    "url": f"{self.url}/Subscription/{delivery.subscription_id}/$status",
                },
                "response": {"status": "200"},
            }
        ]
        content = self._subscriptions[delivery.subscription_id].content
        focus = delivery.focus
        if focus is not None and content != "empty":
            kind = focus["resourceType"]
            entry: dict[str, Any] = {
                "fullUrl": self._full(focus),
                "request": {"method": "POST", "url": kind}
                if delivery.created
                else {"method": "PUT", "url": f"{kind}/{focus['id']}"},
                "response": {
                    "status": "201" if delivery.created else "200",
                    "etag": etag(focus["meta"]["versionId"]),
                    "lastModified": focus["meta"]["lastUpdated"],
                },
            }
            if content == "full-resource":
                entry["resource"] = copy.deepcopy(focus)
            entries.append(entry)
        return {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"profile": [NOTIFICATION_PROFILE]},
            "type": "history",
            "timestamp": instant(datetime.now(UTC)),
            "entry": entries,
        }

    def _set_subscription_status(self, sub_id: str, status: str, error: str | None) -> None:
        current = self._current("Subscription", sub_id)
        if current is None or current.get("status") == status:
            return
        updated = copy.deepcopy(current)
        updated["status"] = status
        if error:
            updated["error"] = error
        else:
            updated.pop("error", None)
        updated["meta"] = {
            **updated["meta"],
            "versionId": str(int(current["meta"]["versionId"]) + 1),
            "lastUpdated": instant(self._now()),
        }
        self._history[("Subscription", sub_id)].append(updated)

    def _deliver_forever(self) -> None:
        while True:
            delivery = self._outbox.get()
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            except Exception as error:
                self._record_error(error)
            finally:
                with self._idle:
                    self._pending = max(self._pending - 1, 0)
                    self._idle.notify_all()

    def _deliver(self, delivery: _Delivery) -> None:
        sub_id = delivery.subscription_id
        with self._lock:
            state = self._subscriptions.get(sub_id)
            subscription = self._current("Subscription", sub_id)
            if state is None or subscription is None:
                return  # forgotten by reset()
            bundle = self._notification_bundle(delivery)
            attempts = self.notify_attempts
            pause, timeout = self.notify_retry_seconds, self.notify_timeout
            sendable = delivery.kind == "handshake" or subscription.get("status") == "active"
        headers = {"Content-Type": f"{FHIR_JSON}; charset=utf-8", **state.headers}
        record = {
            "subscription": sub_id,
            "type": delivery.kind,
            "event_number": delivery.event_number,
            "endpoint": state.endpoint,
            "headers": headers,
            "bundle": bundle,
        }
        if not sendable:
            why = f"not sent: the Subscription is {subscription.get('status')}"
            self._record_notification({**record, "attempt": 0, "status": None, "error": why})
            return
        data = json.dumps(bundle).encode()
        problem = "no attempt"
        for attempt in range(1, attempts + 1):
            status, problem = _post(state.endpoint, data, headers, timeout)
            self._record_notification(
                {**record, "attempt": attempt, "status": status, "error": problem}
            )
            if status is not None and 200 <= status < 300:
                if delivery.kind == "handshake":
                    with self._lock:
                        self._set_subscription_status(sub_id, "active", None)
                return
            if attempt < attempts and self._stopping.wait(pause * attempt):
                return
        with self._lock:
            self._set_subscription_status(
                sub_id, "error", f"{delivery.kind} to {state.endpoint} failed: {problem}"
            )

    def _record_notification(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._notifications.append({**entry, "at": datetime.now(UTC)})

    # request handling (server threads) ---------------------------------------------------

    def _record_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def _record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _next_fault(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.origin,
            "token_endpoint": self.token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
            "scopes_supported": ["system/*.read", "system/*.write", "system/*.rs", "system/*.cud"],
            "capabilities": ["client-confidential-asymmetric"],
        }

    def _token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        """SMART Backend Services token request (RFC 7523 client assertion)."""
        for name, values in form.items():
            if len(values) > 1:
                raise OAuthError("invalid_request", f"The {name} parameter is repeated.")
        fields = {name: values[0] for name, values in form.items()}
        if fields.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials.")
        if fields.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
        assertion = fields.get("client_assertion") or ""
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_client", "client_assertion is not a JWT.") from None
        client_id = claims.get("iss")
        with self._lock:
            client = self._clients.get(str(client_id))
        if client is None:
            raise OAuthError("invalid_client", f"Unknown client {client_id!r} (the iss).")
        if claims.get("sub") != client_id:
            raise OAuthError("invalid_client", "The assertion's sub must equal its iss.")
        alg = header.get("alg")
        if alg not in SIGNING_ALGORITHMS:
            raise OAuthError("invalid_client", f"alg {alg!r}: sign with RS384 or ES384.")
        kid = header.get("kid")
        jwk = next((k for k in client.keys if k.get("kid") == kid), None)
        if not kid or jwk is None:
            raise OAuthError("invalid_client", f"No registered key of {client_id} has kid {kid!r}.")
        if jwk.get("alg") not in (None, alg) or jwk.get("kty") != (
            "RSA" if alg == "RS384" else "EC"
        ):
            raise OAuthError("invalid_client", f"Key {kid} is not for {alg}.")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            verified = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                audience=self.token_url,
                issuer=client_id,
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_client", "The assertion has expired.") from None
        except jwt.InvalidAudienceError:
            raise OAuthError("invalid_client", f"The aud must be {self.token_url}.") from None
        except jwt.MissingRequiredClaimError as error:
            raise OAuthError("invalid_client", f"The assertion has no {error.claim}.") from None
        except jwt.InvalidSignatureError:
            raise OAuthError("invalid_client", "The signature does not verify.") from None
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise OAuthError("invalid_client", f"The assertion is refused: {error}") from None
        if float(verified["exp"]) > time.time() + ASSERTION_MAX_LIFETIME + CLOCK_SKEW:
            raise OAuthError("invalid_client", "The assertion's exp is more than 5 minutes ahead.")
        with self._lock:
            if (client_id, str(verified["jti"])) in self._used_jtis:
                raise OAuthError("invalid_client", "The assertion's jti was used before.")
            self._used_jtis.add((client_id, str(verified["jti"])))
        requested = (fields.get("scope") or "").split()
        if not requested:
            raise OAuthError("invalid_scope", "A scope is required.")
        bad = [s for s in requested if not _SCOPE.match(s)]
        if bad:
            raise OAuthError("invalid_scope", f"Not system scopes: {' '.join(bad)}")
        granted = [s for s in requested if client.scopes is None or s in client.scopes]
        if not granted:
            raise OAuthError("invalid_scope", f"{client_id} may not have {' '.join(requested)}.")
        return self._issue(client_id, granted)

    def _issue(self, client_id: str, scopes: list[str]) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            seconds = self.token_seconds
            self._tokens[token] = _Token(client_id, scopes, time.time() + seconds)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": max(round(seconds), 0),
            "scope": " ".join(scopes),
        }

    def _authorize(self, header: str | None, checks: list[tuple[str, str]]) -> None:
        """401 unless a live bearer token is given; 403 unless its scopes allow each (type,
        verb) check (verbs: c r u d s)."""
        with self._lock:
            if not self.require_auth:
                return
            scheme, _, value = (header or "").partition(" ")
            token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
            problem = None
            if token is None:
                problem = "A valid bearer token is required (Authorization: Bearer <token>)."
            elif token.expires_at <= time.time():
                problem = "The access token has expired."
            if problem:
                challenge = (
                    f'Bearer realm="exchange", error="invalid_token", error_description="{problem}"'
                )
                raise FhirError(401, "login", problem, {"WWW-Authenticate": challenge})
            assert token is not None
            for resource_type, verb in checks:
                if not _scope_allows(token.scopes, resource_type, verb):
                    raise FhirError(
                        403,
                        "forbidden",
                        f"The token's scopes ({' '.join(token.scopes)}) do not "
                        f"allow '{verb}' on {resource_type}.",
                    )

    def _capability_statement(self) -> dict[str, Any]:
        stored = sorted(R4_TYPES - _NOT_STORED)
        resources = []
        for name in stored:
            params = [
                {"name": "_id", "type": "token"},
                {"name": "_lastUpdated", "type": "date"},
                {"name": "identifier", "type": "token"},
                {"name": "status", "type": "token"},
            ] + [{"name": p, "type": "reference"} for p in REFERENCE_PARAMS.get(name, {})]
            resource: dict[str, Any] = {
                "type": name,
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": True,
                "conditionalCreate": True,
                "interaction": [
                    {"code": c}
                    for c in (
                        "read",
                        "vread",
                        "update",
                        "history-instance",
                        "create",
                        "search-type",
                    )
                ],
                "searchParam": params,
            }
            if name in REFERENCE_PARAMS:
                resource["searchInclude"] = [f"{name}:{p}" for p in REFERENCE_PARAMS[name]]
            if name == "Subscription":
                resource["extension"] = [
                    {"url": TOPIC_CANONICAL, "valueCanonical": topic} for topic in TOPICS
                ]
                resource["operation"] = [
                    {
                        "name": "status",
                        "definition": STATUS_OPERATION,
                    }
                ]
            resources.append(resource)
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": instant(datetime.now(UTC)),
            "kind": "instance",
            "instantiates": [f"{BACKPORT}/CapabilityStatement/backport-subscription-server-r4"],
            "software": {"name": "FakeExchange"},
            "implementation": {"description": "A test stand-in for the exchange", "url": self.url},
            "fhirVersion": FHIR_VERSION,
            "format": ["json", FHIR_JSON],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "restful-security-service",
                                        "code": "SMART-on-FHIR",
                                    }
                                ]
                            }
                        ],
                        "extension": [
                            {
                                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                "extension": [{"url": "token", "valueUri": self.token_url}],
                            }
                        ],
                    },
                    "resource": resources,
                    "interaction": [{"code": "transaction"}],
                }
            ],
        }

    def _create(
        self, resource_type: str, body: dict[str, Any], if_none_exist: str | None
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if if_none_exist:
                found = self._conditional_matches(resource_type, if_none_exist)
                if len(found) > 1:
                    raise FhirError(
                        412,
                        "multiple-matches",
                        f"If-None-Exist {if_none_exist} matches "
                        f"{len(found)} {resource_type} resources",
                    )
                if found:
                    return 200, copy.deepcopy(found[0])
            planned = self._plan(resource_type, uuid.uuid4().hex, body)
            return 201, self._commit([planned], self._now())[0]

    def _update(
        self, resource_type: str, resource_id: str, body: dict[str, Any], if_match: str | None
    ) -> tuple[int, dict[str, Any]]:
        if body.get("id") != resource_id:
            raise FhirError(
                400,
                "invalid",
                f"The resource id {body.get('id')!r} must equal the URL's id {resource_id!r}",
            )
        with self._lock:
            planned = self._plan(resource_type, resource_id, body, if_match)
            stored = self._commit([planned], self._now())[0]
        return (201 if stored["meta"]["versionId"] == "1" else 200), stored

    def _transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """All or nothing: every entry is checked first, then all are stored at one instant."""
        if bundle.get("type") != "transaction":
            raise FhirError(
                400,
                "not-supported",
                f"POST {BASE_PATH} takes a transaction Bundle, not a {bundle.get('type')!r} one",
            )
        entries = bundle.get("entry") or []
        with self._lock:
            targets: dict[str, str] = {}  # fullUrl -> Type/id
            plans: list[dict[str, Any]] = []
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    raise FhirError(400, "structure", f"Bundle.entry[{index}] is not an object")
                plans.append(self._transaction_target(index, entry, targets))

            def resolve(reference: str) -> str:
                if reference in targets:
                    return targets[reference]
                if reference.startswith("urn:uuid:"):
                    raise FhirError(
                        400, "not-found", f"Reference {reference} names no entry's fullUrl"
                    )
                kind, question, condition = reference.partition("?")
                if question and kind in R4_TYPES:
                    found = self._conditional_matches(kind, condition)
                    if len(found) != 1:
                        raise FhirError(
                            412,
                            "multiple-matches" if found else "not-found",
                            f"Conditional reference {reference} matches {len(found)} resources",
                        )
                    return f"{kind}/{found[0]['id']}"
                return reference

            staged: dict[tuple[str, str], dict[str, Any]] = {}
            planned: list[dict[str, Any]] = []
            for index, plan in enumerate(plans):
                if plan["existing"] is not None:
                    continue
                try:
                    body = _rewrite_references(plan["body"], resolve)
                    version = self._plan(plan["type"], plan["id"], body, plan["if_match"], staged)
                except FhirError as error:
                    raise _entry_error(index, entries[index], error) from None
                staged[(plan["type"], plan["id"])] = version
                plan["version"] = version
                planned.append(version)
            self._commit(planned, self._now())
            response_entries = []
            for plan in plans:
                resource = plan["existing"] or plan["version"]
                status = (
                    200
                    if plan["existing"] is not None
                    else (201 if resource["meta"]["versionId"] == "1" else 200)
                )
                response_entries.append(
                    {
                        "fullUrl": self._full(resource),
                        "resource": copy.deepcopy(resource),
                        "response": {
                            "status": f"{status} {_REASONS[status]}",
                            "location": f"{resource['resourceType']}/{resource['id']}"
                            f"/_history/{resource['meta']['versionId']}",
                            "etag": etag(resource["meta"]["versionId"]),
                            "lastModified": resource["meta"]["lastUpdated"],
                        },
                    }
                )
        return {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "type": "transaction-response",
            "link": [{"relation": "self", "url": self.url}],
            "entry": response_entries,
        }

    def _transaction_target(
        self, index: int, entry: dict[str, Any], targets: dict[str, str]
    ) -> dict[str, Any]:
        request = entry.get("request") or {}
        method = request.get("method")
        url = str(request.get("url") or "").split("?")[0].strip("/")
        resource = entry.get("resource")
        try:
            if method not in ("POST", "PUT"):
                raise FhirError(
                    400,
                    "not-supported",
                    f"request.method {method!r}: only POST and PUT are supported in a transaction",
                )
            if not isinstance(resource, dict):
                raise FhirError(400, "required", "the entry has no resource")
            kind, _, given_id = url.partition("/")
            self._check_type(kind)
            if resource.get("resourceType") != kind:
                raise FhirError(
                    400,
                    "invalid",
                    f"resourceType {resource.get('resourceType')!r} "
                    f"does not match request.url {url!r}",
                )
            existing = None
            if method == "POST":
                if given_id:
                    raise FhirError(400, "invalid", f"POST to {url!r}: POST takes a type only")
                resource_id = uuid.uuid4().hex
                if request.get("ifNoneExist"):
                    found = self._conditional_matches(kind, request["ifNoneExist"])
                    if len(found) > 1:
                        raise FhirError(
                            412,
                            "multiple-matches",
                            f"ifNoneExist {request['ifNoneExist']} matches {len(found)} {kind}",
                        )
                    if found:
                        existing = copy.deepcopy(found[0])
                        resource_id = existing["id"]
            else:
                if "?" in str(request.get("url")):
                    raise FhirError(400, "not-supported", "conditional update is not supported")
                if not given_id or resource.get("id") != given_id:
                    raise FhirError(
                        400,
                        "invalid",
                        f"PUT {url!r} needs the resource's id ({resource.get('id')!r}) in the URL",
                    )
                resource_id = given_id
        except FhirError as error:
            raise _entry_error(index, entry, error) from None
        reference = f"{kind}/{resource_id}"
        if entry.get("fullUrl"):
            targets[str(entry["fullUrl"])] = reference
        targets[f"{self.url}/{reference}"] = reference
        return {
            "type": kind,
            "id": resource_id,
            "body": resource,
            "if_match": request.get("ifMatch"),
            "existing": existing,
        }

    def _check_type(self, resource_type: str) -> None:
        if resource_type not in R4_TYPES or resource_type in _NOT_STORED:
            raise FhirError(404, "not-supported", f"Resource type {resource_type!r} is not served")

    def _subscription_status(self, sub_id: str) -> dict[str, Any]:
        with self._lock:
            if self._current("Subscription", sub_id) is None or sub_id not in self._subscriptions:
                raise FhirError(404, "not-found", f"Subscription/{sub_id} is not known")
            parameters = self._status_parameters(sub_id, "query-status")
        return {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "type": "searchset",
            "total": 1,
            "link": [{"relation": "self", "url": f"{self.url}/Subscription/{sub_id}/$status"}],
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{parameters['id']}",
                    "resource": parameters,
                    "search": {"mode": "match"},
                }
            ],
        }


def _entry_error(index: int, entry: dict[str, Any], error: FhirError) -> FhirError:
    request = entry.get("request") or {}
    where = f"{request.get('method')} {request.get('url')}"
    return FhirError(
        error.status,
        error.code,
        f"Transaction failed at entry[{index}] ({where}); nothing was stored: {error.diagnostics}",
    )


def _identifier_matches(identifier: Any, value: str) -> bool:
    """Token search on Identifier: ``system|value``, ``|value`` (no system), ``system|``, or
    ``value`` (any system)."""
    if not isinstance(identifier, dict):
        return False
    if "|" not in value:
        return identifier.get("value") == value
    system, _, code = value.partition("|")
    if not system and identifier.get("system"):
        return False
    if system and identifier.get("system") != system:
        return False
    return not code or identifier.get("value") == code


def _post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """POST a notification; the endpoint's status (None if unreachable) and a problem, if any."""
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}"
    except (OSError, urllib.error.URLError) as error:
        return None, f"{type(error).__name__}: {error}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeExchange

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return  # the client gave up: not the fake's problem
        if error is not None:
            self.fake._record_error(error)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "FakeExchange/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        path, pairs = split.path, parse_qsl(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        query: dict[str, list[str]] = {}
        for name, value in pairs:
            query.setdefault(name, []).append(value)
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": query,
            "headers": dict(self.headers.items()),
            "json": None,
            "form": None,
            "body": raw,
            "status": None,
            "at": datetime.now(UTC),
        }
        fake._record_request(entry)
        with fake._lock:
            delay = fake.delay_seconds
        if delay:
            fake._stopping.wait(delay)
        headers: dict[str, str] = {}
        content_type = f"{FHIR_JSON}; charset=utf-8"
        try:
            if path == TOKEN_PATH:
                content_type = "application/json; charset=utf-8"
                headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
                status, payload = self._token_request(fake, method, raw, entry)
            else:
                status, payload, headers = self._fhir(fake, method, path, pairs, raw, entry)
        except FhirError as error:
            status, payload, headers = error.status, error.outcome(), error.headers
        except Exception as error:
            fake._record_error(error)
            status, payload = 500, operation_outcome("exception", f"Internal error: {error!r}")
        with fake._lock:
            entry["status"] = status
        self._write(status, payload, headers, content_type)

    def _token_request(
        self, fake: FakeExchange, method: str, raw: str, entry: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        form: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True):
            form.setdefault(name, []).append(value)
        entry["form"] = form
        try:
            if method != "POST":
                raise OAuthError("invalid_request", "The token endpoint takes POST.")
            if "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
                raise OAuthError("invalid_request", "Send application/x-www-form-urlencoded.")
            return 200, fake._token(form)
        except OAuthError as error:
            return error.status, {"error": error.error, "error_description": error.description}

    def _fhir(
        self,
        fake: FakeExchange,
        method: str,
        path: str,
        pairs: list[tuple[str, str]],
        raw: str,
        entry: dict[str, Any],
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if path != BASE_PATH and not path.startswith(BASE_PATH + "/"):
            raise FhirError(
                404, "not-found", f"Nothing is served at {path}; the FHIR base is {fake.url}"
            )
        rest = path[len(BASE_PATH) :].rstrip("/")
        fault = fake._next_fault()
        if fault is not None:
            status, fault_headers = fault
            raise FhirError(
                status,
                "transient" if status >= 500 else "throttled" if status == 429 else "processing",
                f"Scripted failure: this request answers {status}",
                fault_headers,
            )
        if rest == "/.well-known/smart-configuration" and method == "GET":
            return 200, fake._smart_configuration(), {}
        if rest == "/metadata" and method == "GET":
            return 200, fake._capability_statement(), {}
        body = self._json_body(method, raw, entry)
        if rest == "":
            if method != "POST":
                raise FhirError(405, "not-supported", f"{method} {BASE_PATH} is not supported")
            if body is None or body.get("resourceType") != "Bundle":
                raise FhirError(400, "invalid", f"POST {BASE_PATH} takes a Bundle")
            checks = [
                (resource["resourceType"], "c" if request.get("method") == "POST" else "u")
                for entry_ in body.get("entry") or []
                if isinstance(entry_, dict)
                for resource, request in [(entry_.get("resource"), entry_.get("request") or {})]
                if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)
            ]
            fake._authorize(self.headers.get("Authorization"), checks)
            return 200, fake._transaction(body), {}
        match = _PATH.match(rest)
        if not match:
            raise FhirError(404, "not-found", f"Unknown FHIR path {path}")
        kind, ident, op, vid = match["type"], match["id"], match["op"], match["vid"]
        fake._check_type(kind)
        auth = self.headers.get("Authorization")
        if op == "$status":
            if kind != "Subscription" or method != "GET":
                raise FhirError(405, "not-supported", "$status is GET Subscription/{id}/$status")
            fake._authorize(auth, [("Subscription", "r")])
            return 200, fake._subscription_status(ident), {}
        if ident is None:
            if method == "GET":
                fake._authorize(auth, [(kind, "s")])
                with fake._lock:
                    bundle = fake._search_bundle(fake._parse_search(kind, pairs))
                return 200, bundle, {}
            if method == "POST":
                fake._authorize(auth, [(kind, "c")])
                resource = self._resource_body(kind, body)
                status, stored = fake._create(kind, resource, self.headers.get("If-None-Exist"))
                return self._answer(fake, status, stored)
            raise FhirError(405, "not-supported", f"{method} {kind} is not supported")
        if op == "_history":
            if method != "GET":
                raise FhirError(405, "not-supported", f"{method} on _history is not supported")
            fake._authorize(auth, [(kind, "r")])
            versions = fake.history(kind, ident)
            if not versions:
                raise FhirError(404, "not-found", f"{kind}/{ident} is not known")
            if vid is None:
                return 200, self._history_bundle(fake, versions), {}
            found = [v for v in versions if v["meta"]["versionId"] == vid]
            if not found:
                raise FhirError(
                    404,
                    "not-found",
                    f"{kind}/{ident} has no version {vid} (latest "
                    f"is {versions[-1]['meta']['versionId']})",
                )
            return self._answer(fake, 200, found[0], location=False)
        if method == "GET":
            fake._authorize(auth, [(kind, "r")])
            current = fake.resource(kind, ident)
            if current is None:
                raise FhirError(404, "not-found", f"{kind}/{ident} is not known")
            return self._answer(fake, 200, current, location=False)
        if method == "PUT":
            fake._authorize(auth, [(kind, "u")])
            resource = self._resource_body(kind, body)
            status, stored = fake._update(kind, ident, resource, self.headers.get("If-Match"))
            return self._answer(fake, status, stored)
        raise FhirError(405, "not-supported", f"{method} {kind}/{ident} is not supported")

    def _json_body(self, method: str, raw: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        if method not in ("POST", "PUT"):
            return None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in (FHIR_JSON, "application/json"):
            raise FhirError(
                415, "not-supported", f"Content-Type {content_type!r}: send {FHIR_JSON}"
            )
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as error:
            raise FhirError(400, "structure", f"The body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise FhirError(400, "structure", "The body must be a JSON object (a resource)")
        entry["json"] = body
        return body

    def _resource_body(self, kind: str, body: dict[str, Any] | None) -> dict[str, Any]:
        if body is None or body.get("resourceType") != kind:
            found = None if body is None else body.get("resourceType")
            raise FhirError(400, "invalid", f"The body's resourceType {found!r} must be {kind!r}")
        return body

    def _answer(
        self, fake: FakeExchange, status: int, resource: dict[str, Any], location: bool = True
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        version = resource["meta"]["versionId"]
        headers = {
            "ETag": etag(version),
            "Last-Modified": _http_date(parse_instant(resource["meta"]["lastUpdated"])),
        }
        if location:
            headers["Location"] = f"{fake._full(resource)}/_history/{version}"
        prefer = (self.headers.get("Prefer") or "").replace(" ", "")
        if "return=minimal" in prefer:
            return status, None, headers
        if "return=OperationOutcome" in prefer:
            outcome = operation_outcome("informational", f"{status}", severity="information")
            return status, outcome, headers
        return status, resource, headers

    def _history_bundle(self, fake: FakeExchange, versions: list[dict[str, Any]]) -> dict[str, Any]:
        entries = []
        for resource in reversed(versions):
            created = resource["meta"]["versionId"] == "1"
            kind = resource["resourceType"]
            entries.append(
                {
                    "fullUrl": fake._full(resource),
                    "resource": resource,
                    "request": {"method": "POST", "url": kind}
                    if created
                    else {"method": "PUT", "url": f"{kind}/{resource['id']}"},
                    "response": {
                        "status": "201 Created" if created else "200 OK",
                        "etag": etag(resource["meta"]["versionId"]),
                        "lastModified": resource["meta"]["lastUpdated"],
                    },
                }
            )
        return {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "type": "history",
            "total": len(entries),
            "entry": entries,
        }

    def _write(
        self,
        status: int,
        payload: dict[str, Any] | None,
        headers: dict[str, str],
        content_type: str,
    ) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (ConnectionError, TimeoutError):
            pass  # the client has gone away
        self.close_connection = True
