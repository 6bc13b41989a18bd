"""Upgrading a database whose audit entries were hashed the old way (plain SHA-256, before the
keyed chain): they keep verifying, the upgrade seals them under AUDIT_KEY, and the switch is an
entry of the trail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from referrals import audit
from referrals.audit import AuditEvent, Problem, check_trail
from referrals.db import make_engine
from referrals.migrate import upgrade
from tests.test_audit import PERSON, old_sha256
from tests.test_migrations import scratch_url  # noqa: F401  (a fixture: an empty database)

TABLE = AuditEvent.__table__
OLD_COLUMNS = [c for c in TABLE.columns if c.name != "scheme"]


def write_the_old_way(engine: Engine, count: int) -> None:
    """Entries as the release before the keyed chain wrote them: ids from the database,
    no scheme, SHA-256 over some columns."""
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        prev = ""
        for n in range(count):
            values: dict[str, Any] = {
                "at": start + timedelta(minutes=n),
                "actor_user_id": PERSON.user_id,
                "actor_name": PERSON.user_name,
                "org_id": PERSON.org_id,
                "org_name": PERSON.org_name,
                "action": "referral.view",
                "target_type": "Referral",
                "target_id": str(uuid.uuid4()),
                "patient_id": uuid.uuid4(),
                "ip": PERSON.ip,
                "outcome": "success",
                "detail": {"rows": n},
                "prev_hash": prev,
            }
            values["hash"] = prev = old_sha256(values)
            conn.execute(TABLE.insert().values(**values))
            if n == 1 and conn.dialect.name == "postgresql":
                # A transaction that rolled back took an id: the old trail can have gaps.
                conn.execute(text("SELECT nextval('audit_events_id_seq')"))


@dataclass(frozen=True)
class Database:
    url: str
    engine: Engine

    def upgrade(self) -> None:
        upgrade(self.url)


BEFORE_KEYED = "0016"  # the migration before the keyed chain (0017)


@pytest.fixture
def old_database(scratch_url: str) -> Iterator[Database]:  # noqa: F811
    """A database of the release before the keyed chain."""
    upgrade(scratch_url, BEFORE_KEYED)
    engine = make_engine(scratch_url)
    yield Database(scratch_url, engine)
    engine.dispose()


def key() -> str:
    return current_app.config["SETTINGS"].audit_key


def all_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(TABLE).order_by(TABLE.c.id)).mappings()]


def check(engine: Engine) -> audit.Report:
    with Session(engine) as session:
        return check_trail(session, key())


def test_an_upgraded_trail_verifies_and_shows_where_the_keyed_chain_starts(old_database):
    write_the_old_way(old_database.engine, 5)
    old_database.upgrade()

    trail = all_rows(old_database.engine)
    *old, seal = trail
    assert [e["scheme"] for e in old] == [audit.SHA256] * 5
    assert (seal["scheme"], seal["action"], seal["actor_name"], seal["detail"]) == (
        audit.HMAC_SHA256,
        "audit.keyed",
        "database upgrade",
        {"sealed_entries": 5, "from_scheme": 1, "to_scheme": 2},
    )
    assert seal["id"] == old[-1]["id"] + 1 and seal["prev_hash"] == old[-1]["hash"]
    report = check(old_database.engine)
    assert report.problem is None
    assert (report.entries, report.sha256_entries, report.seal_id) == (6, 5, seal["id"])

    with Session(old_database.engine) as session:
        audit.record(session, PERSON, "referral.view", "Referral", uuid.uuid4())
        audit.record(session, PERSON, "referral.view", "Referral", uuid.uuid4())
        session.commit()
    *_, first, second = all_rows(old_database.engine)
    assert (first["id"], first["scheme"], first["prev_hash"]) == (
        seal["id"] + 1,
        audit.HMAC_SHA256,
        seal["hash"],
    )
    assert second["id"] == first["id"] + 1
    assert check(old_database.engine).problem is None


def test_an_old_entry_edited_and_hashed_again_the_old_way_shows_at_the_seal(old_database):
    write_the_old_way(old_database.engine, 5)
    old_database.upgrade()
    old = all_rows(old_database.engine)[:5]
    old[1]["actor_name"] = "Someone else"
    prev = old[0]["hash"]
    with old_database.engine.begin() as conn:
        for row in old[1:]:
            row["prev_hash"] = prev
            row["hash"] = prev = old_sha256(row)
            conn.execute(
                TABLE.update()
                .where(TABLE.c.id == row["id"])
                .values(actor_name=row["actor_name"], prev_hash=row["prev_hash"], hash=row["hash"])
            )
    seal_id = old[-1]["id"] + 1
    assert check(old_database.engine).problem == Problem(
        seal_id,
        f"does not follow entry {old[-1]['id']}: an entry between them was removed, "
        "or an entry was changed and re-hashed",
    )


def test_an_old_entry_removed_from_the_end_shows_at_the_seal(old_database):
    write_the_old_way(old_database.engine, 5)
    old_database.upgrade()
    old = all_rows(old_database.engine)[:5]
    with old_database.engine.begin() as conn:
        conn.execute(TABLE.delete().where(TABLE.c.id == old[-1]["id"]))
    assert check(old_database.engine).problem.entry_id == old[-1]["id"] + 1


def test_the_old_entries_organisation_name_was_never_hashed(old_database):
    """What the old hash left out stays out: said in the README and by audit-verify."""
    write_the_old_way(old_database.engine, 3)
    old_database.upgrade()
    with old_database.engine.begin() as conn:
        conn.execute(TABLE.update().where(TABLE.c.id == 2).values(org_name="Another organisation"))
    assert check(old_database.engine).problem is None


def test_an_empty_trail_is_upgraded_without_a_seal(old_database):
    old_database.upgrade()
    assert all_rows(old_database.engine) == []


@pytest.mark.pure
def test_old_entries_are_not_left_unsealed_when_the_upgrade_has_no_key(old_database, monkeypatch):
    monkeypatch.delenv("AUDIT_KEY", raising=False)
    write_the_old_way(old_database.engine, 2)
    with pytest.raises(RuntimeError, match="must be sealed under AUDIT_KEY"):
        old_database.upgrade()
    # Nothing half-done: still the release before, its entries as they were.
    assert "scheme" not in {
        c["name"] for c in inspect(old_database.engine).get_columns("audit_events")
    }
    with old_database.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE_KEYED
        )
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 2
