"""Alembic is the only way the schema changes: migrations match the models and run both ways."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from referrals.db import make_engine
from referrals.migrate import downgrade, upgrade
from referrals.models import Base


@pytest.fixture
def scratch_url(tmp_path) -> Iterator[str]:
    """An empty database of the kind under test, apart from the suite's own."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    admin_url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


pytestmark = pytest.mark.pure  # builds its own database


def test_migrations_create_exactly_the_models_schema(scratch_url):
    upgrade(scratch_url)
    engine = make_engine(scratch_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrations_run_down_to_nothing_and_up_again(scratch_url):
    upgrade(scratch_url)
    downgrade(scratch_url, "base")
    engine = make_engine(scratch_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(scratch_url)
    engine = make_engine(scratch_url)
    assert {"referrals", "tasks", "referral_events", "jobs", "audit_events"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
