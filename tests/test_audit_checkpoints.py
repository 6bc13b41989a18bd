"""Checkpoints of the audit trail's head, kept outside the database (a log line, a file): the
worker writes one on a schedule, `flask audit-checkpoint` on demand, and `flask audit-verify
--checkpoint` checks the trail against them."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask, current_app
from sqlalchemy import select, update

from referrals import audit, jobs
from referrals.audit import AuditEvent, Problem, read_checkpoints
from referrals.db import db, transaction, utcnow
from referrals.jobs import DEAD, DONE, QUEUED, Job
from tests.helpers import make_patient, send
from tests.test_audit import key, rows, write

TABLE = AuditEvent.__table__
FIELDS = {"audit_checkpoint", "at", "entries", "last_id", "head_hash", "key_id", "signature"}


@pytest.fixture
def checkpoint_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit-checkpoints.jsonl"
    settings = current_app.config["SETTINGS"]
    monkeypatch.setattr(settings, "audit_checkpoint_file", str(path))
    return path


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "referrals.audit.checkpoint"]


def checkpoint_jobs() -> list[Job]:
    db.session.remove()
    kind = Job.kind == audit.CHECKPOINT_JOB
    return list(db.session().scalars(select(Job).where(kind).order_by(Job.run_after)))


def test_a_checkpoint_is_one_signed_line_in_the_log_and_the_file(checkpoint_file, caplog):
    write(4)
    with transaction() as session:
        taken = audit.write_checkpoint(session)

    [line] = checkpoint_file.read_text().splitlines()
    # Logged whatever LOG_LEVEL says (the tests' app logs warnings only).
    assert logged(caplog) == [f"audit checkpoint {line}"]
    data = json.loads(line)
    assert set(data) == FIELDS  # counts, an id and hashes: nothing about anyone
    head = rows()[-1]
    assert (data["entries"], data["last_id"], data["head_hash"]) == (4, 4, head["hash"])
    assert data["key_id"] == audit.keys(key()).key_id
    assert read_checkpoints([line], key()) == ([taken], None)
    assert read_checkpoints(logged(caplog), key()) == ([taken], None)


def test_a_checkpoint_of_an_empty_trail_vouches_for_nothing(checkpoint_file):
    with transaction() as session:
        audit.write_checkpoint(session)
    [taken], problem = read_checkpoints(checkpoint_file.read_text().splitlines(), key())
    assert problem is None and (taken.entries, taken.last_id, taken.head_hash) == (0, 0, "")


def test_an_edited_checkpoint_is_refused(checkpoint_file):
    write(4)
    with transaction() as session:
        audit.write_checkpoint(session)
    data = json.loads(checkpoint_file.read_text())
    data["entries"], data["last_id"] = 3, 3
    found, problem = read_checkpoints(["", json.dumps(data)], key())
    assert found == []
    assert problem == Problem(None, "line 2 does not match its signature: it was edited")


def test_a_checkpoint_signed_with_another_key_is_refused_naming_both_keys():
    write(2)
    other = "another key, 32 characters or more"
    db.session.remove()
    line = audit.take_checkpoint(db.session(), other).line()
    _, problem = read_checkpoints([line], key())
    assert problem is not None and problem.reason.endswith(
        f"was signed with another AUDIT_KEY (key id {audit.keys(other).key_id}; "
        f"ours is {audit.keys(key()).key_id})"
    )


@pytest.mark.parametrize("line", ["not json", "{}", '{"audit_checkpoint": 1, "at": "x"}', "[1]"])
def test_a_line_that_is_not_a_checkpoint_is_refused(line):
    assert read_checkpoints([line], key()) == (
        [],
        Problem(None, "line 1 is not an audit checkpoint"),
    )


# --- on a schedule ------------------------------------------------------------------------


def test_a_starting_worker_queues_a_checkpoint_and_each_one_queues_the_next(checkpoint_file):
    write(2)
    jobs.run_start_hooks()
    jobs.run_start_hooks()  # a second worker: still one checkpoint per time slot
    [first] = checkpoint_jobs()
    minutes = current_app.config["SETTINGS"].audit_checkpoint_minutes
    assert first.status == QUEUED
    assert timedelta(0) < first.run_after - utcnow() <= timedelta(minutes=minutes)
    assert jobs.run_due_jobs() == {}  # not due yet

    with transaction() as session:
        session.execute(update(Job).where(Job.id == first.id).values(run_after=utcnow()))
    assert jobs.run_due_jobs() == {DONE: 1}
    [line] = checkpoint_file.read_text().splitlines()
    assert json.loads(line)["entries"] == 2
    done, following = checkpoint_jobs()
    assert (done.id, done.status, following.status) == (first.id, DONE, QUEUED)
    assert following.run_after - utcnow() > timedelta(minutes=minutes - 1)


def test_a_checkpoint_given_up_still_queues_the_next(checkpoint_file, monkeypatch):
    settings = current_app.config["SETTINGS"]
    monkeypatch.setattr(settings, "audit_checkpoint_file", str(checkpoint_file.parent / "no" / "x"))
    with transaction() as session:
        audit.schedule_checkpoint(session, delay=0)
        session.execute(update(Job).values(attempts=Job.max_attempts - 1))
    assert jobs.run_due_jobs() == {DEAD: 1}
    dead, following = checkpoint_jobs()
    assert "FileNotFoundError" in dead.last_error
    assert following.status == QUEUED and following.run_after > utcnow()


def test_no_checkpoints_are_queued_when_their_interval_is_zero(monkeypatch):
    monkeypatch.setattr(current_app.config["SETTINGS"], "audit_checkpoint_minutes", 0.0)
    jobs.run_start_hooks()
    assert checkpoint_jobs() == []


# --- the commands -------------------------------------------------------------------------


def test_audit_checkpoint_prints_logs_and_appends_one(app: Flask, checkpoint_file, caplog):
    write(3)
    result = app.test_cli_runner().invoke(args=["audit-checkpoint"])
    assert result.exit_code == 0, result.output
    [line] = checkpoint_file.read_text().splitlines()
    assert result.stdout.splitlines() == [line]
    assert f"Appended to {checkpoint_file}." in result.stderr
    assert logged(caplog) == [f"audit checkpoint {line}"]


def test_audit_verify_with_a_checkpoint_names_the_removed_newest_entries(
    app: Flask, world, checkpoint_file
):
    patient = make_patient(world, given_name="Zebulon", phone="+15105550177")
    send(world, patient)
    runner = app.test_cli_runner()
    runner.invoke(args=["audit-checkpoint"])
    last = rows()[-1]["id"]
    with transaction() as session:
        session.execute(TABLE.delete().where(TABLE.c.id >= last - 1))

    unaware = runner.invoke(args=["audit-verify"])
    assert unaware.exit_code == 0
    assert "No checkpoint given: entries removed from the end of the trail would not show" in (
        unaware.output
    )
    result = runner.invoke(args=["audit-verify", "--checkpoint", str(checkpoint_file)])
    assert result.exit_code == 1
    assert f"The audit trail is broken at entry {last}: it is missing: the checkpoint of" in (
        result.output
    )
    assert f"vouched for {last} entries up to it, and the trail ends at entry {last - 2}." in (
        result.output
    )
    for secret in ("Zebulon", "5550177", "Clinician", "Sunrise"):
        assert secret not in result.output


def test_audit_verify_says_what_it_checked(app: Flask, checkpoint_file):
    write(3)
    runner = app.test_cli_runner()
    runner.invoke(args=["audit-checkpoint"])
    write(2)
    runner.invoke(args=["audit-checkpoint"])
    result = runner.invoke(args=["audit-verify", "--checkpoint", str(checkpoint_file)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "The audit trail is intact: 5 entries, the last is entry 5, keyed with AUDIT_KEY id "
        f"{audit.keys(key()).key_id}."
    )
    assert "2 checkpoint(s) hold; the newest vouches for 5 entries up to entry 5" in result.output


def test_audit_verify_refuses_checkpoints_it_cannot_trust(app: Flask, checkpoint_file):
    write(3)
    runner = app.test_cli_runner()
    runner.invoke(args=["audit-checkpoint"])
    data = json.loads(checkpoint_file.read_text())
    checkpoint_file.write_text(json.dumps({**data, "entries": 2}) + "\n")
    result = runner.invoke(args=["audit-verify", "--checkpoint", str(checkpoint_file)])
    assert result.exit_code == 1
    assert result.output == (
        f"The checkpoints in {checkpoint_file} cannot be trusted: line 1 does not match its "
        "signature: it was edited.\n"
    )


def test_audit_verify_names_an_edited_entry_without_its_content(app: Flask, world):
    send(world, make_patient(world))
    with transaction() as session:
        session.execute(TABLE.update().where(TABLE.c.id == 2).values(org_name="Forged Org"))
    result = app.test_cli_runner().invoke(args=["audit-verify"])
    assert result.exit_code == 1
    assert result.output == (
        "The audit trail is broken at entry 2: it does not match its keyed hash: it was "
        "altered, or written without AUDIT_KEY (or AUDIT_KEY is not the key the trail was "
        "written with).\n"
    )


def test_the_checkpoint_logger_writes_whatever_the_log_level(app: Flask):
    assert logging.getLogger().level == logging.WARNING  # the tests' LOG_LEVEL
    assert logging.getLogger("referrals.audit.checkpoint").isEnabledFor(logging.INFO)
