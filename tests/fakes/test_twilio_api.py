"""The fake Twilio Messages API answers the real twilio client the way Twilio does."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.fakes.twilio_api import FakeTwilio, num_segments

pytestmark = pytest.mark.pure

TO = "+15005550006"
FROM = "+15005550001"
SERVICE = "MG" + "0" * 32


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTwilio]:
    with FakeTwilio(slow_seconds=1) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeTwilio) -> Iterator[FakeTwilio]:
    server.reset()
    yield server
    assert server.errors == []
    server.reset()


def make_client(fake: FakeTwilio, timeout: float = 2.0, token: str | None = None) -> Client:
    client = Client(
        fake.account_sid,
        token or fake.auth_token,
        http_client=TwilioHttpClient(timeout=timeout),
    )
    client.api.base_url = fake.url
    return client


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return make_client(fake)


def test_defaults_look_like_twilio_credentials(fake: FakeTwilio) -> None:
    assert re.fullmatch(r"AC[0-9a-f]{32}", fake.account_sid)
    assert fake.auth_token
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)


def test_create_with_from(fake: FakeTwilio, client: Client) -> None:
    message = client.messages.create(to=TO, from_=FROM, body="Your referral was received.")
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.to == TO
    assert message.from_ == FROM
    assert message.messaging_service_sid is None
    assert message.num_segments == "1"
    assert message.num_media == "0"
    assert message.direction == "outbound-api"
    assert message.api_version == "2010-04-01"
    assert message.account_sid == fake.account_sid
    assert message.price is None and message.error_code is None and message.date_sent is None
    assert abs(message.date_created - datetime.now(UTC)) < timedelta(seconds=5)
    assert message.uri == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{message.sid}.json"

    [recorded] = fake.messages
    assert recorded["sid"] == message.sid
    assert recorded["form"] == {"To": TO, "From": FROM, "Body": "Your referral was received."}
    assert isinstance(recorded["created_at"], datetime)
    [request] = fake.requests
    assert request["method"] == "POST"
    assert request["path"] == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert request["authorized"] is True
    assert request["status"] == 201


def test_create_with_messaging_service(fake: FakeTwilio, client: Client) -> None:
    message = client.messages.create(
        to=TO,
        messaging_service_sid=SERVICE,
        body="Hello",
        status_callback="https://example.test/twilio/status",
        validity_period=600,
    )
    assert message.status == "accepted"
    assert message.messaging_service_sid == SERVICE
    assert message.from_ is None
    assert message.num_segments == "0"  # Twilio has not picked a sender yet
    form = fake.messages[0]["form"]
    assert form["StatusCallback"] == "https://example.test/twilio/status"
    assert form["ValidityPeriod"] == "600"


def test_segments_count_gsm_and_unicode() -> None:
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("€" * 80) == 1  # extension characters take two septets
    assert num_segments("é" * 160) == 1  # in the GSM basic set
    assert num_segments("ü✓" * 35) == 1
    assert num_segments("✓" * 71) == 2


def test_long_body_has_several_segments(client: Client) -> None:
    assert client.messages.create(to=TO, from_=FROM, body="x" * 400).num_segments == "3"


def test_wrong_auth_token_is_401(fake: FakeTwilio) -> None:
    client = make_client(fake, token="not-the-token")
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, from_=FROM, body="hi")
    assert caught.value.status == 401
    assert caught.value.code == 20003
    assert fake.messages == []
    assert fake.requests[0]["authorized"] is False
    # A list page that is not 200 surfaces as the base TwilioException, not TwilioRestException.
    with pytest.raises(TwilioException) as listing:
        client.messages.list(to=TO)
    assert not isinstance(listing.value, TwilioRestException)


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("21610", 400, 21610),
        ("21211", 400, 21211),
        ("21614", 400, 21614),
        ("500", 500, 20500),
        ("429", 429, 20429),
    ],
)
def test_scripted_errors(
    fake: FakeTwilio, client: Client, outcome: str, status: int, code: int
) -> None:
    fake.script(outcome)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, from_=FROM, body="hi")
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.method == "POST"
    assert fake.messages == []
    # The script is used up: the next send goes through.
    assert client.messages.create(to=TO, from_=FROM, body="hi").status == "queued"
    assert len(fake.messages) == 1


def test_error_bodies_have_twilio_shape(fake: FakeTwilio) -> None:
    fake.script("21610", "429")
    url = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    auth = (fake.account_sid, fake.auth_token)
    data = {"To": TO, "From": FROM, "Body": "hi"}
    unsubscribed = requests.post(url, data=data, auth=auth, timeout=2)
    assert unsubscribed.json() == {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }
    limited = requests.post(url, data=data, auth=auth, timeout=2)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["code"] == 20429


def test_scripted_outcomes_are_used_in_order(fake: FakeTwilio, client: Client) -> None:
    fake.script("500", "ok", "21610")
    assert fake.pending == ["500", "ok", "21610"]
    with pytest.raises(TwilioRestException):
        client.messages.create(to=TO, from_=FROM, body="1")
    client.messages.create(to=TO, from_=FROM, body="2")
    with pytest.raises(TwilioRestException):
        client.messages.create(to=TO, from_=FROM, body="3")
    assert fake.pending == []
    assert [m["body"] for m in fake.messages] == ["2"]


def test_unknown_outcome_is_refused(fake: FakeTwilio) -> None:
    with pytest.raises(ValueError):
        fake.script("404")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "5005550006", "from_": FROM, "body": "hi"}, 21211),
        ({"to": "+1555", "from_": FROM, "body": "hi"}, 21211),
        ({"to": TO, "body": "hi"}, 21603),
        ({"to": TO, "from_": FROM}, 21602),
        ({"to": TO, "from_": FROM, "body": "hi", "validity_period": 0}, 21624),
        ({"to": TO, "from_": FROM, "body": "hi", "validity_period": 36001}, 21624),
    ],
)
def test_invalid_requests_are_400(
    fake: FakeTwilio, client: Client, kwargs: dict[str, Any], code: int
) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(**kwargs)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.messages == []


def test_slow_answer_times_out_but_the_message_exists(fake: FakeTwilio) -> None:
    impatient = make_client(fake, timeout=0.3)
    since = datetime.now(UTC) - timedelta(seconds=1)
    fake.script("slow")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient.messages.create(to=TO, from_=FROM, body="Did it go?")
    assert time.monotonic() - started < 0.9
    [recorded] = fake.messages
    listed = make_client(fake).messages.list(to=TO, date_sent_after=since, limit=20)
    assert [m.sid for m in listed] == [recorded["sid"]]


def test_list_filters_by_to_and_from_newest_first(fake: FakeTwilio, client: Client) -> None:
    first = client.messages.create(to=TO, from_=FROM, body="first")
    client.messages.create(to="+15005550009", from_=FROM, body="other")
    second = client.messages.create(to=TO, messaging_service_sid=SERVICE, body="second")
    assert [m.sid for m in client.messages.list(to=TO)] == [second.sid, first.sid]
    assert [m.body for m in client.messages.list(to=TO, from_=FROM)] == ["first"]
    assert len(client.messages.list()) == 3
    assert client.messages.list(to="+15005550000") == []
    request = fake.requests[-1]
    assert request["method"] == "GET" and request["query"]["To"] == "+15005550000"


def test_list_filters_by_date_sent(client: Client) -> None:
    message = client.messages.create(to=TO, from_=FROM, body="today")
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    earlier = now - timedelta(hours=1)
    assert [m.sid for m in client.messages.list(date_sent_after=earlier)] == [message.sid]
    assert client.messages.list(date_sent_after=later) == []
    assert [m.sid for m in client.messages.list(date_sent_before=later)] == [message.sid]
    assert client.messages.list(date_sent_before=earlier) == []
    assert [m.sid for m in client.messages.list(date_sent=now.strftime("%Y-%m-%d"))] == [
        message.sid
    ]
    assert client.messages.list(date_sent=(now - timedelta(days=2)).strftime("%Y-%m-%d")) == []


def test_list_pages(client: Client) -> None:
    sids = [client.messages.create(to=TO, from_=FROM, body=str(n)).sid for n in range(5)]
    assert {m.sid for m in client.messages.list(page_size=2)} == set(sids)
    assert len(client.messages.list(limit=3)) == 3
    page = client.messages.page(page_size=2)
    assert page.next_page_url is not None
    assert len(list(page)) == 2


def test_fetch_by_sid(fake: FakeTwilio, client: Client) -> None:
    created = client.messages.create(to=TO, from_=FROM, body="fetch me")
    fetched = client.messages(created.sid).fetch()
    assert (fetched.sid, fetched.body, fetched.status) == (created.sid, "fetch me", "queued")
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "f" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_on_create_runs_after_recording_and_before_the_answer(
    fake: FakeTwilio, client: Client
) -> None:
    seen: list[tuple[str, int]] = []
    fake.on_create = lambda message: seen.append((message["sid"], len(fake.messages)))
    message = client.messages.create(to=TO, from_=FROM, body="hook")
    assert seen == [(message.sid, 1)]


def test_on_create_can_hold_the_answer(fake: FakeTwilio, client: Client) -> None:
    release = threading.Event()
    fake.on_create = lambda message: release.wait(2)
    answers: list[str] = []
    sender = threading.Thread(
        target=lambda: answers.append(client.messages.create(to=TO, from_=FROM, body="x").sid)
    )
    sender.start()
    deadline = time.monotonic() + 2
    while not fake.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fake.messages) == 1 and answers == []
    release.set()
    sender.join(2)
    assert answers == [fake.messages[0]["sid"]]


def test_reset_forgets_everything(fake: FakeTwilio, client: Client) -> None:
    client.messages.create(to=TO, from_=FROM, body="x")
    fake.script("500")
    fake.on_create = lambda message: None
    fake.reset()
    assert fake.messages == [] and fake.requests == [] and fake.pending == []
    assert fake.on_create is None


def test_client_helper_and_restart() -> None:
    fake = FakeTwilio()
    fake.start()
    try:
        assert fake.client().messages.create(to=TO, from_=FROM, body="x").status == "queued"
    finally:
        fake.stop()
    fake.stop()  # idempotent
