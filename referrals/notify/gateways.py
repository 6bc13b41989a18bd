"""SMS gateways. `console` keeps messages here (the Messages page shows them) and logs them with
the number masked; `twilio` speaks to Twilio's REST API through the official client.

A gateway hands one text to the provider and says how a failure should be taken:
- PermanentSmsError: retrying cannot help (the number opted out, is invalid, is not a mobile);
- RetryableSmsError: try again later (429, 5xx, network). `ambiguous` when the request may have
  reached the provider (a timeout after it left): before sending again, `find` looks for it."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from referrals.config import Settings
from referrals.notify.texts import mask_phone

log = logging.getLogger(__name__)
# The client logs each request with its form (the family's number and the text): never that.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
# urllib3 logs each URL at DEBUG, and a lookup's URL holds the number (To=%2B1...).
logging.getLogger("urllib3.connectionpool").setLevel(logging.WARNING)

# Twilio error codes that no retry mends, with what staff are told (to call instead).
PERMANENT_CODES: dict[int, str] = {
    21610: "the number replied STOP (opted out)",
    21211: "the number is not a valid phone number",
    21614: "the number is not a mobile number",
    21612: "the number cannot receive texts from us",
    21408: "texts to that region are not enabled",
    21606: "our sending number cannot send this text",
    30003: "the phone is unreachable",
    30004: "the number blocks our texts",
    30005: "the number does not exist",
    30006: "the number is a landline or cannot receive texts",
    30007: "the carrier filtered the text",
    30008: "the carrier could not deliver it",
}
OPTED_OUT = 21610


class SmsError(Exception):
    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class PermanentSmsError(SmsError):
    """The provider refused this text for good."""


class RetryableSmsError(SmsError):
    """Not now; perhaps later. `ambiguous`: the provider may have the message already."""

    def __init__(self, message: str, *, code: int | None = None, ambiguous: bool) -> None:
        super().__init__(message, code=code)
        self.ambiguous = ambiguous


def error_text(code: int | str | None) -> str:
    """What staff read about an undelivered text, from the provider's error code."""
    try:
        return PERMANENT_CODES[int(code or 0)]
    except (TypeError, ValueError, KeyError):
        return f"error {code}" if code else "no reason given"


class Gateway(Protocol):
    name: str
    sender: str  # the From number or Messaging Service: what sending is paced by
    # After a hand-over whose answer never came, how long until the provider surely lists the
    # text if it took it (a request it was still working on when we stopped waiting).
    settle_time: timedelta

    def send(self, to: str, body: str, *, status_callback: str | None, validity: int) -> str:
        """Hand the message to the provider; return the provider's message id."""
        ...

    def find(self, to: str, body: str, since: datetime) -> list[str]:
        """The provider's ids of the texts with this body it took from us for this number
        since then, oldest first."""
        ...


class ConsoleGateway:
    name = "console"
    sender = "console"
    settle_time = timedelta(0)

    def send(self, to: str, body: str, *, status_callback: str | None, validity: int) -> str:
        provider_id = f"console-{uuid.uuid4().hex[:16]}"
        log.info("sms %s to %s: %d characters", provider_id, mask_phone(to), len(body))
        return provider_id

    def find(self, to: str, body: str, since: datetime) -> list[str]:
        return []  # nothing leaves this process: an interrupted send never happened


class TwilioGateway:
    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=TwilioHttpClient(timeout=settings.twilio_timeout_seconds),
        )
        if settings.twilio_api_base_url:
            self.client.api.base_url = settings.twilio_api_base_url.rstrip("/")
        self.messaging_service_sid = settings.twilio_messaging_service_sid or None
        self.from_number = None if self.messaging_service_sid else settings.twilio_from_number
        self.sender = self.messaging_service_sid or self.from_number or ""
        # Twilio answers (or gives up on) a request well within three of our timeouts.
        self.settle_time = timedelta(seconds=3 * settings.twilio_timeout_seconds)

    def send(self, to: str, body: str, *, status_callback: str | None, validity: int) -> str:
        try:
            message = self.client.messages.create(
                to=to,
                body=body,
                messaging_service_sid=self.messaging_service_sid,
                from_=self.from_number,
                status_callback=status_callback,
                validity_period=validity,
            )
        except TwilioRestException as err:
            raise _classify(err) from None
        except requests.exceptions.ConnectTimeout as err:
            raise RetryableSmsError(
                f"Twilio unreachable: {type(err).__name__}", ambiguous=False
            ) from None
        except requests.exceptions.RequestException as err:
            # The request may have left: the message may exist at Twilio.
            raise RetryableSmsError(
                f"no answer from Twilio: {type(err).__name__}", ambiguous=True
            ) from None
        return str(message.sid)

    def find(self, to: str, body: str, since: datetime) -> list[str]:
        # Listed newest first without a date filter (a text still queued at Twilio has no
        # date_sent yet, and a DateSent filter would miss it), read page by page until older.
        found: list[tuple[datetime, str]] = []
        try:
            for message in self.client.messages.stream(to=to, page_size=50):
                created = message.date_created or message.date_sent
                if created is not None and created < since:
                    break
                if (
                    message.body == body
                    and (message.direction or "").startswith("outbound")
                    and self._ours(message)
                ):
                    found.append((created or since, str(message.sid)))
        except TwilioRestException as err:
            raise _classify(err, looking=True) from None
        except TwilioException as err:  # a page that did not come (no status or code kept)
            raise RetryableSmsError(
                f"could not ask Twilio for earlier messages: {err}", ambiguous=True
            ) from None
        except requests.exceptions.RequestException as err:
            raise RetryableSmsError(
                f"could not ask Twilio for earlier messages: {type(err).__name__}", ambiguous=True
            ) from None
        return [sid for _created, sid in sorted(found)]

    def _ours(self, message: object) -> bool:
        """Sent by our Messaging Service or from our number (another app may share the account)."""
        if self.messaging_service_sid:
            return getattr(message, "messaging_service_sid", None) == self.messaging_service_sid
        return getattr(message, "from_", None) == self.from_number


def _classify(err: TwilioRestException, *, looking: bool = False) -> SmsError:
    status, code = err.status, err.code
    if status in {401, 403, 404} and code not in PERMANENT_CODES:
        # Our account or configuration, not the family's number: wait until it is mended.
        log.error("Twilio refused our credentials or account (%s %s): check TWILIO_*", status, code)
        return RetryableSmsError(f"Twilio answered {status} ({code})", code=code, ambiguous=False)
    if status == 429 or status >= 500:
        # A 5xx may come after Twilio took the message: look before sending again.
        return RetryableSmsError(f"Twilio answered {status}", code=code, ambiguous=status >= 500)
    if looking:
        return RetryableSmsError(f"Twilio answered {status} to a lookup", ambiguous=True)
    if code in PERMANENT_CODES or 400 <= status < 500:
        return PermanentSmsError(f"Twilio refused it ({code}): {error_text(code)}", code=code)
    return RetryableSmsError(f"Twilio answered {status}", code=code, ambiguous=True)


_TWILIO: dict[tuple, TwilioGateway] = {}


def make_gateway(settings: Settings) -> Gateway:
    """The configured gateway. A Twilio gateway is kept per configuration, so that its HTTP
    connections to Twilio are reused from one text to the next."""
    if settings.sms_gateway == "twilio":
        key = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_messaging_service_sid,
            settings.twilio_from_number,
            settings.twilio_api_base_url,
            settings.twilio_timeout_seconds,
        )
        if key not in _TWILIO:
            _TWILIO[key] = TwilioGateway(settings)
        return _TWILIO[key]
    if settings.sms_gateway == "console":
        return ConsoleGateway()
    raise ValueError(f"SMS_GATEWAY={settings.sms_gateway!r} is not one of console, twilio")
