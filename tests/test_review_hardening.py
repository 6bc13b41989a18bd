"""Sessions, background refreshes, confidential notices, error hygiene and proxies."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from referrals import create_app, jobs
from referrals.audit import AuditEvent, verify_chain
from referrals.auth.models import User
from referrals.config import Settings
from referrals.db import db, transaction, utcnow
from referrals.errors import InvalidInput
from referrals.jobs import DEAD, Job, describe_error, enqueue, run_due_jobs
from referrals.loop.models import Referral
from referrals.notify.models import Message
from referrals.redact import RedactingFormatter, redact
from tests.helpers import PASSWORD, WebClient, make_patient, move, send, years_ago


class TestSessions:
    def test_the_inbox_refreshing_itself_does_not_keep_an_idle_session_alive(self, world, client):
        client.login(world, "food")
        with client.client.session_transaction() as session:
            session["seen"] = time.time() - 29 * 60
        poll = client.get(
            "/inbox", htmx=True, target="inbox-table", headers={"HX-Trigger": "inbox-table"}
        )
        assert poll.status_code == 200
        with client.client.session_transaction() as session:
            session["seen"] = session["seen"] - 2 * 60  # two more idle minutes
        expired = client.get(
            "/inbox", htmx=True, target="inbox-table", headers={"HX-Trigger": "inbox-table"}
        )
        assert expired.status_code == 401 and expired.headers["HX-Redirect"] == "/login"

    def test_a_person_using_the_page_keeps_the_session(self, world, client):
        client.login(world, "food")
        with client.client.session_transaction() as session:
            session["seen"] = time.time() - 29 * 60
        client.get(
            "/inbox?status=requested",
            htmx=True,
            target="inbox-table",
            headers={"HX-Trigger": "status"},
        )
        with client.client.session_transaction() as session:
            assert time.time() - session["seen"] < 60

    def test_background_refreshes_are_not_audited_and_update_the_new_count(self, world, client):
        send(world, make_patient(world))
        client.login(world, "food")
        before = (
            db.session().scalars(select(AuditEvent).where(AuditEvent.action == "inbox.view")).all()
        )
        html = client.get(
            "/inbox", htmx=True, target="inbox-table", headers={"HX-Trigger": "inbox-table"}
        ).get_data(as_text=True)
        db.session.remove()
        after = (
            db.session().scalars(select(AuditEvent).where(AuditEvent.action == "inbox.view")).all()
        )
        assert len(after) == len(before) == 1
        assert '<span class="count" id="new-count" hx-swap-oob="true">1 new</span>' in html

    def test_signing_out_ends_copied_sessions_too(self, world, app, client):
        client.login(world, "food")
        with client.client.session_transaction() as session:
            stolen = dict(session)
        client.post("/logout")
        thief = WebClient(app.test_client())
        with thief.client.session_transaction() as session:
            session.update(stolen)
        response = thief.get("/inbox")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")

    def test_a_disabled_account_loses_its_open_session(self, world, client):
        client.login(world, "food")
        assert client.get("/inbox").status_code == 200
        with transaction() as session:
            session.execute(
                update(User).where(User.email == world.emails["food"]).values(active=False)
            )
        assert client.get("/inbox").status_code == 302
        client.get("/login")
        response = client.post("/login", {"email": world.emails["food"], "password": PASSWORD})
        # The same answer as for an unknown address: a right password is not confirmed.
        assert response.status_code == 401
        assert "Email or password is not right." in response.get_data(as_text=True)


class TestConfidentialNotices:
    def test_a_teen_sharing_the_guardians_phone_gets_no_confidential_text(self, world):
        teen = make_patient(
            world, birth_date=years_ago(15), phone="+15105550177", guardian_phone="+15105550178"
        )
        # the family later says the teen's number is really the mother's
        with transaction() as session:
            session.get(type(teen), teen.id).phone = "+15105550178"
        send(
            world,
            teen,
            "youth",
            sensitive="y",
            category="stress",
            consent_given_by="patient",
            consent_given_by_name="Maya Lopez",
        )
        run_due_jobs()
        [message] = db.session().scalars(select(Message)).all()
        assert message.status == "skipped" and message.to_phone is None
        assert "no phone of their own" in message.skip_reason

    def test_the_patient_form_refuses_the_guardians_number_as_the_patients(self, world):
        with pytest.raises(InvalidInput) as err:
            make_patient(world, birth_date=years_ago(15), phone="+15105550142")
        assert "This is the guardian's number" in err.value.fields["phone"][0]

    def test_a_minor_needs_a_guardian_with_a_phone(self, world):
        with pytest.raises(InvalidInput) as err:
            make_patient(world, guardian_name=None, guardian_phone=None)
        assert err.value.fields == {
            "guardian_name": ["A patient under 18 needs a parent or guardian on file."]
        }
        with pytest.raises(InvalidInput) as err:
            make_patient(world, guardian_phone=None)
        assert "guardian_phone" in err.value.fields
        adult = make_patient(
            world,
            birth_date=years_ago(30),
            phone="+15105550190",
            guardian_name=None,
            guardian_phone=None,
        )
        assert adult.guardians == []


class TestErrorHygiene:
    def test_database_errors_do_not_carry_the_values_written(self, world):
        patient = make_patient(world, given_name="Zebulon")
        with pytest.raises(IntegrityError) as err, transaction() as session:
            session.add(
                Referral(
                    id=uuid.uuid4(),
                    patient_id=patient.id,
                    requester_org_id=None,
                    requester_user_id=None,
                    performer_org_id=None,
                    service_id=None,
                    category="x",
                    code="Zebulon-secret",
                    code_display="x",
                )
            )
            session.flush()
        assert "Zebulon-secret" not in describe_error(err.value)
        formatter = RedactingFormatter("%(message)s")
        try:
            raise err.value
        except IntegrityError:
            record = logging.LogRecord(
                "x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
            )
        assert "Zebulon-secret" not in formatter.format(record)

    def test_job_errors_keep_no_phone_numbers(self):
        error = describe_error(ValueError("The 'To' number +1 (510) 555-0142 is not valid"))
        assert error == "ValueError: The 'To' number [number] is not valid"

    def test_postgres_error_details_are_redacted(self):
        detail = (
            'null value in column "x" violates not-null constraint\n'
            "DETAIL:  Failing row contains (abc, Maya, +15105550142, note).\n"
            "Key (email)=(maya@example.org) already exists."
        )
        cleaned = redact(detail)
        assert "Maya" not in cleaned and "maya@example.org" not in cleaned
        assert "Failing row contains (…)" in cleaned and "Key (email)=(…)" in cleaned


LEASE = timedelta(seconds=30)


class TestOutboxLeases:
    def test_a_job_that_crashed_its_worker_on_the_last_attempt_is_dead(self):
        with transaction() as session:
            job = enqueue(session, "no.handler.needed", {}, "crash", max_attempts=1)
        jobs.claim_next(db.session(), "worker-that-dies", LEASE)
        db.session.remove()
        with transaction() as session:
            session.get(Job, job.id).locked_until = utcnow() - timedelta(seconds=1)
        assert run_due_jobs() == {}
        db.session.remove()
        job = db.session().get(Job, job.id)
        assert job.status == DEAD and "stopped while running" in job.last_error

    def test_a_worker_that_lost_its_lease_does_not_record_an_outcome(self):
        with transaction() as session:
            job = enqueue(session, "no.handler.needed", {}, "lease")
        jobs.claim_next(db.session(), "slow-worker", LEASE)
        db.session.remove()
        with transaction() as session:
            session.get(Job, job.id).locked_by = "another-worker"
        assert jobs.run_job(job.id, "slow-worker") == "missing"
        db.session.remove()
        assert db.session().get(Job, job.id).status == "running"


def test_a_network_admin_can_mark_a_referral_entered_in_error_without_reading_it(world):
    referral = send(world, make_patient(world))
    move(world, "admin", referral, "enter-in-error", reason="wrong-patient")
    db.session.remove()
    referral = db.session().get(Referral, referral.id)
    assert (referral.task.status, referral.status) == ("entered-in-error", "entered-in-error")


def test_the_audit_page_checks_a_window_and_the_command_the_whole_trail(world):
    send(world, make_patient(world))
    with transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == 1).values(action="forged"))
    assert verify_chain(db.session()) == 1
    assert verify_chain(db.session(), last=3) is None


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        Settings.from_env({"env": "production"})


def test_behind_a_trusted_proxy_the_audit_records_the_clients_address(world, database_url):
    proxied = create_app(
        {
            "env": "test",
            "database_url": database_url,
            "secret_key": "k",
            "trusted_proxies": 1,
            "argon2_memory_kib": 1024,
            "argon2_time_cost": 1,
            "log_level": "WARNING",
        }
    )
    client = WebClient(proxied.test_client())
    client.get("/login", headers={"X-Forwarded-For": "203.0.113.7"})
    client.post(
        "/login",
        {"email": world.emails["food"], "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    db.session.remove()
    entry = db.session().scalar(select(AuditEvent).where(AuditEvent.action == "auth.login"))
    assert entry.ip == "203.0.113.7"
    logging.getLogger().setLevel(logging.WARNING)


def test_the_port_served_on_is_the_public_address_unless_one_is_given(monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("PORT", "5090")
    assert Settings.from_env({"env": "test"}).public_base_url == "http://127.0.0.1:5090"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://referrals.example.org")
    assert Settings.from_env({"env": "test"}).public_base_url == "https://referrals.example.org"
