"""A local FHIR server standing in for the exchange, with our client registered there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from referrals.exchange.client import public_jwks
from tests.fakes.fhir_exchange import FakeExchange

CLIENT_ID = "referrals-platform"


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    with FakeExchange() as fake:
        fake.register_client(CLIENT_ID, public_jwks())
        yield fake
