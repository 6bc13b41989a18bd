"""A fake of Twilio's Programmable Messaging REST API (2010-04-01) for tests.

It is a real HTTP server on 127.0.0.1 (an OS-chosen port) served from a background thread, so
the real ``twilio`` client can talk to it::

    with FakeTwilio() as fake:
        client = fake.client(timeout=2)  # or build one yourself:
        # client = Client(fake.account_sid, fake.auth_token,
        #                 http_client=TwilioHttpClient(timeout=2))
        # client.api.base_url = fake.url
        client.messages.create(to="+15005550006", from_="+15005550001", body="Hi")
        assert fake.messages[0]["to"] == "+15005550006"

Routes (HTTP Basic auth ``account_sid:auth_token`` checked on every request, 401/20003 if wrong):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``: create (201), or an error;
- ``GET  /2010-04-01/Accounts/{AccountSid}/Messages.json``: list, newest first, filtered by
  ``To``, ``From``, ``DateSent``, ``DateSent<`` and ``DateSent>`` (date_sent is taken to be the
  creation time), paged by ``PageSize`` and ``Page``;
- ``GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``: fetch one (404/20404).

Errors use Twilio's JSON body (``code``, ``message``, ``more_info``, ``status``), which the
client turns into ``twilio.base.exceptions.TwilioRestException`` with ``.status`` and ``.code``.

Scripted outcomes (:meth:`FakeTwilio.script`) are consumed in order by the next authorised
create requests: ``"ok"``, ``"429"``, ``"500"`` (refused before the message is taken),
``"500-after"`` (the message is taken, then the answer is a 500), ``"21610"``, ``"21211"``,
``"21614"``, ``"slow"`` (the message is recorded first, then the answer waits
``slow_seconds``) and ``"late"`` (the answer waits ``slow_seconds`` and only then is the message
recorded: a request still being worked on when the client gave up). :meth:`FakeTwilio.chaos`
instead fails a share of all requests at random in those transient ways, look-ups included.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

API_VERSION = "2010-04-01"
OUTCOMES = ("ok", "slow", "late", "429", "500", "500-after", "21211", "21610", "21614")
TRANSIENT = ("slow", "late", "429", "500", "500-after")  # what chaos picks from

_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_LIST_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_ONE_PATH = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)

# GSM 03.38 basic set (1 septet each) and extension table (2 septets each).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


class TwilioError(Exception):
    """An error answer: HTTP status, Twilio error code and message."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def _scripted_error(outcome: str, to: str) -> TwilioError:
    if outcome == "429":
        return TwilioError(429, 20429, "Too Many Requests", {"Retry-After": "1"})
    if outcome == "500":
        return TwilioError(500, 20500, "An internal server error has occurred")
    if outcome == "21610":
        return TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
    if outcome == "21211":
        return TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if outcome == "21614":
        return TwilioError(400, 21614, "'To' number is not a valid mobile number")
    raise ValueError(outcome)


def num_segments(body: str) -> int:
    """SMS segments for a body: GSM-7 160/153 septets, otherwise UCS-2 70/67 code units."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        length = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        single, multi = 160, 153
    else:
        length = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if length <= single:
        return 1
    return -(-length // multi)


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _parse_form(raw: str) -> dict[str, Any]:
    parsed = parse_qs(raw, keep_blank_values=True)
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


def _parse_when(value: str) -> datetime | Any:
    """A filter value: a date (``YYYY-MM-DD``) or a UTC datetime (``YYYY-MM-DDTHH:MM:SSZ``)."""
    value = value.strip()
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"):
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return moment.replace(tzinfo=moment.tzinfo or UTC)
    raise TwilioError(400, 20001, f"Invalid date: {value}")


class FakeTwilio:
    """Twilio's Messages API on ``127.0.0.1:port``; see the module docstring."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        port: int = 0,
        slow_seconds: float = 3.0,
    ) -> None:
        self.account_sid = account_sid or _new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.slow_seconds = slow_seconds
        self.on_create: Callable[[dict[str, Any]], None] | None = None
        self._port = port
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._errors: list[BaseException] = []
        self._script: deque[str] = deque()
        self._chaos: tuple[float, random.Random] | None = None
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"FakeTwilio:{server.server_address[1]}"
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes "slow" answers
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeTwilio:
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
        if self._server is None:
            raise RuntimeError("FakeTwilio is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to put in ``client.api.base_url`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 2.0, **kwargs: Any) -> Any:
        """A real ``twilio.rest.Client`` with this fake's credentials, pointed at it."""
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        client = Client(
            self.account_sid,
            self.auth_token,
            http_client=TwilioHttpClient(timeout=timeout),
            **kwargs,
        )
        client.api.base_url = self.url
        return client

    # scripting and inspection -----------------------------------------------------------

    def script(self, *outcomes: str) -> None:
        """Queue outcomes for the next authorised create requests, one each, in order."""
        for outcome in outcomes:
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        with self._lock:
            self._script.extend(outcomes)

    def chaos(self, rate: float, seed: int = 0) -> None:
        """Fail about `rate` of all later requests, each in one of the transient ways (a 500
        before or after the message is taken, a 429, an answer slower than the client waits);
        a look-up fails with a 500 or answers slowly. `rate` 0 stops it."""
        with self._lock:
            self._chaos = (rate, random.Random(seed)) if rate else None

    def _chaos_outcome(self, choices: tuple[str, ...]) -> str:
        with self._lock:
            if self._chaos is None:
                return "ok"
            rate, rng = self._chaos
            return rng.choice(choices) if rng.random() < rate else "ok"

    @property
    def pending(self) -> list[str]:
        """Scripted outcomes not consumed yet."""
        with self._lock:
            return list(self._script)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every created message, oldest first: the resource fields plus ``form`` (the posted
        fields) and ``created_at`` (an aware UTC datetime)."""
        with self._lock:
            return [dict(m) for m in self._messages]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request: ``method``, ``path``, ``query``, ``form``, ``headers``, ``authorized``,
        ``status`` (None while being answered) and ``at``."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions in the server (including from ``on_create``)."""
        with self._lock:
            return list(self._errors)

    def reset(self) -> None:
        """Forget messages, requests, errors, the script and ``on_create``."""
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._errors.clear()
            self._script.clear()
        self.on_create = None

    # request handling (server threads) --------------------------------------------------

    def _record_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def _record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _next_outcome(self) -> str:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self._chaos_outcome(TRANSIENT)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return secrets.compare_digest(
            f"{user}:{password}".encode(), f"{self.account_sid}:{self.auth_token}".encode()
        )

    def _check_account(self, account: str, path: str) -> None:
        if account != self.account_sid:
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _create(self, account: str, path: str, form: dict[str, Any]) -> tuple[int, dict]:
        self._check_account(account, path)
        to = str(form.get("To", ""))
        outcome = self._next_outcome()
        if outcome not in ("ok", "slow", "late", "500-after"):
            raise _scripted_error(outcome, to)
        sender = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = str(form.get("Body", ""))
        media = form.get("MediaUrl") or []
        media = [media] if isinstance(media, str) else list(media)
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            raise TwilioError(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
            )
        if not body and not media and not form.get("ContentSid"):
            raise TwilioError(400, 21602, "Message body is required.")
        if not _E164.match(to):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if "ValidityPeriod" in form:
            try:
                validity = int(str(form["ValidityPeriod"]))
            except ValueError:
                validity = 0
            if not 1 <= validity <= 36000:
                raise TwilioError(400, 21624, "Invalid validity period value")

        now = datetime.now(UTC)
        sid = _new_sid("SM")
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "0" if service else str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": to,
            "uri": f"{base}.json",
        }
        message = {**resource, "form": dict(form), "created_at": now}
        if outcome == "late":
            self._stopping.wait(self.slow_seconds)
        with self._lock:
            self._messages.append(message)
        hook = self.on_create
        if hook is not None:
            try:
                hook(dict(message))
            except Exception as error:
                self._record_error(error)
                raise TwilioError(500, 20500, f"on_create failed: {error!r}") from error
        if outcome == "slow":
            self._stopping.wait(self.slow_seconds)
        if outcome == "500-after":
            raise TwilioError(500, 20500, "An internal server error has occurred")
        return 201, resource

    def _fetch(self, account: str, sid: str, path: str) -> tuple[int, dict]:
        self._check_account(account, path)
        with self._lock:
            for message in self._messages:
                if message["sid"] == sid:
                    return 200, _resource(message)
        raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _list(self, account: str, path: str, query: dict[str, Any]) -> tuple[int, dict]:
        self._check_account(account, path)
        outcome = self._chaos_outcome(("500", "slow"))
        if outcome == "500":
            raise TwilioError(500, 20500, "An internal server error has occurred")
        if outcome == "slow":
            self._stopping.wait(self.slow_seconds)

        def one(key: str) -> str | None:
            value = query.get(key)
            if isinstance(value, list):
                value = value[-1]
            return value if value not in (None, "") else None

        to, sender = one("To"), one("From")
        on = _parse_when(one("DateSent")) if one("DateSent") else None
        before = _parse_when(one("DateSent<")) if one("DateSent<") else None
        after = _parse_when(one("DateSent>")) if one("DateSent>") else None
        try:
            page_size = int(one("PageSize") or 50)
            page = int(one("Page") or 0)
        except ValueError as error:
            raise TwilioError(400, 20001, "Invalid paging parameters") from error
        if not 1 <= page_size <= 1000 or page < 0:
            raise TwilioError(400, 20001, "Invalid paging parameters")

        with self._lock:
            indexed = list(enumerate(self._messages))
        indexed.sort(key=lambda pair: (pair[1]["created_at"], pair[0]), reverse=True)
        found = [
            _resource(m)
            for _, m in indexed
            if (to is None or m["to"] == to)
            and (sender is None or m["from"] == sender)
            and _date_matches(m["created_at"], on, before, after)
        ]
        start = page * page_size
        records = found[start : start + page_size]

        filters = {k: v for k, v in (("To", to), ("From", sender)) if v is not None}
        for key in ("DateSent", "DateSent<", "DateSent>"):
            if one(key):
                filters[key] = one(key)

        def uri(number: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        more = start + page_size < len(found)
        envelope = {
            "messages": records,
            "page": page,
            "page_size": page_size,
            "uri": uri(page),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if more else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "start": start,
            "end": start + max(len(records) - 1, 0),
        }
        return 200, envelope


def _resource(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("form", "created_at")}


def _date_matches(created: datetime, on: Any, before: Any, after: Any) -> bool:
    """Inclusive comparisons, like Twilio's ``DateSent<=`` / ``DateSent>=``: a date compares with
    the UTC day, a datetime with the creation time to the second."""
    moment = created.astimezone(UTC).replace(microsecond=0)

    def compare(bound: Any) -> int:
        if isinstance(bound, datetime):
            left, right = moment, bound.astimezone(UTC)
        else:
            left, right = moment.date(), bound
        return (left > right) - (left < right)

    if on is not None:
        if isinstance(on, datetime):
            if not on.astimezone(UTC) <= moment < on.astimezone(UTC) + timedelta(seconds=1):
                return False
        elif moment.date() != on:
            return False
    if before is not None and compare(before) > 0:
        return False
    return not (after is not None and compare(after) < 0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeTwilio

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return  # the client gave up (timeout, killed process): not the fake's problem
        if error is not None:
            self.fake._record_error(error)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        path = split.path
        query = _parse_form(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        form = _parse_form(raw) if method == "POST" else {}
        authorized = fake._authorized(self.headers.get("Authorization"))
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": query,
            "form": form,
            "headers": dict(self.headers.items()),
            "authorized": authorized,
            "status": None,
            "at": datetime.now(UTC),
        }
        fake._record_request(entry)
        headers: dict[str, str] = {}
        try:
            if not authorized:
                raise TwilioError(
                    401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'}
                )
            status, payload = self._route(fake, method, path, query, form)
        except TwilioError as error:
            status, payload, headers = error.status, error.body(), error.headers
        except Exception as error:
            fake._record_error(error)
            failure = TwilioError(500, 20500, "An internal server error has occurred")
            status, payload = failure.status, failure.body()
        with fake._lock:
            entry["status"] = status
        self._write(status, payload, headers)

    def _route(
        self, fake: FakeTwilio, method: str, path: str, query: dict, form: dict
    ) -> tuple[int, dict]:
        if match := _LIST_PATH.match(path):
            if method == "POST":
                return fake._create(match["account"], path, form)
            if method == "GET":
                return fake._list(match["account"], path, query)
            raise TwilioError(405, 20004, "Method not allowed")
        if match := _ONE_PATH.match(path):
            if method == "GET":
                return fake._fetch(match["account"], match["sid"], path)
            raise TwilioError(405, 20004, "Method not allowed")
        raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _write(self, status: int, payload: dict, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (ConnectionError, TimeoutError):
            pass  # the client has gone away
        self.close_connection = True
