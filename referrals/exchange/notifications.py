"""Subscribing to a peer (R4 Subscriptions Backport 1.1, rest-hook, id-only) and taking its
notifications: the peer POSTs a small Bundle naming the Tasks that changed; we answer at once,
and an outbox job reads each Task from the peer and mirrors it (versions decide, so duplicate
and late notifications change nothing). A gap in the peer's event numbers means we missed
something: a polling pass catches up."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import update
from sqlalchemy.orm import Session

from referrals import audit, jobs
from referrals.auth.actor import Actor
from referrals.db import transaction
from referrals.errors import NotFound
from referrals.exchange.client import PeerClient, PeerError
from referrals.exchange.models import ExchangePeer
from referrals.exchange.service import catch_up, mirror, snapshot
from referrals.fhir.json_input import JsonRefused, read_json

log = logging.getLogger(__name__)

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
FILTER_CRITERIA = f"{BACKPORT}/StructureDefinition/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/StructureDefinition/backport-payload-content"
TOPIC_CANONICAL = f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
FETCH_JOB = "exchange.fetch"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

bp = Blueprint("exchange_notifications", __name__)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def endpoint(peer_id: uuid.UUID) -> str:
    base = current_app.config["SETTINGS"].public_base_url.rstrip("/")
    return f"{base}/exchange/peers/{peer_id}/notifications"


def _task_topic(client: PeerClient) -> str:
    """The Task topic the peer's CapabilityStatement names (backport topic canonical)."""
    statement = client.metadata()
    topics = [
        ext.get("valueCanonical")
        for rest in statement.get("rest") or []
        for resource in rest.get("resource") or []
        for ext in resource.get("extension") or []
        if ext.get("url") == TOPIC_CANONICAL and ext.get("valueCanonical")
    ]
    topics += [
        ext.get("valueCanonical")
        for rest in statement.get("rest") or []
        for ext in rest.get("extension") or []
        if ext.get("url") == TOPIC_CANONICAL and ext.get("valueCanonical")
    ]
    for topic in topics:
        if "task" in topic.lower():
            return topic
    raise PeerError(f"{client.peer.name} names no Task subscription topic.")


def subscribe(actor: Actor, peer_id: uuid.UUID) -> str:
    """Ask the peer to tell us when the Tasks we follow there change: a rest-hook, id-only
    Subscription to its Task topic, filtered to our organisation's requests. Returns its id."""
    from referrals.exchange.service import _require_admin

    _require_admin(actor)
    with transaction() as session:
        peer = session.get(ExchangePeer, peer_id)
        if peer is None:
            raise NotFound("No such peer.")
        client = PeerClient(snapshot(peer))
        topic = peer.topic
    topic = topic or _task_topic(client)
    secret = secrets.token_urlsafe(32)
    # Kept before asking: the peer's handshake may reach us before its answer does.
    with transaction() as session:
        peer = session.get(ExchangePeer, peer_id)
        peer.notify_secret_hash = _hash(secret)
        peer.subscription_status = "requested"
        peer.last_event_number = 0
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Follow the Tasks of the referrals we sent",
        "criteria": topic,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint(peer_id),
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]},
            "header": [f"Authorization: Bearer {secret}"],
        },
    }
    created = client.create(subscription)
    with transaction() as session:
        peer = session.get(ExchangePeer, peer_id)
        peer.subscribe = True
        peer.topic = topic
        peer.subscription_id = str((created or {}).get("id") or "")
        if peer.subscription_status == "requested":  # unless the handshake already came
            peer.subscription_status = str((created or {}).get("status") or "requested")
        audit.record(session, actor, "exchange.subscribe", "ExchangePeer", peer.id)
    return peer.subscription_id or ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _array(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _parameters(bundle: dict[str, Any]) -> dict[str, Any]:
    """The SubscriptionStatus (Parameters) of a notification Bundle, as name -> value(s).
    An element of another shape than the Backport's reads as absent."""
    entries = _array(bundle.get("entry"))
    first = _object(_object(entries[0]).get("resource")) if entries else {}
    out: dict[str, Any] = {"events": []}
    for parameter in map(_object, _array(first.get("parameter"))):
        name = parameter.get("name")
        if not isinstance(name, str):
            continue
        if name == "notification-event":
            parts = map(_object, _array(parameter.get("part")))
            event = {part.get("name"): part for part in parts if isinstance(part.get("name"), str)}
            number = _object(event.get("event-number")).get("valueString")
            focus = _object(_object(event.get("focus")).get("valueReference")).get("reference")
            out["events"].append((number, focus))
        else:
            value = next((v for k, v in parameter.items() if k.startswith("value")), None)
            out[name] = value
    return out


@bp.post("/exchange/peers/<uuid:peer_id>/notifications")
def receive(peer_id: uuid.UUID) -> Response:
    """A peer's notification. Answered at once; the work is queued. The caller proves it is
    the peer before its body is read; a body that is not a notification writes nothing."""
    supplied = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    with transaction() as session:
        peer = session.get(ExchangePeer, peer_id)
        if (
            peer is None
            or not peer.notify_secret_hash
            or not hmac.compare_digest(_hash(supplied), peer.notify_secret_hash)
        ):
            return _outcome(401, "login", "Unknown peer or wrong credentials.")
        try:
            bundle = read_json(request.get_data())
        except JsonRefused as refused:
            return _outcome(400, "structure", str(refused))
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            return _outcome(400, "structure", "A notification is a Bundle.")
        status = _parameters(bundle)
        kind = status.get("type")
        if kind not in {"handshake", "heartbeat", "event-notification"}:
            shown = repr(kind)[:60] if isinstance(kind, str) else "none"
            return _outcome(400, "value", f"Unknown notification type {shown}.")
        reported = status.get("status")
        if isinstance(reported, str) and reported:
            peer.subscription_status = reported[:20]
        if kind == "handshake":
            peer.subscription_status = "active"  # our 200 is what makes it active there
        if kind == "event-notification":
            _queue_events(session, peer, status["events"])
    return jsonify(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "information", "code": "informational", "diagnostics": "Received."}
            ],
        }
    )


def _queue_events(session: Session, peer: ExchangePeer, events: list[tuple[Any, Any]]) -> None:
    """A read of each Task named (on the peer, by its id), once per event of this
    subscription; a gap in the event numbers queues a catch-up polling pass."""
    numbers = []
    for number, focus in events:
        task_id = _task_id(peer, focus)
        if task_id is None:
            continue
        try:
            event = int(number)
        except (TypeError, ValueError):
            event = None
        if event is not None and not 0 < event < 2**31:
            event = None
        # Without an event number, every notification is read (versions decide).
        key = f"{event}" if event is not None else f"{task_id}:{uuid.uuid4()}"
        jobs.enqueue(
            session,
            FETCH_JOB,
            {"peer_id": str(peer.id), "task_id": task_id},
            f"{FETCH_JOB}:{peer.id}:{peer.subscription_id}:{key}",
            max_attempts=current_app.config["SETTINGS"].exchange_max_attempts,
        )
        if event is not None:
            numbers.append(event)
    if numbers:
        if min(numbers) > peer.last_event_number + 1:
            # Events we never got: catch up with a polling pass now.
            catch_up(session, peer.id, f"{peer.subscription_id}:{min(numbers)}")
        session.execute(
            update(ExchangePeer)
            .where(ExchangePeer.id == peer.id, ExchangePeer.last_event_number < max(numbers))
            .values(last_event_number=max(numbers))
        )


def _task_id(peer: ExchangePeer, focus: Any) -> str | None:
    """The Task id a notification's focus names, if it is a Task on this peer: we never fetch
    a URL a notification hands us."""
    if not isinstance(focus, str):
        return None
    base = peer.base_url.rstrip("/") + "/"
    relative = focus[len(base) :] if focus.startswith(base) else focus
    if relative.startswith(("http://", "https://")):
        return None
    parts = relative.split("/")
    if len(parts) >= 2 and parts[0] == "Task" and FHIR_ID.fullmatch(parts[1]):
        return parts[1]
    return None


@jobs.handler(FETCH_JOB)
def fetch_job(session: Session, payload: dict) -> None:
    """Read the Task a notification named from the peer and mirror it."""
    peer = session.get(ExchangePeer, uuid.UUID(payload["peer_id"]))
    if peer is None or not peer.active:
        return
    client = PeerClient(snapshot(peer))
    session.commit()
    try:
        task = client.read("Task", payload["task_id"])
    except PeerError as err:
        if not err.retryable:
            raise jobs.PermanentJobError(str(err)) from None
        raise
    if not isinstance(task, dict) or task.get("resourceType") != "Task":
        raise jobs.PermanentJobError("The notification's focus is not a Task.")
    mirror(peer.id, task, client)


def _outcome(status: int, code: str, diagnostics: str) -> Response:
    response = jsonify(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
        }
    )
    response.status_code = status
    return response
