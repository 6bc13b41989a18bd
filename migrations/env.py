"""Alembic environment: the URL comes from the caller (referrals.migrate) or DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from referrals.config import Settings
from referrals.db import make_engine
from referrals.models import Base

config = context.config
url = (
    config.attributes.get("database_url")
    or os.environ.get("DATABASE_URL")
    or (Settings().database_url)
)


def run_migrations_online() -> None:
    engine = make_engine(url, migrating=True)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if connection.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
    engine.dispose()


run_migrations_online()
