"""Topic-based subscriptions (R4 Subscriptions Backport IG 1.1.0): a partner's machine client
asks to be told when the Tasks or ServiceRequests its organisation may read change, instead of
polling.

- Topics: :data:`TASK_TOPIC` fires when a referral is sent and at every status move of its
  Task (the events that notify the family; notes and businessStatus steps do not).
  :data:`SERVICE_REQUEST_TOPIC` fires when the ServiceRequest is created and when the Task's
  move changed its status (completed, revoked, entered-in-error). Their canonical URLs name
  the topic, not a deployment: they are the same on every server running this app.
- `POST /fhir/Subscription`: `criteria` is a topic; `filterCriteria` extensions on
  `_criteria` narrow it to the client's own organisation as owner, requester or performer
  (several filters must all match); `rest-hook` channel, `application/fhir+json` payload,
  `id-only` or `empty` content (never the resource itself: minimum necessary). The channel's
  headers go with every notification and are never shown back. The endpoint is a public https
  address, or an origin SUBSCRIPTION_ALLOWED_ENDPOINTS names (`endpoints`): checked when the
  Subscription is stored and again before each delivery, the handshake included.
- Delivery is an outbox job: a handshake when the Subscription is stored (2xx makes it
  `active`), then one `event-notification` per event, numbered per Subscription. A delivery
  that runs out of tries puts the Subscription in `error`; the next one that arrives makes it
  `active` again. `DELETE` turns it `off`. An organisation is told only of referrals it sent
  or received, as it reads them."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import requests
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import ForeignKey, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from referrals import audit, jobs
from referrals.db import Base, transaction, utcnow
from referrals.fhir import api, endpoints, outcomes
from referrals.fhir.api import actor, require
from referrals.fhir.oauth import ApiClient
from referrals.fhir.outcomes import FhirError, base_url, fhir_response
from referrals.loop.models import Referral, ReferralEvent
from referrals.text_values import utc_moment

# Our topics' canonical URLs: identifiers, the same on every deployment.
TOPIC_BASE = "http://referrals.example.org/fhir/SubscriptionTopic/"
TASK_TOPIC = TOPIC_BASE + "task-changed"
SERVICE_REQUEST_TOPIC = TOPIC_BASE + "servicerequest-changed"
TOPICS = {TASK_TOPIC: "Task", SERVICE_REQUEST_TOPIC: "ServiceRequest"}

# R4 Subscriptions Backport IG 1.1.0 (hl7.fhir.uv.subscriptions-backport).
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription"
FILTER_CRITERIA = f"{BACKPORT}/StructureDefinition/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/StructureDefinition/backport-payload-content"
TOPIC_CANONICAL = f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
STATUS_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-status-r4"
NOTIFICATION_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-notification-r4"
STATUS_OPERATION = f"{BACKPORT}/OperationDefinition/backport-subscription-status"
SERVER_CAPABILITY = f"{BACKPORT}/CapabilityStatement/backport-subscription-server-r4"
SUBSCRIPTION_ERROR = "http://terminology.hl7.org/CodeSystem/subscription-error"

FHIR_JSON = "application/fhir+json"
OFFERED_CONTENT = ("id-only", "empty")  # full-resource is not: minimum necessary
# The filters each topic takes: search parameter -> the organisation of the referral it names.
FILTERS = {
    "Task": {"owner": "performer", "requester": "requester"},
    "ServiceRequest": {"requester": "requester", "performer": "performer"},
}
REQUESTED, ACTIVE, ERROR, OFF = "requested", "active", "error", "off"
HANDSHAKE_JOB = "fhir.subscription.handshake"
NOTIFY_JOB = "fhir.subscription.notify"
TIMEOUT = 10.0  # seconds a subscriber has to answer a notification
# Header names we set ourselves; a subscriber's own headers may not replace them.
OUR_HEADERS = {"content-type", "content-length", "host", "transfer-encoding", "connection"}
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_ORG_REFERENCE = re.compile(r"Organization/([0-9a-fA-F-]{36})")
ENDPOINT = "Subscription.channel.endpoint"


class FhirSubscription(Base):
    """A partner's Subscription to one of our topics, for the organisation its client acts
    for. `events` counts the events notified since it started (the Backport's event numbers);
    `headers` are sent with every notification and never shown back."""

    __tablename__ = "fhir_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    api_client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"), index=True)
    topic: Mapped[str] = mapped_column(String(200))
    filters: Mapped[list] = mapped_column(default=list)  # ["Task?owner=Organization/<id>"]
    reason: Mapped[str] = mapped_column(Text, default="")
    endpoint: Mapped[str] = mapped_column(String(500))
    content: Mapped[str] = mapped_column(String(16))  # id-only | empty
    headers: Mapped[list] = mapped_column(default=list)  # ["Name: value"]
    status: Mapped[str] = mapped_column(String(16), default=REQUESTED)
    error: Mapped[str] = mapped_column(Text, default="")
    events: Mapped[int] = mapped_column(default=0)
    end: Mapped[datetime | None]
    handshake_at: Mapped[datetime | None]  # when its endpoint took the handshake
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- reading a Subscription (pure) ----------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionForm:
    topic: str
    filters: list[str]
    reason: str
    endpoint: str
    content: str
    headers: list[str]
    end: datetime | None


def _refuse(diagnostics: str, expression: str, status: int = 422) -> FhirError:
    code = "forbidden" if status == 403 else "not-supported"
    return FhirError(status, code, f"Subscription refused: {diagnostics}", expression)


def parse_filter(text: str, resource_type: str, org_id: uuid.UUID, base: str) -> str:
    """One `filterCriteria` (`Task?owner=Organization/<id>`), in the form we keep it; it may
    name the client's own organisation only (403 for another)."""
    where = "Subscription.criteria.extension"
    kind, _, query = text.partition("?")
    allowed = FILTERS[resource_type]
    if kind != resource_type or not query:
        raise _refuse(f"filterCriteria {text!r} must be {resource_type}?<search>.", where)
    kept = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            raise _refuse(
                f"filterCriteria {text!r}: {resource_type} filters on "
                + " or ".join(sorted(allowed))
                + ".",
                where,
            )
        for reference in value.split(","):
            match = _ORG_REFERENCE.fullmatch(reference.removeprefix(base + "/"))
            if match is None:
                raise _refuse(
                    f"filterCriteria {text!r}: {name} is Organization/<id>, not {reference!r}.",
                    where,
                )
            if uuid.UUID(match.group(1)) != org_id:
                raise _refuse(
                    f"filterCriteria {text!r} names another organisation: a Subscription can "
                    f"filter on its own organisation only (Organization/{org_id}).",
                    where,
                    403,
                )
        kept.append(f"{name}=Organization/{org_id}")
    if not kept:
        raise _refuse(f"filterCriteria {text!r} has no search parameter.", where)
    return f"{resource_type}?" + "&".join(kept)


def _instant(value: object, expression: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _refuse(f"{value!r} is not an instant.", expression) from None
    if parsed.tzinfo is None:
        raise _refuse(f"{value!r} has no time zone.", expression)
    return utc_moment(parsed)


def parse_subscription(body: dict[str, Any], org_id: uuid.UUID, base: str) -> SubscriptionForm:
    """A Backport R4 Subscription, as we offer them, or the FhirError saying which element we
    cannot honour. Where its endpoint may be is `endpoints.vet`'s to say."""
    topic = body.get("criteria")
    if topic not in TOPICS:
        raise _refuse(
            f"criteria must be one of our topics: {', '.join(TOPICS)}.", "Subscription.criteria"
        )
    resource_type = TOPICS[topic]
    filters = [
        parse_filter(str(extension.get("valueString") or ""), resource_type, org_id, base)
        for extension in (body.get("_criteria") or {}).get("extension") or []
        if extension.get("url") == FILTER_CRITERIA
    ]
    channel = body.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise _refuse(
            f"channel.type {channel.get('type')!r} is not offered: rest-hook only.",
            "Subscription.channel.type",
        )
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str) or len(endpoint) > endpoints.MAX_LENGTH:
        raise _refuse(
            f"channel.endpoint must be an https URL ({endpoints.MAX_LENGTH} characters at most).",
            ENDPOINT,
        )
    if channel.get("payload") != FHIR_JSON:
        raise _refuse(f"channel.payload must be {FHIR_JSON}.", "Subscription.channel.payload")
    contents = [
        extension.get("valueCode")
        for extension in (channel.get("_payload") or {}).get("extension") or []
        if extension.get("url") == PAYLOAD_CONTENT
    ]
    if len(contents) != 1:
        raise _refuse(
            f"channel.payload needs one {PAYLOAD_CONTENT} extension: "
            + " or ".join(OFFERED_CONTENT)
            + ".",
            "Subscription.channel.payload",
        )
    if contents[0] not in OFFERED_CONTENT:
        raise _refuse(
            f"payload content {contents[0]!r} is not offered: minimum necessary; "
            + " or ".join(OFFERED_CONTENT)
            + ".",
            "Subscription.channel.payload",
        )
    headers = []
    for line in channel.get("header") or []:
        name, colon, value = str(line).partition(":")
        name, value = name.strip(), value.strip()
        if (
            not colon
            or not _HEADER_NAME.fullmatch(name)
            or name.lower() in OUR_HEADERS
            or any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            raise _refuse(
                "each channel.header is 'Name: value', a header we do not set ourselves.",
                "Subscription.channel.header",
            )
        headers.append(f"{name}: {value}")
    end = None
    if body.get("end"):
        end = _instant(body["end"], "Subscription.end")
        if end <= utcnow():
            raise _refuse("end is in the past.", "Subscription.end")
    return SubscriptionForm(
        topic, filters, str(body.get("reason") or ""), endpoint, contents[0], headers, end
    )


# --- which events a Subscription is told of (pure) --------------------------------------------


def topics_for(event_action: str, task_status: str, service_request_status: str) -> list[str]:
    """The topics an event fires: every one the Task's; the ServiceRequest's when it was
    created, or when the Task's move ended it (its status follows the Task's only then)."""
    fired = [TASK_TOPIC]
    ended = task_status in {"completed", "cancelled", "entered-in-error"}
    if event_action == "send" or (ended and service_request_status != "active"):
        fired.append(SERVICE_REQUEST_TOPIC)
    return fired


def matches(
    filters: list[str], requester_org_id: uuid.UUID | None, performer_org_id: uuid.UUID | None
) -> bool:
    """Whether a referral passes every one of a Subscription's filters (kept by parse_filter)."""
    orgs = {"requester": requester_org_id, "performer": performer_org_id}
    for text in filters:
        kind, _, query = text.partition("?")
        for name, value in parse_qsl(query):
            wanted = {v.removeprefix("Organization/") for v in value.split(",")}
            if str(orgs[FILTERS[kind][name]]) not in wanted:
                return False
    return True


# --- FHIR shapes (pure) -------------------------------------------------------------------------


def _instant_text(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription_to_fhir(sub: FhirSubscription, base: str) -> dict[str, Any]:
    """The R4 Subscription as its owner reads it: everything but the channel's headers."""
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": str(sub.id),
        "meta": {"lastUpdated": _instant_text(sub.updated_at), "profile": [SUBSCRIPTION_PROFILE]},
        "status": sub.status,
    }
    if sub.end is not None:
        resource["end"] = _instant_text(sub.end)
    resource["reason"] = sub.reason or "Notifications of referral changes"
    resource["criteria"] = sub.topic
    if sub.filters:
        resource["_criteria"] = {
            "extension": [{"url": FILTER_CRITERIA, "valueString": f} for f in sub.filters]
        }
    if sub.status == ERROR and sub.error:
        resource["error"] = sub.error
    resource["channel"] = {
        "type": "rest-hook",
        "endpoint": sub.endpoint,
        "payload": FHIR_JSON,
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": sub.content}]},
    }
    return resource


def status_parameters(
    sub: FhirSubscription,
    kind: str,
    base: str,
    events: int,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Backport's SubscriptionStatus (`backport-subscription-status-r4` Parameters)."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub.id}"}},
        {"name": "topic", "valueCanonical": sub.topic},
        {"name": "status", "valueCode": sub.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events)},
    ]
    if event is not None:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event["event_number"])},
            {"name": "timestamp", "valueInstant": event["timestamp"]},
        ]
        if sub.content != "empty":
            parts.append({"name": "focus", "valueReference": {"reference": _full(event, base)}})
        parameters.append({"name": "notification-event", "part": parts})
    if sub.status == ERROR:
        parameters.append(
            {
                "name": "error",
                "valueCodeableConcept": {
                    "coding": [{"system": SUBSCRIPTION_ERROR, "code": "no-response"}],
                    "text": sub.error or "Notifications are not being delivered.",
                },
            }
        )
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def _full(event: dict[str, Any], base: str) -> str:
    return f"{base}/{event['focus']}"


def notification_bundle(
    sub: FhirSubscription, kind: str, base: str, event: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A `history` Bundle: the SubscriptionStatus, then for `id-only` the focus's `fullUrl`
    and `request` (never the resource)."""
    events = 0 if event is None else event["event_number"]
    status = status_parameters(sub, kind, base, events, event)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "resource": status,
            "request": {"method": "GET", "url": f"{base}/Subscription/{sub.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if event is not None and sub.content == "id-only":
        created = event.get("created", False)
        kind_of = event["focus"].split("/", 1)[0]
        entry: dict[str, Any] = {
            "fullUrl": _full(event, base),
            "request": {"method": "POST", "url": kind_of}
            if created
            else {"method": "PUT", "url": event["focus"]},
            "response": {"status": "201" if created else "200"},
        }
        if event.get("version"):
            entry["response"]["etag"] = f'W/"{event["version"]}"'
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": _instant_text(utcnow()),
        "entry": entries,
    }


def status_bundle(sub: FhirSubscription, base: str) -> dict[str, Any]:
    """What `$status` answers: a searchset of the one SubscriptionStatus."""
    parameters = status_parameters(sub, "query-status", base, sub.events)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": 1,
        "link": [{"relation": "self", "url": f"{base}/Subscription/{sub.id}/$status"}],
        "entry": [
            {
                "fullUrl": f"urn:uuid:{parameters['id']}",
                "resource": parameters,
                "search": {"mode": "match"},
            }
        ],
    }


# --- use cases ----------------------------------------------------------------------------------


def _max_attempts() -> int:
    return current_app.config["SETTINGS"].job_max_attempts


def create_subscription(form: SubscriptionForm, base: str) -> dict[str, Any]:
    """Store the client's Subscription as `requested` and enqueue its handshake."""
    who = actor()
    with transaction() as session:
        client = session.scalar(select(ApiClient).where(ApiClient.client_id == who.client_id))
        if client is None:
            raise FhirError(401, "login", "The token's client is no longer registered.")
        sub = FhirSubscription(
            organization_id=who.org_id,
            api_client_id=client.id,
            topic=form.topic,
            filters=form.filters,
            reason=form.reason[:2000],
            endpoint=form.endpoint,
            content=form.content,
            headers=form.headers,
            end=form.end,
        )
        session.add(sub)
        session.flush()
        audit.record(session, who, "fhir.subscription.create", "Subscription", sub.id)
        jobs.enqueue(
            session,
            HANDSHAKE_JOB,
            {"subscription_id": str(sub.id)},
            f"{HANDSHAKE_JOB}:{sub.id}",
            max_attempts=_max_attempts(),
        )
        return subscription_to_fhir(sub, base)


def _own(session: Session, subscription_id: str) -> FhirSubscription:
    """The client's organisation's Subscription, or 404 (another's is not told apart)."""
    try:
        key = uuid.UUID(subscription_id)
    except ValueError:
        key = None
    sub = session.get(FhirSubscription, key) if key else None
    if sub is None or sub.organization_id != actor().org_id:
        if key is not None:
            audit.deny(session, actor(), "fhir.subscription.read", "Subscription", key)
        raise FhirError(404, "not-found", f"Subscription/{subscription_id} does not exist.")
    return sub


def turn_off(subscription_id: str, base: str) -> dict[str, Any]:
    """Stop a Subscription for good: it is kept, `off`, and nothing more is sent."""
    with transaction() as session:
        sub = _own(session, subscription_id)
        if sub.status != OFF:
            sub.status, sub.error, sub.updated_at = OFF, "", utcnow()
            audit.record(session, actor(), "fhir.subscription.delete", "Subscription", sub.id)
        return subscription_to_fhir(sub, base)


def on_referral_change(session: Session, event: ReferralEvent) -> None:
    """In the change's own transaction: the next event number of each Subscription told of it
    (an atomic increment: concurrent events get distinct numbers), and its notification job."""
    referral = session.get(Referral, event.referral_id)
    if referral is None:
        return
    topics = topics_for(event.action, referral.task.status, referral.status)
    orgs = {referral.requester_org_id, referral.performer_org_id} - {None}
    now = utcnow()
    subscriptions = session.scalars(
        select(FhirSubscription)
        .join(ApiClient, ApiClient.id == FhirSubscription.api_client_id)
        .where(
            FhirSubscription.status.in_((ACTIVE, ERROR)),
            FhirSubscription.handshake_at.is_not(None),  # never told: an error from the start
            FhirSubscription.topic.in_(topics),
            FhirSubscription.organization_id.in_(orgs),
            ApiClient.active,
            or_(FhirSubscription.end.is_(None), FhirSubscription.end > now),
        )
        .order_by(FhirSubscription.id)  # one order of row locks for every transaction
    ).all()
    for sub in subscriptions:
        if not matches(sub.filters, referral.requester_org_id, referral.performer_org_id):
            continue
        number = session.execute(
            update(FhirSubscription)
            .where(FhirSubscription.id == sub.id)
            .values(events=FhirSubscription.events + 1)
            .returning(FhirSubscription.events)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        is_task = TOPICS[sub.topic] == "Task"
        payload = {
            "subscription_id": str(sub.id),
            "event_number": number,
            "timestamp": _instant_text(event.at),
            "focus": f"Task/{referral.task.id}" if is_task else f"ServiceRequest/{referral.id}",
            "version": referral.task.version if is_task else None,
            "created": event.action == "send",
        }
        jobs.enqueue(
            session,
            NOTIFY_JOB,
            payload,
            f"{NOTIFY_JOB}:{sub.id}:{number}",
            max_attempts=_max_attempts(),
        )


# --- delivery (outbox jobs) ---------------------------------------------------------------------


class DeliveryFailed(Exception):
    """The subscriber did not take a notification: the outbox tries again later."""


def checked_endpoint(endpoint: str) -> endpoints.Vetted:
    """The endpoint, if notifications may go there (a public https address, or an origin
    SUBSCRIPTION_ALLOWED_ENDPOINTS names), resolved once; EndpointRefused says why not."""
    allowed = current_app.config["SETTINGS"].subscription_allowed_origins()
    return endpoints.vet(endpoint, allowed)


def _post(endpoint: str, bundle: dict[str, Any], headers: list[str], what: str) -> None:
    """Send one notification, after checking its endpoint again (DNS may have changed since
    the Subscription was stored), to the address that was checked."""
    try:
        vetted = checked_endpoint(endpoint)
    except endpoints.EndpointRefused as refused:
        raise DeliveryFailed(f"{what} to {endpoint} not sent: {refused}") from None
    sent = {"Content-Type": f"{FHIR_JSON}; charset=utf-8", "Accept": FHIR_JSON}
    for line in headers:
        name, _, value = line.partition(":")
        sent[name.strip()] = value.strip()
    body = json.dumps(bundle, separators=(",", ":")).encode()
    try:
        answer = endpoints.post(vetted, body, sent, TIMEOUT)
    except requests.RequestException as err:
        raise DeliveryFailed(f"{what} to {endpoint}: no answer ({type(err).__name__})") from None
    if 300 <= answer.status_code < 400:
        raise DeliveryFailed(
            f"{what} to {endpoint}: HTTP {answer.status_code}; redirects are not followed"
        )
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"{what} to {endpoint}: HTTP {answer.status_code}")


def _deliver(session: Session, payload: dict, kind: str, sendable: tuple[str, ...]) -> bool:
    """Send one notification of a Subscription in one of the `sendable` statuses; nothing is
    held open while the subscriber answers. False when there was nothing to send."""
    sub = session.get(FhirSubscription, uuid.UUID(payload["subscription_id"]))
    if sub is None or sub.status not in sendable:
        return False
    if sub.end is not None and sub.end <= utcnow():
        sub.status, sub.updated_at = OFF, utcnow()
        return False
    event = payload if kind == "event-notification" else None
    bundle = notification_bundle(sub, kind, base_url(), event)
    what = f"{kind} {payload['event_number']}" if event else kind
    endpoint, headers = sub.endpoint, list(sub.headers)
    session.commit()
    _post(endpoint, bundle, headers, what)
    return True


def _set_status(
    session: Session, subscription_id: str, status: str, when: tuple[str, ...], error=""
):
    session.execute(
        update(FhirSubscription)
        .where(FhirSubscription.id == uuid.UUID(subscription_id), FhirSubscription.status.in_(when))
        .values(status=status, error=error[:2000], updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _gave_up(session: Session, payload: dict, error: str) -> None:
    """A delivery that ran out of tries: the Subscription is in error, saying which."""
    said = error.removeprefix(f"{DeliveryFailed.__name__}: ")
    _set_status(session, payload["subscription_id"], ERROR, (REQUESTED, ACTIVE, ERROR), said)


@jobs.handler(HANDSHAKE_JOB, on_dead=_gave_up)
def handshake_job(session: Session, payload: dict) -> None:
    """The handshake: the endpoint's 2xx makes the Subscription active."""
    if _deliver(session, payload, "handshake", (REQUESTED,)):
        session.execute(
            update(FhirSubscription)
            .where(FhirSubscription.id == uuid.UUID(payload["subscription_id"]))
            .values(handshake_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        _set_status(session, payload["subscription_id"], ACTIVE, (REQUESTED,))


@jobs.handler(NOTIFY_JOB, on_dead=_gave_up)
def notify_job(session: Session, payload: dict) -> None:
    """One event notification; one that arrives makes a Subscription in error active again."""
    if _deliver(session, payload, "event-notification", (ACTIVE, ERROR)):
        _set_status(session, payload["subscription_id"], ACTIVE, (ERROR,))


# --- the API ------------------------------------------------------------------------------------

bp = Blueprint("fhir_subscriptions", __name__, url_prefix="/fhir")
bp.before_request(api._negotiate)
bp.register_error_handler(Exception, outcomes.answer)


@bp.post("/Subscription")
def create() -> Response:
    """Subscribe to a topic: 201 with the Subscription, `requested` until the handshake."""
    require("Subscription", "c")
    body = api._body("Subscription")
    form = parse_subscription(body, actor().org_id, base_url())
    resource_type = TOPICS[form.topic]
    if not actor().allows(resource_type, "r"):
        raise FhirError(
            403,
            "forbidden",
            f"The token's scopes do not allow reading {resource_type}: its notifications "
            "would name resources the client cannot read.",
        )
    try:
        checked_endpoint(form.endpoint)
    except endpoints.EndpointRefused as refused:
        raise _refuse(f"channel.endpoint: {refused}", ENDPOINT) from None
    resource = create_subscription(form, base_url())
    location = f"{base_url()}/Subscription/{resource['id']}"
    return fhir_response(resource, 201, {"Location": location})


@bp.get("/Subscription/<subscription_id>")
def read(subscription_id: str) -> Response:
    require("Subscription", "r")
    with transaction() as session:
        resource = subscription_to_fhir(_own(session, subscription_id), base_url())
    return fhir_response(resource)


@bp.delete("/Subscription/<subscription_id>")
def delete(subscription_id: str) -> Response:
    require("Subscription", "d")
    return fhir_response(turn_off(subscription_id, base_url()))


@bp.get("/Subscription/<subscription_id>/$status")
def status(subscription_id: str) -> Response:
    require("Subscription", "r")
    with transaction() as session:
        bundle = status_bundle(_own(session, subscription_id), base_url())
    return fhir_response(bundle)


def register(app: Flask) -> None:
    """Serve the Subscription routes and listen to referral changes (once, from the factory)."""
    from referrals import csrf
    from referrals.loop import service as loop

    if on_referral_change not in loop.CHANGE_LISTENERS:
        loop.CHANGE_LISTENERS.append(on_referral_change)
    app.register_blueprint(bp)
    csrf.exempt(bp)  # machine clients with bearer tokens, not cookies
