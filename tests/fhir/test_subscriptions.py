"""Partners subscribe to our topics (R4 Subscriptions Backport) and are told, over a rest-hook,
when the Tasks and ServiceRequests their organisation may read change: a handshake, then
numbered id-only notifications delivered by the outbox with its retries."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update

from referrals.db import db, utcnow
from referrals.fhir import subscriptions as subs
from referrals.jobs import DEAD, QUEUED, Job, run_due_jobs
from tests.fhir.schema_check import assert_valid_r4
from tests.fhir.test_api import get, outcome
from tests.fhir.test_api import token as read_token
from tests.fhir.test_oauth import assertion, register, token_form
from tests.helpers import World, make_patient, move, send

FHIR_JSON = "application/fhir+json"
SCOPES = "system/*.read system/Subscription.write"
SECRET = "Authorization: Bearer for-our-endpoint-only"


def token(app, world: World, org: str, scope: str = SCOPES) -> str:
    """A token of a client of the organisation allowed to subscribe."""
    client = register(world, org, scopes=["system/*.read", "system/Subscription.write"])
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope=scope)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


class Receiver:
    """A subscriber's endpoint on 127.0.0.1: records each POST; answers 500 to the first
    `failures` it gets, or a redirect to `redirect_to`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures = 0
        self.redirect_to: str | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver.failures > 0
                    receiver.failures -= failing
                    if not failing:
                        receiver.received.append(
                            {"headers": dict(self.headers), "bundle": json.loads(body)}
                        )
                if receiver.redirect_to and not failing:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_port}"
        self.url = f"{self.origin}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bundles(self, kind: str = "event-notification") -> list[dict[str, Any]]:
        with self._lock:
            return [r["bundle"] for r in self.received if _status(r["bundle"])["type"] == kind]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def allow(app, monkeypatch: pytest.MonkeyPatch, *origins: str) -> None:
    """SUBSCRIPTION_ALLOWED_ENDPOINTS names these origins (none: the default, empty)."""
    settings = dataclasses.replace(
        app.config["SETTINGS"], subscription_allowed_endpoints=",".join(origins)
    )
    monkeypatch.setitem(app.config, "SETTINGS", settings)


@pytest.fixture
def receiver(app, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A subscriber's endpoint on the loopback, which the settings allow, as a developer's
    set-up would."""
    endpoint = Receiver()
    allow(app, monkeypatch, endpoint.origin)
    yield endpoint
    endpoint.close()


def _status(bundle: dict[str, Any]) -> dict[str, Any]:
    """The SubscriptionStatus of a notification Bundle, as {name: value} (parts as a dict)."""
    parameters = bundle["entry"][0]["resource"]["parameter"]
    found: dict[str, Any] = {}
    for p in parameters:
        if "part" in p:
            found[p["name"]] = {q["name"]: _value(q) for q in p["part"]}
        else:
            found[p["name"]] = _value(p)
    return found


def _value(parameter: dict[str, Any]) -> Any:
    value = next(v for k, v in parameter.items() if k.startswith("value"))
    return value.get("reference", value) if isinstance(value, dict) else value


def subscription(
    endpoint: str,
    topic: str = subs.TASK_TOPIC,
    filters: tuple[str, ...] = (),
    content: str = "id-only",
    channel_type: str = "rest-hook",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Our case system follows its referrals",
        "criteria": topic,
        "channel": {
            "type": channel_type,
            "endpoint": endpoint,
            "payload": FHIR_JSON,
            "_payload": {"extension": [{"url": subs.PAYLOAD_CONTENT, "valueCode": content}]},
            "header": [SECRET],
        },
    }
    if filters:
        body["_criteria"] = {
            "extension": [{"url": subs.FILTER_CRITERIA, "valueString": f} for f in filters]
        }
    return body


def post(app, body: dict[str, Any], bearer: str):
    return app.test_client().post(
        "/fhir/Subscription",
        data=json.dumps(body),
        content_type=FHIR_JSON,
        headers={"Authorization": f"Bearer {bearer}"},
    )


def subscribe(app, bearer: str, endpoint: str, **kw: Any) -> str:
    """A Subscription whose handshake went through: its id."""
    response = post(app, subscription(endpoint, **kw), bearer)
    assert response.status_code == 201, response.get_json()
    run_due_jobs()
    return response.get_json()["id"]


def drain(rounds: int = 20) -> None:
    """Run the outbox until nothing is left, bringing each retry's backoff forward."""
    for _ in range(rounds):
        run_due_jobs()
        session = db.session()
        waiting = session.execute(
            update(Job).where(Job.status == QUEUED).values(run_after=utcnow())
        ).rowcount
        session.commit()
        if not waiting:
            return


def status_of(app, sub_id: str, bearer: str) -> dict[str, Any]:
    response = get(app, f"/fhir/Subscription/{sub_id}/$status", bearer)
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    assert_valid_r4(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    return _status(bundle)


def test_a_subscription_is_stored_requested_then_made_active_by_its_handshake(
    app, world: World, receiver: Receiver
) -> None:
    bearer = token(app, world, "food", SCOPES)
    owner = f"Organization/{world.orgs['food'].id}"
    response = post(app, subscription(receiver.url, filters=(f"Task?owner={owner}",)), bearer)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["status"] == "requested"
    assert response.headers["Location"].endswith(f"/fhir/Subscription/{created['id']}")
    assert receiver.received == []  # the outbox sends it, after the commit
    run_due_jobs()
    (handshake,) = receiver.bundles("handshake")
    assert_valid_r4(handshake)
    assert handshake["type"] == "history" and len(handshake["entry"]) == 1
    status = _status(handshake)
    assert status["topic"] == subs.TASK_TOPIC
    assert status["events-since-subscription-start"] == "0"
    assert status["subscription"].endswith(f"/fhir/Subscription/{created['id']}")
    assert receiver.received[0]["headers"]["Authorization"] == "Bearer for-our-endpoint-only"
    read = get(app, f"/fhir/Subscription/{created['id']}", bearer).get_json()
    assert read["status"] == "active"
    assert read["_criteria"]["extension"][0]["valueString"] == f"Task?owner={owner}"
    assert "header" not in read["channel"]  # the secret is never shown back
    assert "for-our-endpoint-only" not in json.dumps(read)
    assert status_of(app, created["id"], bearer)["status"] == "active"


def test_the_recipient_is_told_of_each_move_in_order_and_reads_the_task(
    app, world: World, receiver: Receiver
) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", SCOPES)
    sub_id = subscribe(app, bearer, receiver.url)
    for action, fields in (
        ("accept", {}),
        ("start", {}),
        ("complete", {"output_code": "710925007"}),
    ):
        move(world, "food", referral, action, **fields)
    run_due_jobs()
    notifications = receiver.bundles()
    assert [_status(b)["notification-event"]["event-number"] for b in notifications] == [
        "1",
        "2",
        "3",
    ]
    focus = f"http://127.0.0.1:5000/fhir/Task/{referral.task.id}"
    for number, bundle in enumerate(notifications, start=1):
        assert_valid_r4(bundle)
        status = _status(bundle)
        assert status["type"] == "event-notification"
        assert status["events-since-subscription-start"] == str(number)
        assert status["notification-event"]["focus"] == focus
        (changed,) = bundle["entry"][1:]
        assert changed["fullUrl"] == focus and "resource" not in changed  # id-only
        assert changed["request"] == {"method": "PUT", "url": f"Task/{referral.task.id}"}
        assert changed["response"]["etag"] == f'W/"{number + 1}"'
    assert all(r["headers"]["Authorization"] == SECRET.split(": ")[1] for r in receiver.received)
    # The recipient reads what changed with its own token.
    task = get(app, focus.removeprefix("http://127.0.0.1:5000"), bearer)
    assert task.status_code == 200 and task.get_json()["status"] == "completed"
    assert status_of(app, sub_id, bearer)["events-since-subscription-start"] == "3"


def test_the_service_request_topic_fires_when_its_status_changes(
    app, world: World, receiver: Receiver
) -> None:
    clinic = token(app, world, "clinic", SCOPES)
    requester = f"Organization/{world.orgs['clinic'].id}"
    subscribe(
        app,
        clinic,
        receiver.url,
        topic=subs.SERVICE_REQUEST_TOPIC,
        filters=(f"ServiceRequest?requester={requester}",),
    )
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    move(world, "food", referral, "complete", output_code="710925007")
    run_due_jobs()
    sent, completed = receiver.bundles()
    assert sent["entry"][1]["request"] == {"method": "POST", "url": "ServiceRequest"}
    assert completed["entry"][1]["fullUrl"].endswith(f"/fhir/ServiceRequest/{referral.id}")
    assert _status(completed)["notification-event"]["event-number"] == "2"


def test_no_notice_of_a_referral_the_organisation_cannot_see(
    app, world: World, receiver: Receiver
) -> None:
    housing = token(app, world, "housing", SCOPES)
    subscribe(app, housing, receiver.url)  # everything housing may see
    food = token(app, world, "food", SCOPES)
    requester = f"Organization/{world.orgs['food'].id}"
    subscribe(app, food, receiver.url, filters=(f"Task?requester={requester}",))
    referral = send(world, make_patient(world))  # to the food bank
    move(world, "food", referral, "accept")
    run_due_jobs()
    assert receiver.bundles() == []  # not housing's; food received it, it did not send it


def test_a_filter_on_another_organisation_is_403(app, world: World, receiver: Receiver) -> None:
    bearer = token(app, world, "food", SCOPES)
    other = f"Organization/{world.orgs['housing'].id}"
    response = post(app, subscription(receiver.url, filters=(f"Task?owner={other}",)), bearer)
    assert response.status_code == 403
    assert "own organisation only" in outcome(response).issue[0].diagnostics
    assert db.session().scalar(select(Job).where(Job.kind == subs.HANDSHAKE_JOB)) is None


@pytest.mark.parametrize(
    ("changes", "element", "words"),
    [
        ({"channel_type": "websocket"}, "Subscription.channel.type", "rest-hook only"),
        ({"content": "full-resource"}, "Subscription.channel.payload", "minimum necessary"),
        ({"topic": "http://example.org/Topic/x"}, "Subscription.criteria", "our topics"),
        ({"filters": ("Task?status=requested",)}, "Subscription.criteria.extension", "owner"),
        ({"endpoint": "ftp://127.0.0.1/x"}, "Subscription.channel.endpoint", "URL"),
    ],
)
def test_what_we_do_not_offer_is_422_naming_the_element(
    app, world: World, changes: dict[str, Any], element: str, words: str
) -> None:
    bearer = token(app, world, "food", SCOPES)
    endpoint = changes.pop("endpoint", "http://127.0.0.1:9/notify")
    response = post(app, subscription(endpoint, **changes), bearer)
    assert response.status_code == 422, response.get_json()
    issue = outcome(response).issue[0]
    assert issue.expression == [element] and words in issue.diagnostics


def test_a_subscriber_down_gets_retries_then_error_and_is_active_again_when_back(
    app, world: World, receiver: Receiver
) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", SCOPES)
    sub_id = subscribe(app, bearer, receiver.url)
    receiver.failures = 1000
    move(world, "food", referral, "accept")
    run_due_jobs()
    job = db.session().scalar(select(Job).where(Job.kind == subs.NOTIFY_JOB))
    assert job.status == QUEUED and job.attempts == 1  # tried again later, with backoff
    assert job.run_after > utcnow() + timedelta(seconds=4)
    db.session.remove()
    drain()
    job = db.session().scalar(select(Job).where(Job.kind == subs.NOTIFY_JOB))
    assert job.status == DEAD and job.attempts == app.config["SETTINGS"].job_max_attempts
    db.session.remove()
    status = status_of(app, sub_id, bearer)
    assert status["status"] == "error"
    assert "HTTP 500" in status["error"]["text"]
    assert get(app, f"/fhir/Subscription/{sub_id}", bearer).get_json()["status"] == "error"
    receiver.failures = 0
    move(world, "food", referral, "start")
    run_due_jobs()
    (delivered,) = receiver.bundles()
    assert _status(delivered)["notification-event"]["event-number"] == "2"  # 1 never arrived
    assert status_of(app, sub_id, bearer)["status"] == "active"


def test_a_handshake_that_never_arrives_leaves_the_subscription_in_error(
    app, world: World, receiver: Receiver
) -> None:
    receiver.failures = 1000
    bearer = token(app, world, "food", SCOPES)
    response = post(app, subscription(receiver.url), bearer)
    drain()
    sub_id = response.get_json()["id"]
    assert status_of(app, sub_id, bearer)["status"] == "error"
    move(world, "food", send(world, make_patient(world)), "accept")
    receiver.failures = 0
    run_due_jobs()
    assert receiver.received == []  # never active: told nothing


def test_delete_turns_it_off_and_nothing_more_is_sent(
    app, world: World, receiver: Receiver
) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", SCOPES)
    sub_id = subscribe(app, bearer, receiver.url)
    response = app.test_client().delete(
        f"/fhir/Subscription/{sub_id}", headers={"Authorization": f"Bearer {bearer}"}
    )
    assert response.status_code == 200 and response.get_json()["status"] == "off"
    move(world, "food", referral, "accept")
    run_due_jobs()
    assert receiver.bundles() == []
    assert status_of(app, sub_id, bearer)["status"] == "off"


def test_another_organisation_cannot_read_or_delete_a_subscription(
    app, world: World, receiver: Receiver
) -> None:
    sub_id = subscribe(app, token(app, world, "food", SCOPES), receiver.url)
    housing = token(app, world, "housing", SCOPES)
    assert get(app, f"/fhir/Subscription/{sub_id}", housing).status_code == 404
    assert get(app, f"/fhir/Subscription/{sub_id}/$status", housing).status_code == 404
    gone = app.test_client().delete(
        f"/fhir/Subscription/{sub_id}", headers={"Authorization": f"Bearer {housing}"}
    )
    assert gone.status_code == 404


def test_creating_needs_a_write_scope(app, world: World, receiver: Receiver) -> None:
    response = post(app, subscription(receiver.url), read_token(app, world, "food"))
    assert response.status_code == 403


def test_the_capability_statement_names_our_topics(app) -> None:
    statement = get(app, "/fhir/metadata").get_json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription")
    assert {e["valueCanonical"] for e in entry["extension"]} == set(subs.TOPICS)
    assert {i["code"] for i in entry["interaction"]} == {"create", "read", "delete"}
    assert entry["operation"] == [{"name": "status", "definition": subs.STATUS_OPERATION}]
    assert_valid_r4(statement)


# --- where notifications may go (the checks themselves: test_subscription_endpoints.py) -------


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("http://127.0.0.1:{port}/notify", "must be an https URL"),
        ("https://127.0.0.1:{port}/notify", "127.0.0.1 is a loopback address"),
        ("https://2130706433:{port}/notify", "resolves to a loopback address"),
        ("https://0x7f000001:{port}/notify", "resolves to a loopback address"),
        ("https://0177.0.0.1:{port}/notify", "resolves to a loopback address"),
        ("https://0.0.0.0:{port}/notify", "unspecified address"),
        ("https://169.254.169.254/latest/meta-data/", "link-local address"),
        ("https://[::1]:{port}/notify", "loopback address"),
        ("https://[::ffff:127.0.0.1]:{port}/notify", "loopback address"),
        ("https://10.0.0.8/notify", "private address"),
        ("https://localhost:{port}/notify", "resolves to a loopback address"),
    ],
)
def test_an_endpoint_inside_our_network_is_refused_in_every_environment(
    app, world: World, endpoint: str, words: str
) -> None:
    """A development or test set-up (this app runs as `test`) refuses them as production does;
    nothing reaches a listener there, even with the header the client chose."""
    listener = Receiver()  # on the loopback, not allowed
    try:
        bearer = token(app, world, "food", SCOPES)
        url = endpoint.format(port=listener.origin.rsplit(":", 1)[1])
        response = post(app, subscription(url), bearer)
        assert response.status_code == 422, response.get_json()
        issue = outcome(response).issue[0]
        assert issue.expression == ["Subscription.channel.endpoint"]
        assert words in issue.diagnostics
        assert db.session().scalar(select(subs.FhirSubscription)) is None
        drain()
        assert listener.received == []
    finally:
        listener.close()


def test_only_the_origin_the_settings_name_may_be_local(
    app, world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    bearer = token(app, world, "food", SCOPES)
    port = int(receiver.origin.rsplit(":", 1)[1])
    for other in (
        f"http://127.0.0.1:{port + 1}/notify",
        f"http://localhost:{port}/notify",
        f"http://2130706433:{port}/notify",
    ):
        response = post(app, subscription(other), bearer)
        assert response.status_code == 422, other
    assert post(app, subscription(receiver.url), bearer).status_code == 201


def test_the_endpoint_is_checked_again_at_each_delivery(
    app, world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Allowed when stored, not when the handshake goes: nothing is sent, and after the tries
    the Subscription is in error, saying why."""
    bearer = token(app, world, "food", SCOPES)
    response = post(app, subscription(receiver.url), bearer)
    assert response.status_code == 201
    allow(app, monkeypatch)  # the setting no longer names it
    drain()
    assert receiver.received == []
    status = status_of(app, response.get_json()["id"], bearer)
    assert status["status"] == "error"
    assert "not sent: it must be an https URL" in status["error"]["text"]


def test_a_redirect_is_not_followed(
    app, world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = Receiver()
    try:
        allow(app, monkeypatch, receiver.origin, elsewhere.origin)
        receiver.redirect_to = elsewhere.url
        bearer = token(app, world, "food", SCOPES)
        sub_id = post(app, subscription(receiver.url), bearer).get_json()["id"]
        drain()
        assert elsewhere.received == []
        status = status_of(app, sub_id, bearer)
        assert status["status"] == "error"
        assert "HTTP 307; redirects are not followed" in status["error"]["text"]
    finally:
        elsewhere.close()
