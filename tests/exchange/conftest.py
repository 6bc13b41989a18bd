"""A local FHIR server standing in for the exchange, with our client registered there."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from referrals.exchange.client import public_jwks
from tests.fakes.fhir_exchange import FakeExchange

CLIENT_ID = "referrals-platform"


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    with FakeExchange() as fake:
        fake.register_client(CLIENT_ID, public_jwks())
        yield fake


@pytest.fixture
def live_url(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on a free port, so the peer can call us back."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = app.config["SETTINGS"]
    monkeypatch.setitem(app.config, "SETTINGS", dataclasses.replace(settings, public_base_url=url))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
