"""Every answer under /fhir is FHIR JSON, errors included: an unknown route is a 404, a method we
do not serve a 405, a format we do not speak a 406, a body too large a 413, a content type we do
not read a 415, a failure of ours a 500, each an OperationOutcome with its issue code, and none
sets a cookie. The token endpoint answers its errors as RFC 6749 JSON, never a page. Inputs
outside testing found to fail are refused with an OperationOutcome naming what is wrong."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from flask import Flask

from referrals import create_app
from tests.fhir.schema_check import assert_valid_r4
from tests.fhir.test_subscriptions import subscription
from tests.fhir.test_subscriptions import token as subscriber_token
from tests.fhir.test_transaction import referral_bundle, token
from tests.helpers import WebClient, World, make_patient, send

FHIR_JSON = "application/fhir+json"


def outcome_of(response, status: int, code: str) -> dict:
    """The OperationOutcome of an error answer: its status, FHIR JSON, valid R4, no cookie."""
    said = response.get_data(as_text=True)
    assert response.status_code == status, said[:2000]
    assert response.mimetype == FHIR_JSON, said[:300]
    assert "Set-Cookie" not in response.headers
    body = json.loads(said)
    assert_valid_r4(body)
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["severity"] == "error" and issue["code"] == code
    return issue


def send_json(app: Flask, url: str, body: str | bytes, bearer: str, method: str = "POST"):
    return app.test_client().open(
        url,
        method=method,
        data=body,
        headers={"Authorization": f"Bearer {bearer}"},
        content_type=FHIR_JSON,
    )


# --- HTTP's own refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/fhir/Task/1/_history/1/x", "/fhir/Patient/1/2/3/4", "/fhir/Task/1/$everything/x"]
)
def test_an_unknown_route_is_a_404_outcome(app: Flask, path: str) -> None:
    issue = outcome_of(app.test_client().get(path), 404, "not-found")
    assert path in issue["diagnostics"] and "/fhir/metadata" in issue["diagnostics"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/fhir/Task/{id}", {"GET", "PUT"}),
        ("DELETE", "/fhir/Task/{id}", {"GET", "PUT"}),
        ("PUT", "/fhir", {"POST"}),
        ("POST", "/fhir/metadata", {"GET"}),
        ("POST", "/fhir/Task/{id}", {"GET", "PUT"}),
        ("PUT", "/fhir/Subscription/{id}", {"GET", "DELETE"}),
    ],
)
def test_a_method_we_do_not_serve_is_a_405_outcome_naming_those_we_do(
    app: Flask, method: str, path: str, allowed: set[str]
) -> None:
    url = path.format(id=uuid.uuid4())
    response = app.test_client().open(url, method=method, data="{}", content_type=FHIR_JSON)
    issue = outcome_of(response, 405, "not-supported")
    assert f"{method} is not supported at {url}" in issue["diagnostics"]
    offered = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= offered and method not in offered


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/fhir/metadata", {"GET", "HEAD", "OPTIONS"}),
        ("/fhir/Task", {"GET", "HEAD", "OPTIONS"}),
        ("/fhir/Task/{id}", {"GET", "HEAD", "PUT", "OPTIONS"}),
        ("/fhir", {"POST", "OPTIONS"}),
        ("/fhir/Subscription/{id}", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("/oauth/token", {"POST", "OPTIONS"}),
        ("/healthz", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_names_the_methods_served_with_no_content_and_no_cookie(
    app: Flask, world: World, path: str, allowed: set[str]
) -> None:
    browser = WebClient(app.test_client())
    browser.login(world, "food")
    response = browser.client.open(
        path.format(id=uuid.uuid4()),
        method="OPTIONS",
        headers={"User-Agent": "another browser/1.0"},
        environ_base={"REMOTE_ADDR": "203.0.113.99"},
    )
    assert response.status_code == 204
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert response.data == b""
    assert "Content-Type" not in response.headers  # not an empty page labelled text/html
    assert "Set-Cookie" not in response.headers


def test_options_at_no_route_is_a_404_outcome(app: Flask) -> None:
    response = app.test_client().open("/fhir/Task/1/_history/1/x", method="OPTIONS")
    outcome_of(response, 404, "not-found")


def test_a_signed_in_browser_gets_no_cookie_from_the_fhir_api(app: Flask, world: World) -> None:
    browser = WebClient(app.test_client())
    browser.login(world, "food")
    for path in ("/fhir/metadata", "/fhir/Task", "/fhir/Nothing/here/at/all"):
        response = browser.get(path)
        assert response.mimetype == FHIR_JSON
        assert "Set-Cookie" not in response.headers, path
    response = browser.client.open("/fhir/metadata", method="DELETE")
    outcome_of(response, 405, "not-supported")
    assert browser.get("/inbox").status_code == 200  # the page session is unharmed


def test_a_session_cookie_presented_from_elsewhere_gets_no_cookie_from_the_machine_apis(
    app: Flask, world: World
) -> None:
    """A copied session (another browser, another address) makes the sign-in protection
    clear cookies on the pages; the machine APIs and health checks never set or clear any."""
    browser = WebClient(app.test_client())
    browser.login(world, "food")
    for path in ("/fhir/metadata", "/fhir/Task", "/readyz", "/healthz", "/hsds/services"):
        response = browser.client.get(
            path,
            headers={"User-Agent": "another browser/1.0"},
            environ_base={"REMOTE_ADDR": "203.0.113.99"},
        )
        assert "Set-Cookie" not in response.headers, (path, response.headers.get("Set-Cookie"))
    response = browser.client.post(
        "/oauth/token", data={}, headers={"User-Agent": "another browser/1.0"}
    )
    assert response.status_code == 400 and "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept": "application/fhir+xml"}, ""),
        ({"Accept": "text/html"}, ""),
        ({"Accept": "application/fhir+json;q=0, application/fhir+xml"}, ""),
        ({}, "?_format=xml"),
    ],
)
def test_a_format_we_do_not_speak_is_a_406_outcome(app: Flask, headers, query) -> None:
    response = app.test_client().get(f"/fhir/metadata{query}", headers=headers)
    issue = outcome_of(response, 406, "not-supported")
    assert FHIR_JSON in issue["diagnostics"] or "use json" in issue["diagnostics"]


def test_json_a_browser_or_a_client_accepts_is_served(app: Flask) -> None:
    for accept in (
        FHIR_JSON,
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json;charset=utf-8",
        "application/json+fhir",
        "application/json",
        "*/*",
        "text/html,*/*;q=0.8",
        "application/fhir+xml, application/fhir+json;q=0.5",
    ):
        response = app.test_client().get("/fhir/metadata", headers={"Accept": accept})
        assert response.status_code == 200 and response.mimetype == FHIR_JSON, accept


def test_a_body_too_large_and_one_of_another_type_are_413_and_415_outcomes(
    app: Flask, world: World
) -> None:
    bearer = token(app, world)
    huge = send_json(app, "/fhir", b"[" + b" " * (2 * 1024 * 1024) + b"]", bearer)
    assert "1024 KiB" in outcome_of(huge, 413, "too-long")["diagnostics"]
    xml = app.test_client().post(
        "/fhir",
        data="<Bundle/>",
        headers={"Authorization": f"Bearer {bearer}"},
        content_type="application/fhir+xml",
    )
    assert "application/fhir+json" in outcome_of(xml, 415, "not-supported")["diagnostics"]


# --- failures of ours --------------------------------------------------------------------------


def test_a_failure_of_ours_is_a_500_outcome_logged_without_what_was_sent(
    database_url: str, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception nobody foresaw, carrying a family's name and number in its message: the
    client gets a 500 `exception` OperationOutcome with an incident number; the log has the
    incident, the exception's type and where it was raised, and neither the name nor the
    number."""
    probe = create_app(
        {
            "env": "test",
            "database_url": database_url,
            "secret_key": "k",
            "exchange_key_file": str(tmp_path / "key.pem"),
            "log_level": "WARNING",
        }
    )

    def fails() -> None:
        raise RuntimeError("Maya Lopez, +15105550142")

    probe.add_url_rule("/fhir/$probe", "probe", fails)
    with caplog.at_level(logging.ERROR):
        response = probe.test_client().get("/fhir/$probe")
    issue = outcome_of(response, 500, "exception")
    incident = issue["diagnostics"].split("incident ", 1)[1].split(")", 1)[0]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert incident in logged and "RuntimeError" in logged and "fails" in logged
    assert "Maya" not in logged and "555" not in logged
    assert "Maya" not in response.get_data(as_text=True)


# --- the token endpoint ------------------------------------------------------------------------


def oauth_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
    body = response.get_json()
    assert body["error"] and body["error_description"]
    return body


def test_the_token_endpoint_answers_its_errors_as_oauth_json(app: Flask) -> None:
    client = app.test_client()
    wrong_method = client.get("/oauth/token")
    assert oauth_error(wrong_method, 405)["error"] == "invalid_request"
    assert (
        wrong_method.headers["Allow"].startswith("POST") or "POST" in wrong_method.headers["Allow"]
    )
    assert oauth_error(client.get("/oauth/nothing"), 404)["error"] == "invalid_request"
    too_large = client.post(
        "/oauth/token",
        data=b"grant_type=" + b"x" * (2 * 1024 * 1024),
        content_type="application/x-www-form-urlencoded",
    )
    assert oauth_error(too_large, 413)["error"] == "invalid_request"


# --- what outside testing sent -----------------------------------------------------------------


@pytest.mark.parametrize("resource_type", ["Nope", {"a": 1}, 5, None])
def test_an_entry_of_no_resource_type_we_know_is_a_400_naming_it(
    app: Flask, world: World, resource_type
) -> None:
    bundle = referral_bundle(world)
    bundle["entry"][2]["resource"]["resourceType"] = resource_type
    response = send_json(app, "/fhir", json.dumps(bundle), token(app, world))
    issue = outcome_of(response, 400, "structure")
    assert issue["expression"] == ["Bundle.entry[2].resource.resourceType"]
    assert "is not a FHIR resource type" in issue["diagnostics"]


def deep_body(opening: str = "[", depth: int = 100_000) -> str:
    """About 200 KB of brackets, under the size limit."""
    closing = {"[": "]", "{": "}"}[opening[0]]
    return opening * depth + closing * depth


def write_routes(app: Flask, world: World) -> list[tuple[str, str, str]]:
    """Each write route that reads a body, with a URL and a token allowed to write there."""
    from tests.fhir.test_recipient_client import bearer as recipient_token

    referral = send(world, make_patient(world))
    food = recipient_token(app, world, "food")
    return [
        ("POST", "/fhir", token(app, world)),
        ("PUT", f"/fhir/Task/{referral.task.id}", food),
        ("POST", "/fhir/Procedure", food),
        ("POST", "/fhir/Subscription", subscriber_token(app, world, "food")),
    ]


@pytest.mark.parametrize(
    "body",
    [
        deep_body(),
        '{"resourceType":"Bundle","entry":' + deep_body() + "}",
        '{"a":' * 40_000 + "1" + "}" * 40_000,
    ],
    ids=["arrays", "inside a resource", "objects"],
)
def test_deep_nesting_is_refused_before_it_is_read_on_every_write_route(
    app: Flask, world: World, body: str
) -> None:
    for method, url, bearer in write_routes(app, world):
        issue = outcome_of(send_json(app, url, body, bearer, method), 400, "structure")
        assert "more than 64 levels deep" in issue["diagnostics"], (method, url)


def test_nesting_a_resource_really_has_is_read(app: Flask, world: World) -> None:
    """Nesting under the limit is not refused for its depth (a complex extension 25 deep)."""
    bundle = referral_bundle(world)
    extension: dict = {"url": "http://example.org/leaf", "valueString": "deep"}
    for _ in range(25):
        extension = {"url": "http://example.org/branch", "extension": [extension]}
    bundle["entry"][0]["resource"]["extension"].append(extension)
    response = send_json(app, "/fhir", json.dumps(bundle), token(app, world))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]


@pytest.mark.parametrize(
    ("literal", "words"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("1e999", "too large"),
        ('"\\ud800"', "surrogate"),
        ('"a\\u0000b"', "NUL"),
    ],
)
def test_what_json_allows_but_fhir_cannot_hold_is_refused(
    app: Flask, world: World, literal: str, words: str
) -> None:
    text = json.dumps(referral_bundle(world)).replace('"Reyes"', literal, 1)
    body = text.encode("utf-8", "surrogatepass")
    response = send_json(app, "/fhir", body, token(app, world))
    assert words in outcome_of(response, 400, "structure")["diagnostics"]


@pytest.mark.parametrize("endpoint", [True, 5, {"url": "https://x.example"}, ["https://x"]])
def test_an_endpoint_that_is_not_text_is_a_400_naming_the_channel(
    app: Flask, world: World, endpoint
) -> None:
    body = subscription("https://partner.example/notify")
    body["channel"]["endpoint"] = endpoint
    bearer = subscriber_token(app, world, "food")
    response = send_json(app, "/fhir/Subscription", json.dumps(body), bearer)
    issue = outcome_of(response, 400, "structure")
    assert issue["expression"][0].startswith("Subscription.channel"), issue


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/fhir/Patient/a%C2%A0b", "Patient/a\\u00a0b does not exist"),
        ("/fhir/Pati%E2%80%A8ent/1", "We do not serve Pati\\u2028ent resources"),
        ("/fhir/Patient/a/b%C2%A0/c", "There is nothing at /fhir/Patient/a/b\\u00a0/c"),
        ("/fhir/metadata?_format=x%C2%A0", "_format=x\\u00a0 is not supported"),
    ],
)
def test_what_a_client_sent_is_quoted_back_printable(app: Flask, world: World, path, quoted):
    """FHIR strings hold no control or format characters: an OperationOutcome quoting a path or
    parameter that has one would itself be invalid FHIR."""
    bearer = token(app, world, "food", "system/*.read")
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {bearer}"})
    body = response.get_json()
    assert response.status_code in (404, 406)
    assert quoted in body["issue"][0]["diagnostics"]
    assert_valid_r4(body)
    if "_format" in path:
        assert body["issue"][0]["expression"] == ["_format"]
