"""Each test gets the app on a database migrated by Alembic (SQLite in a temporary folder, or
PostgreSQL when TEST_DATABASE_URL is set) and emptied after the test."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from referrals import create_app
from referrals.db import db
from referrals.migrate import upgrade
from referrals.models import Base
from tests.helpers import WebClient, World, build_world


def _fresh_postgres_schema(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        _fresh_postgres_schema(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app(
        {
            "exchange_key_file": str(tmp_path_factory.mktemp("keys") / "exchange_key.pem"),
            "env": "test",
            "database_url": database_url,
            "secret_key": "test-secret-key",
            "public_base_url": "http://127.0.0.1:5000",  # whatever PORT the shell has
            "argon2_memory_kib": 1024,
            "argon2_time_cost": 1,
            "session_cookie_secure": False,
            "log_level": "WARNING",
            # No quiet hours and no pacing unless a test asks for them: tests run at any hour.
            "sms_quiet_start": "00:00",
            "sms_quiet_end": "00:00",
            "sms_rate_per_second": 1000.0,
        }
    )


def _empty_tables() -> None:
    session = db.session()
    if db.is_postgres:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    session.commit()
    db.session.remove()


@pytest.fixture(autouse=True)
def _app_context(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("pure"):
        yield  # rules without a database or an app
        return
    app: Flask = request.getfixturevalue("app")
    with app.app_context():
        yield
        db.session.remove()
        _empty_tables()


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def client(app: Flask) -> WebClient:
    return WebClient(app.test_client())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Benchmarks run only with `make bench` (-m bench).
    if re.search(r"\bbench\b", config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark: run with make bench")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)
