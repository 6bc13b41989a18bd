"""The flask commands operators use."""

from __future__ import annotations

from sqlalchemy import func, select, update

from referrals.audit import AuditEvent
from referrals.auth.models import Organization, User
from referrals.db import db
from referrals.seed import DEMO_PASSWORD, DEMO_USERS
from tests.helpers import make_patient, send


def test_seed_demo_fills_an_empty_database_once_and_prints_the_sign_ins(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo", "--if-empty"])
    assert first.exit_code == 0, first.output
    assert "Demo data added." in first.output and DEMO_PASSWORD in first.output
    for email, *_ in DEMO_USERS:
        assert email in first.output
    orgs = db.session().scalar(select(func.count(Organization.id)))
    second = runner.invoke(args=["seed-demo", "--if-empty"])
    assert "Demo data already present." in second.output
    db.session.remove()
    assert db.session().scalar(select(func.count(Organization.id))) == orgs


def test_seeded_demo_can_be_signed_into(app, client):
    app.test_cli_runner().invoke(args=["seed-demo"])
    client.get("/login")
    response = client.post(
        "/login", {"email": "intake@foodbank.example", "password": DEMO_PASSWORD}
    )
    assert response.headers["Location"] == "/inbox"
    assert "Maya Lopez" in client.get("/inbox").get_data(as_text=True)


def test_create_user_adds_a_member_and_explains_mistakes(app, world):
    runner = app.test_cli_runner()
    ok = runner.invoke(
        args=[
            "create-user",
            "--email",
            "new@test.example",
            "--name",
            "New Person",
            "--org",
            "Community Food Bank",
            "--role",
            "cbo_staff",
            "--password",
            "a long enough password",
        ]
    )
    assert ok.exit_code == 0 and "Created new@test.example." in ok.output
    user = db.session().scalar(select(User).where(User.email == "new@test.example"))
    assert [m.role for m in user.memberships] == ["cbo_staff"]

    bad = runner.invoke(
        args=[
            "create-user",
            "--email",
            "x@test.example",
            "--name",
            "X",
            "--org",
            "Community Food Bank",
            "--role",
            "clinician",
            "--password",
            "short",
        ]
    )
    assert bad.exit_code == 2
    assert "At least 12 characters." in bad.output


def test_worker_once_drains_due_jobs(app, world):
    send(world, make_patient(world))
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "done: 1" in result.output
    again = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert "No jobs due." in again.output


def test_audit_verify_reports_tampering(app, world):
    send(world, make_patient(world))
    runner = app.test_cli_runner()
    assert "intact" in runner.invoke(args=["audit-verify"]).output
    db.session().execute(update(AuditEvent).where(AuditEvent.id == 2).values(action="forged"))
    db.session().commit()
    result = runner.invoke(args=["audit-verify"])
    assert result.exit_code == 1 and "broken at entry 2" in result.output
