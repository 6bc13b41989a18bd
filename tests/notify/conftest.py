"""Fixtures for family texts: the app sending through Twilio, played by a fake on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.fakes.twilio_api import FakeTwilio

SERVICE_SID = "MG" + "0" * 32
PUBLIC = "https://referrals.example.org"


@pytest.fixture
def twilio(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    """The app configured to send through Twilio, and Twilio played by a local fake."""
    with FakeTwilio(slow_seconds=1.0) as fake:
        settings = app.config["SETTINGS"]
        for name, value in {
            "sms_gateway": "twilio",
            "twilio_account_sid": fake.account_sid,
            "twilio_auth_token": fake.auth_token,
            "twilio_messaging_service_sid": SERVICE_SID,
            "twilio_api_base_url": fake.url,
            "twilio_timeout_seconds": 0.5,
            "public_base_url": PUBLIC,
        }.items():
            monkeypatch.setattr(settings, name, value)
        yield fake
