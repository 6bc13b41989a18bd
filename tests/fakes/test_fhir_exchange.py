"""The fake exchange answers over HTTP the way a FHIR R4 server does: SMART Backend Services
tokens, versioned creates and updates, transactions, searches, Backport IG subscriptions and the
faults a test scripts."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhirclient import client as fhir_client
from fhirclient.models.bundle import Bundle as ClientBundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.patient import Patient as ClientPatient
from fhirclient.models.task import Task as ClientTask
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.fakes.fhir_exchange import (
    ASSERTION_TYPE,
    FILTER_CRITERIA,
    NOTIFICATION_PROFILE,
    PAYLOAD_CONTENT,
    STATUS_PROFILE,
    TASK_TOPIC,
    FakeExchange,
)
from tests.fhir.schema_check import assert_valid_r4

pytestmark = pytest.mark.pure

FHIR = "application/fhir+json"
CLIENT_ID = "referrals-platform"
CLINIC = "Organization/clinic-1"
PANTRY = "Organization/food-pantry"
SHELTER = "Organization/shelter"
PARTNER_IDS = "https://referrals.example.org/fhir/task-id"


@cache
def rsa_key(name: str = "main") -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(name: str = "main") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def jwks() -> dict[str, Any]:
    return {
        "keys": [
            {**RSAAlgorithm.to_jwk(rsa_key().public_key(), as_dict=True), "kid": "rsa-1"},
            {**ECAlgorithm.to_jwk(ec_key().public_key(), as_dict=True), "kid": "ec-1"},
        ]
    }


def assertion(
    ex: FakeExchange, *, alg: str = "RS384", key: Any = None, kid: str | None = None, **claims: Any
) -> str:
    """A client assertion signed like our platform signs them; claims override the defaults."""
    now = int(time.time())
    payload = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": ex.token_url,
        "exp": now + 240,
        "iat": now,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    kid = kid or ("rsa-1" if alg == "RS384" else "ec-1")
    if key is None:
        key = rsa_key() if alg == "RS384" else ec_key()
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def token_request(ex: FakeExchange, signed: str, **fields: str) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.read system/Task.write",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        **fields,
    }
    return requests.post(ex.token_url, data=form, timeout=5)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": FHIR}


def task(owner: str = PANTRY, status: str = "requested", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "requester": {"reference": CLINIC},
        "owner": {"reference": owner},
        **extra,
    }


def outcome_says(response: requests.Response, status: int, words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"], body
    assert_valid_r4(body)
    return body


class Receiver:
    """A subscriber's notification endpoint: records each POST and answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.received.append({"headers": dict(self.headers), "json": body})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeExchange]:
    with FakeExchange() as fake:
        yield fake


@pytest.fixture
def ex(server: FakeExchange) -> Iterator[FakeExchange]:
    server.reset()
    yield server
    server.up()
    assert server.errors == []
    server.reset()


@pytest.fixture
def api(ex: FakeExchange) -> requests.Session:
    """A client with a token for everything, for tests about other things than auth."""
    session = requests.Session()
    session.headers.update(bearer(ex.grant_token()))
    return session


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def create(api: requests.Session, ex: FakeExchange, resource: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"{ex.url}/{resource['resourceType']}", json=resource, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


# discovery and SMART Backend Services ------------------------------------------------------


def test_discovery_is_public_and_names_the_token_endpoint(ex: FakeExchange) -> None:
    smart = requests.get(f"{ex.url}/.well-known/smart-configuration", timeout=5).json()
    assert smart["token_endpoint"] == ex.token_url == f"{ex.origin}/oauth/token"
    assert smart["grant_types_supported"] == ["client_credentials"]
    assert smart["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert smart["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]

    metadata = requests.get(f"{ex.url}/metadata", timeout=5)
    assert metadata.headers["Content-Type"].startswith(FHIR)
    statement = metadata.json()
    assert statement["fhirVersion"] == "4.0.1"
    assert_valid_r4(statement)
    CapabilityStatement(statement)  # fhirclient's R4 model accepts it
    subscription = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription")
    assert {e["valueCanonical"] for e in subscription["extension"]} >= {TASK_TOPIC}


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_buys_a_five_minute_token_that_opens_the_api(
    ex: FakeExchange, alg: str
) -> None:
    ex.register_client(CLIENT_ID, jwks())
    response = token_request(ex, assertion(ex, alg=alg))
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    grant = response.json()
    assert grant["token_type"] == "bearer"
    assert grant["expires_in"] == 300
    assert grant["scope"] == "system/*.read system/Task.write"

    created = requests.post(
        f"{ex.url}/Task", json=task(), headers=bearer(grant["access_token"]), timeout=5
    )
    assert created.status_code == 201
    refused = requests.post(
        f"{ex.url}/Patient",
        json={"resourceType": "Patient"},
        headers=bearer(grant["access_token"]),
        timeout=5,
    )
    outcome_says(refused, 403, "do not allow 'c' on Patient")


def test_the_token_endpoint_refuses_what_smart_backend_services_forbids(ex: FakeExchange) -> None:
    ex.register_client(CLIENT_ID, jwks(), scopes=["system/*.read"])
    reused = assertion(ex)
    assert token_request(ex, reused, scope="system/*.read").status_code == 200
    cases = [
        (reused, {}, 401, "invalid_client", "jti was used before"),
        (assertion(ex, aud="https://elsewhere/token"), {}, 401, "invalid_client", "aud must be"),
        (assertion(ex, exp=int(time.time()) + 900), {}, 401, "invalid_client", "5 minutes"),
        (assertion(ex, exp=int(time.time()) - 120), {}, 401, "invalid_client", "expired"),
        (assertion(ex, kid="nope"), {}, 401, "invalid_client", "has kid 'nope'"),
        (assertion(ex, key=rsa_key("other")), {}, 401, "invalid_client", "does not verify"),
        (assertion(ex, iss="stranger", sub="stranger"), {}, 401, "invalid_client", "Unknown"),
        (assertion(ex, sub="someone-else"), {}, 401, "invalid_client", "sub must equal"),
        (assertion(ex), {"grant_type": "password"}, 400, "unsupported_grant_type", "grant_type"),
        (assertion(ex), {"client_assertion_type": "x"}, 400, "invalid_request", "must be"),
        (assertion(ex), {"scope": "system/*.write"}, 400, "invalid_scope", "may not have"),
        (assertion(ex), {"scope": ""}, 400, "invalid_scope", "required"),
    ]
    for signed, fields, status, error, words in cases:
        response = token_request(ex, signed, **fields)
        assert response.status_code == status, (fields, response.text)
        assert response.json()["error"] == error
        assert words in response.json()["error_description"], response.json()


def test_fhir_requests_need_a_live_bearer_token(ex: FakeExchange) -> None:
    missing = requests.get(f"{ex.url}/Task", timeout=5)
    outcome_says(missing, 401, "bearer token is required")
    assert 'error="invalid_token"' in missing.headers["WWW-Authenticate"]
    outcome_says(requests.get(f"{ex.url}/Task", headers=bearer("forged"), timeout=5), 401, "valid")

    token = ex.grant_token()
    assert requests.get(f"{ex.url}/Task", headers=bearer(token), timeout=5).status_code == 200
    ex.expire_tokens()
    outcome_says(requests.get(f"{ex.url}/Task", headers=bearer(token), timeout=5), 401, "expired")

    ex.token_seconds = 0.2
    short = ex.grant_token()
    assert requests.get(f"{ex.url}/Task", headers=bearer(short), timeout=5).status_code == 200
    time.sleep(0.25)
    outcome_says(requests.get(f"{ex.url}/Task", headers=bearer(short), timeout=5), 401, "expired")

    ex.require_auth = False
    assert requests.get(f"{ex.url}/Task", timeout=5).status_code == 200


# create, read, update -----------------------------------------------------------------------


def test_create_assigns_the_id_the_first_version_and_a_location(
    ex: FakeExchange, api: requests.Session
) -> None:
    response = api.post(f"{ex.url}/Task", json={**task(), "id": "mine"}, timeout=5)
    assert response.status_code == 201
    stored = response.json()
    assert stored["id"] != "mine"
    assert stored["meta"]["versionId"] == "1"
    assert stored["meta"]["lastUpdated"].endswith("Z")
    assert len(stored["meta"]["lastUpdated"]) == len("2025-01-01T00:00:00.000000Z")
    assert response.headers["Location"] == f"{ex.url}/Task/{stored['id']}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'
    assert_valid_r4(stored)

    read = api.get(f"{ex.url}/Task/{stored['id']}", timeout=5)
    assert read.json() == stored
    assert read.headers["ETag"] == 'W/"1"'
    outcome_says(api.get(f"{ex.url}/Task/unknown", timeout=5), 404, "Task/unknown is not known")
    assert ex.requests[0]["json"]["id"] == "mine"
    assert ex.requests[0]["headers"]["Authorization"].startswith("Bearer ")


def test_conditional_create_finds_the_resource_a_retry_would_duplicate(
    ex: FakeExchange, api: requests.Session
) -> None:
    body = task(identifier=[{"system": PARTNER_IDS, "value": "T-1"}])
    condition = {"If-None-Exist": f"identifier={PARTNER_IDS}|T-1"}
    first = api.post(f"{ex.url}/Task", json=body, headers=condition, timeout=5)
    again = api.post(f"{ex.url}/Task", json=body, headers=condition, timeout=5)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["meta"]["versionId"] == "1"
    assert len(ex.resources("Task")) == 1

    ex.put_resource(task(identifier=[{"system": PARTNER_IDS, "value": "T-2"}]))
    ex.put_resource(task(identifier=[{"system": PARTNER_IDS, "value": "T-2"}]))
    twice = {"If-None-Exist": f"identifier={PARTNER_IDS}|T-2"}
    outcome_says(api.post(f"{ex.url}/Task", json=body, headers=twice, timeout=5), 412, "matches 2")


def test_concurrent_conditional_creates_make_one_resource(
    ex: FakeExchange, api: requests.Session
) -> None:
    body = task(identifier=[{"system": PARTNER_IDS, "value": "race"}])
    headers = {**api.headers, "If-None-Exist": f"identifier={PARTNER_IDS}|race"}

    def post(_: int) -> int:
        return requests.post(f"{ex.url}/Task", json=body, headers=headers, timeout=5).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(post, range(8)))
    assert statuses == [200] * 7 + [201]
    assert len(ex.resources("Task")) == 1


def test_updates_count_versions_and_if_match_refuses_a_stale_one(
    ex: FakeExchange, api: requests.Session
) -> None:
    stored = create(api, ex, task())
    url = f"{ex.url}/Task/{stored['id']}"
    accepted = {**stored, "status": "accepted"}
    second = api.put(url, json=accepted, headers={"If-Match": 'W/"1"'}, timeout=5)
    assert second.status_code == 200
    assert second.headers["ETag"] == 'W/"2"'
    assert second.json()["meta"]["versionId"] == "2"
    assert second.json()["meta"]["lastUpdated"] > stored["meta"]["lastUpdated"]

    stale = api.put(url, json={**stored, "status": "rejected"}, headers={"If-Match": 'W/"1"'})
    outcome_says(stale, 412, "at version 2")
    assert ex.resource("Task", stored["id"])["status"] == "accepted"

    third = api.put(url, json={**stored, "status": "in-progress"}, timeout=5)
    assert third.json()["meta"]["versionId"] == "3"
    first = api.get(f"{url}/_history/1", timeout=5)
    assert first.json()["status"] == "requested"
    assert first.headers["ETag"] == 'W/"1"'
    outcome_says(api.get(f"{url}/_history/9", timeout=5), 404, "no version 9")
    history = api.get(f"{url}/_history", timeout=5).json()
    assert [e["response"]["status"] for e in history["entry"]] == [
        "200 OK",
        "200 OK",
        "201 Created",
    ]

    new = api.put(f"{ex.url}/Task/chosen-id", json={**task(), "id": "chosen-id"}, timeout=5)
    assert new.status_code == 201
    assert new.headers["Location"].endswith("/Task/chosen-id/_history/1")
    outcome_says(api.put(url, json={**stored, "id": "other"}, timeout=5), 400, "must equal")


def test_malformed_requests_get_an_operation_outcome(
    ex: FakeExchange, api: requests.Session
) -> None:
    bad_json = api.post(f"{ex.url}/Task", data="{oops", headers={"Content-Type": FHIR}, timeout=5)
    outcome_says(bad_json, 400, "not JSON")
    outcome_says(api.post(f"{ex.url}/Spaceship", json={}, timeout=5), 404, "'Spaceship'")
    text = api.post(f"{ex.url}/Task", data="x", headers={"Content-Type": "text/plain"})
    outcome_says(text, 415, "text/plain")
    outcome_says(api.post(f"{ex.url}/Task", json={"resourceType": "Patient"}), 400, "'Task'")
    outcome_says(api.delete(f"{ex.url}/Task/1", timeout=5), 405, "not supported")


# transactions -------------------------------------------------------------------------------


def referral_bundle(patient_condition: str | None = None) -> dict[str, Any]:
    patient_url, request_url, task_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    patient_request = {"method": "POST", "url": "Patient"}
    if patient_condition:
        patient_request["ifNoneExist"] = patient_condition
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:mrn", "value": "42"}],
                },
                "request": patient_request,
            },
            {
                "fullUrl": request_url,
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": patient_url},
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": task_url,
                "resource": task(
                    focus={"reference": request_url}, **{"for": {"reference": patient_url}}
                ),
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }


def test_a_transaction_stores_every_entry_and_resolves_urn_uuid_references(
    ex: FakeExchange, api: requests.Session
) -> None:
    response = api.post(ex.url, json=referral_bundle(), timeout=5)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    assert_valid_r4(answer)
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created"] * 3
    patient, service_request, stored_task = (e["resource"] for e in answer["entry"])
    assert answer["entry"][2]["response"]["location"] == f"Task/{stored_task['id']}/_history/1"
    assert answer["entry"][2]["response"]["etag"] == 'W/"1"'
    assert service_request["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert stored_task["focus"] == {"reference": f"ServiceRequest/{service_request['id']}"}
    assert ex.resource("Task", stored_task["id"])["for"]["reference"] == f"Patient/{patient['id']}"
    assert len({r["meta"]["lastUpdated"] for r in (patient, service_request, stored_task)}) == 1

    again = api.post(ex.url, json=referral_bundle("identifier=urn:mrn|42"), timeout=5).json()
    assert again["entry"][0]["response"]["status"] == "200 OK"
    assert again["entry"][0]["resource"]["id"] == patient["id"]
    assert again["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient['id']}"
    assert len(ex.resources("Patient")) == 1


def test_a_transaction_with_one_failing_entry_stores_nothing(
    ex: FakeExchange, api: requests.Session
) -> None:
    existing = create(api, ex, task())
    bundle = referral_bundle()
    bundle["entry"].append(
        {
            "resource": {**existing, "status": "cancelled"},
            "request": {"method": "PUT", "url": f"Task/{existing['id']}", "ifMatch": 'W/"7"'},
        }
    )
    response = api.post(ex.url, json=bundle, timeout=5)
    outcome_says(response, 412, f"entry[3] (PUT Task/{existing['id']})")
    assert "nothing was stored" in response.json()["issue"][0]["diagnostics"]
    assert ex.resources("Patient") == [] and ex.resources("ServiceRequest") == []
    assert ex.resources("Task") == [existing]

    dangling = referral_bundle()
    dangling["entry"][1]["resource"]["subject"] = {"reference": "urn:uuid:nobody"}
    outcome_says(api.post(ex.url, json=dangling, timeout=5), 400, "names no entry's fullUrl")
    assert ex.resources("Patient") == []


# search -------------------------------------------------------------------------------------


def search(api: requests.Session, ex: FakeExchange, query: str) -> dict[str, Any]:
    response = api.get(f"{ex.url}/{query}", timeout=5)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert_valid_r4(bundle)
    return bundle


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def test_search_by_identifier_status_and_references(
    ex: FakeExchange, api: requests.Session
) -> None:
    order = ex.put_resource(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
        }
    )
    pantry = ex.put_resource(
        task(
            identifier=[{"system": PARTNER_IDS, "value": "A"}],
            focus={"reference": f"ServiceRequest/{order['id']}"},
            partOf=[{"reference": "Task/original"}],
        )
    )
    shelter = ex.put_resource(
        task(SHELTER, "accepted", basedOn=[{"reference": f"{ex.url}/ServiceRequest/{order['id']}"}])
    )
    assert ids(search(api, ex, f"Task?identifier={PARTNER_IDS}|A")) == [pantry["id"]]
    assert ids(search(api, ex, "Task?identifier=A")) == [pantry["id"]]
    assert ids(search(api, ex, "Task?status=accepted")) == [shelter["id"]]
    assert ids(search(api, ex, "Task?status=accepted,requested")) == [pantry["id"], shelter["id"]]
    assert ids(search(api, ex, f"Task?owner={PANTRY}")) == [pantry["id"]]
    assert ids(search(api, ex, f"Task?owner={ex.url}/{SHELTER}")) == [shelter["id"]]
    assert ids(search(api, ex, f"Task?requester={CLINIC}&owner={SHELTER}")) == [shelter["id"]]
    assert ids(search(api, ex, f"Task?based-on=ServiceRequest/{order['id']}")) == [shelter["id"]]
    assert ids(search(api, ex, "Task?part-of=Task/original")) == [pantry["id"]]
    assert ids(search(api, ex, f"Task?_id={shelter['id']}")) == [shelter["id"]]

    included = search(api, ex, f"Task?owner={PANTRY}&_include=Task:focus")
    assert ids(included) == [pantry["id"]]
    assert ids(included, "include") == [order["id"]]
    assert included["total"] == 1

    outcome_says(api.get(f"{ex.url}/Task?color=blue", timeout=5), 400, "Unknown search parameter")
    outcome_says(api.get(f"{ex.url}/Task?_include=Task:nothing"), 400, "Unsupported _include")


def test_polling_with_last_updated_and_paging_sees_every_change_once(
    ex: FakeExchange, api: requests.Session
) -> None:
    first = [ex.put_resource(task()) for _ in range(2)]
    seen = first[-1]["meta"]["lastUpdated"]
    later = [ex.put_resource(task()) for _ in range(3)]
    changed = search(api, ex, f"Task?owner={PANTRY}&_lastUpdated=gt{seen}")
    assert ids(changed) == [t["id"] for t in later]
    assert ids(search(api, ex, f"Task?_lastUpdated=le{seen}")) == [t["id"] for t in first]
    assert ids(search(api, ex, f"Task?_lastUpdated=ge{seen}"))[0] == first[-1]["id"]
    day = seen[:10]
    assert len(ids(search(api, ex, f"Task?_lastUpdated=ge{day}&_lastUpdated=lt2999"))) == 5
    outcome_says(api.get(f"{ex.url}/Task?_lastUpdated=gtyesterday"), 400, "Invalid date")

    pages, url = [], f"{ex.url}/Task?_count=2"
    while url:
        page = api.get(url, timeout=5).json()
        assert page["total"] == 5
        pages.append(ids(page))
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert pages == [[t["id"] for t in (first + later)[i : i + 2]] for i in (0, 2, 4)]
    assert search(api, ex, "Task?_summary=count")["total"] == 5


def test_fhirclient_reads_and_searches_the_fake(ex: FakeExchange) -> None:
    patient = ex.put_resource(
        {"resourceType": "Patient", "name": [{"family": "Rivera", "given": ["Ana"]}]}
    )
    subject = {"for": {"reference": f"Patient/{patient['id']}"}}
    tasks = [ex.put_resource(task(**subject)) for _ in range(2)]
    ex.put_resource(task())
    smart = fhir_client.FHIRClient(settings={"app_id": "tests", "api_base": ex.url + "/"})
    smart.server.session.headers["Authorization"] = f"Bearer {ex.grant_token()}"

    read = ClientPatient.read(patient["id"], smart.server)
    assert read.name[0].family == "Rivera"
    query = ClientTask.where(struct={"patient": patient["id"], "_count": "1"})
    pages = list(query.perform_iter(smart.server))  # follows the next links
    assert all(isinstance(page, ClientBundle) and page.total == 2 for page in pages)
    assert [page.entry[0].resource.id for page in pages] == [t["id"] for t in tasks]
    assert pages[0].entry[0].resource.meta.versionId == "1"


# subscriptions ------------------------------------------------------------------------------


def subscription(endpoint: str, criteria: str = f"Task?owner={PANTRY}") -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Our referrals' Tasks at the pantry",
        "criteria": TASK_TOPIC,
        "_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": criteria}]},
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": FHIR,
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]},
            "header": ["Authorization: Bearer callback-secret"],
        },
    }


def status_parameters(bundle: dict[str, Any]) -> dict[str, Any]:
    resource = bundle["entry"][0]["resource"]
    assert resource["resourceType"] == "Parameters"
    assert resource["meta"]["profile"] == [STATUS_PROFILE]
    return {p["name"]: p for p in resource["parameter"]}


def test_a_subscription_shakes_hands_then_sends_id_only_event_notifications(
    ex: FakeExchange, api: requests.Session, receiver: Receiver
) -> None:
    created = create(api, ex, subscription(receiver.url))
    assert created["status"] == "requested"
    ex.wait_for_notifications()
    assert ex.resource("Subscription", created["id"])["status"] == "active"

    handshake = receiver.received[0]
    assert handshake["headers"]["Authorization"] == "Bearer callback-secret"
    assert handshake["headers"]["Content-Type"].startswith(FHIR)
    bundle = handshake["json"]
    assert_valid_r4(bundle)
    assert bundle["type"] == "history"
    assert bundle["meta"]["profile"] == [NOTIFICATION_PROFILE]
    assert len(bundle["entry"]) == 1
    params = status_parameters(bundle)
    assert params["type"]["valueCode"] == "handshake"
    assert params["status"]["valueCode"] == "requested"
    assert params["events-since-subscription-start"]["valueString"] == "0"
    assert params["subscription"]["valueReference"]["reference"] == (
        f"{ex.url}/Subscription/{created['id']}"
    )
    assert bundle["entry"][0]["request"] == {
        "method": "GET",
        "url": f"{ex.url}/Subscription/{created['id']}/$status",
    }

    ex.put_resource(task(SHELTER))  # not ours to hear about
    mine = create(api, ex, task())
    api.put(f"{ex.url}/Task/{mine['id']}", json={**mine, "status": "accepted"}, timeout=5)
    ex.wait_for_notifications()
    events = [r["json"] for r in receiver.received[1:]]
    assert len(events) == 2
    for number, (event, method) in enumerate(zip(events, ["POST", "PUT"], strict=True), 1):
        assert_valid_r4(event)
        params = status_parameters(event)
        assert params["type"]["valueCode"] == "event-notification"
        assert params["status"]["valueCode"] == "active"
        assert params["topic"]["valueCanonical"] == TASK_TOPIC
        assert params["events-since-subscription-start"]["valueString"] == str(number)
        parts = {p["name"]: p for p in params["notification-event"]["part"]}
        assert parts["event-number"]["valueString"] == str(number)
        assert parts["focus"]["valueReference"]["reference"] == f"{ex.url}/Task/{mine['id']}"
        datetime.fromisoformat(parts["timestamp"]["valueInstant"])
        focus = event["entry"][1]
        assert focus["fullUrl"] == f"{ex.url}/Task/{mine['id']}"
        assert focus["request"]["method"] == method
        assert "resource" not in focus  # id-only
    assert [n["type"] for n in ex.notifications] == ["handshake"] + ["event-notification"] * 2

    status = api.get(f"{ex.url}/Subscription/{created['id']}/$status", timeout=5).json()
    assert_valid_r4(status)
    assert status["type"] == "searchset"
    params = status_parameters(status)
    assert params["type"]["valueCode"] == "query-status"
    assert params["status"]["valueCode"] == "active"
    assert params["events-since-subscription-start"]["valueString"] == "2"


def test_an_endpoint_that_fails_the_handshake_leaves_the_subscription_in_error(
    ex: FakeExchange, api: requests.Session, receiver: Receiver
) -> None:
    receiver.status = 500
    ex.notify_retry_seconds = 0.01
    created = create(api, ex, subscription(receiver.url))
    ex.put_resource(task())
    attempts = ex.wait_for_notifications()
    assert [(n["type"], n["attempt"], n["status"]) for n in attempts] == [
        ("handshake", 1, 500),
        ("handshake", 2, 500),
        ("handshake", 3, 500),
        ("event-notification", 0, None),
    ]
    assert len(receiver.received) == 3
    assert ex.resource("Subscription", created["id"])["status"] == "error"
    params = status_parameters(
        api.get(f"{ex.url}/Subscription/{created['id']}/$status", timeout=5).json()
    )
    assert params["status"]["valueCode"] == "error"
    assert params["error"]["valueCodeableConcept"]["coding"][0]["code"] == "no-response"


def test_a_subscription_the_exchange_cannot_honour_is_refused(
    ex: FakeExchange, api: requests.Session
) -> None:
    no_content = subscription("http://127.0.0.1:9/notify")
    del no_content["channel"]["_payload"]
    outcome_says(api.post(f"{ex.url}/Subscription", json=no_content), 422, "backport-payload")
    other_topic = {**subscription("http://127.0.0.1:9/notify"), "criteria": "http://x/topic"}
    outcome_says(api.post(f"{ex.url}/Subscription", json=other_topic), 422, "topic canonical")
    bad_filter = subscription("http://127.0.0.1:9/notify", "Task?colour=red")
    outcome_says(api.post(f"{ex.url}/Subscription", json=bad_filter), 422, "colour")
    assert ex.resources("Subscription") == []


# scripted faults ----------------------------------------------------------------------------


def test_fail_next_answers_the_scripted_status_then_the_server_recovers(
    ex: FakeExchange, api: requests.Session
) -> None:
    ex.fail_next(2, status=503, retry_after=1)
    first = api.post(f"{ex.url}/Task", json=task(), timeout=5)
    outcome_says(first, 503, "Scripted failure")
    assert first.headers["Retry-After"] == "1"
    outcome_says(api.get(f"{ex.url}/Task", timeout=5), 503, "Scripted failure")
    assert ex.resources("Task") == []
    assert api.post(f"{ex.url}/Task", json=task(), timeout=5).status_code == 201


def test_down_refuses_connections_and_up_comes_back_on_the_same_port(
    ex: FakeExchange, api: requests.Session
) -> None:
    stored = create(api, ex, task())
    port, url = ex.port, ex.url
    ex.down()
    with pytest.raises(requests.ConnectionError):
        api.get(f"{url}/Task/{stored['id']}", timeout=2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    ex.up()
    assert ex.port == port
    assert api.get(f"{url}/Task/{stored['id']}", timeout=5).json() == stored


def test_a_slow_exchange_makes_the_client_time_out(ex: FakeExchange, api: requests.Session) -> None:
    ex.delay_seconds = 0.5
    with pytest.raises(requests.Timeout):
        api.get(f"{ex.url}/Task", timeout=0.1)
    ex.delay_seconds = 0
    assert api.get(f"{ex.url}/Task", timeout=5).status_code == 200
