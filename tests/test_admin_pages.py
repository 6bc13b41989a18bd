"""Network administrators: messages, audit trail, jobs; and nothing clinical."""

from __future__ import annotations

import re

from referrals.jobs import run_due_jobs
from tests.helpers import make_patient, move, send


def text(response) -> str:
    return response.get_data(as_text=True)


def test_messages_page_lists_sent_notices_with_masked_numbers(world, client):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    run_due_jobs()
    client.login(world, "admin")
    html = text(client.get("/admin/messages"))
    assert "Responda STOP para no recibirlos" in html  # the first text introduces us
    assert "Community Food Bank ha aceptado su referencia" in html
    assert "+1••••••••42" in html and "5550142" not in html
    assert html.count("badge-msg-sent") == 2


def test_audit_page_filters_by_user_and_by_patient(world, client):
    patient = make_patient(world)
    other = make_patient(world, given_name="Other")
    referral = send(world, patient)
    send(world, other)
    move(world, "food", referral, "accept")
    client.login(world, "admin")
    by_user = text(
        client.get("/admin/audit?user=food@test.example", htmx=True, target="audit-table")
    )
    assert by_user.lstrip().startswith('<div id="audit-table"')
    assert "referral.accept" in by_user and "referral.create" not in by_user
    by_patient = text(client.get(f"/admin/audit?patient={patient.id}"))
    assert "referral.create" in by_patient and "patient.create" in by_patient
    assert by_patient.count(str(patient.id)[:8]) >= 3
    assert str(other.id)[:8] not in by_patient
    assert "Hash chain intact." in by_patient


def test_audit_filter_errors_are_explained(world, client):
    client.login(world, "admin")
    response = client.get("/admin/audit?patient=123")
    assert response.status_code == 422 and "A patient id looks like" in text(response)
    response = client.get("/admin/audit?user=nobody@test.example")
    assert "No user with email nobody@test.example." in text(response)


def test_network_admin_cannot_read_referrals(world, client):
    referral = send(world, make_patient(world), note="Private clinical detail")
    client.login(world, "admin")
    response = client.get(f"/referrals/{referral.id}")
    assert response.status_code == 404 and "Private clinical detail" not in text(response)


def test_network_admins_edit_the_taxonomy_to_sdoh_mapping(world, client):
    client.login(world, "admin")
    client.get("/admin/taxonomy-map")
    response = client.post(
        "/admin/taxonomy-map",
        {
            "taxonomy": "AIRS/211 LA",
            "term_code": "BD-1800.2000",
            "term_name": "Food Pantries",
            "sdoh_category": "food-insecurity",
        },
    )
    assert response.headers["Location"] == "/admin/taxonomy-map"
    html = text(client.get("/admin/taxonomy-map"))
    assert "BD-1800.2000" in html and "Food insecurity" in html
    again = client.post(
        "/admin/taxonomy-map",
        {"taxonomy": "AIRS/211 LA", "term_code": "BD-1800.2000", "sdoh_category": "stress"},
    )
    assert again.status_code == 422 and "Already mapped to Food insecurity." in text(again)
    bad = client.post("/admin/taxonomy-map", {"taxonomy": "", "sdoh_category": "weather"})
    assert "Pick an SDOH domain." in text(bad) and "Give the term&#39;s code" in text(bad)
    long = client.post(
        "/admin/taxonomy-map",
        {"taxonomy": "T" * 101, "term_code": "C" * 150, "sdoh_category": "food-insecurity"},
    )
    assert long.status_code == 422
    assert "At most 100 characters (101 given)." in text(long)
    assert "At most 100 characters (150 given)." in text(long)
    row_id = re.search(r"/admin/taxonomy-map/([0-9a-f-]{36})/delete", html).group(1)
    client.post(f"/admin/taxonomy-map/{row_id}/delete")
    assert "BD-1800.2000" not in text(client.get("/admin/taxonomy-map"))


def test_jobs_page_shows_each_worker_and_what_it_runs(world, client):
    from datetime import timedelta

    from referrals.db import transaction, utcnow
    from referrals.jobs import Worker, claim_next, enqueue

    with transaction() as session:
        now = utcnow()
        session.add(Worker(name="web-1:101", started_at=now, heartbeat_at=now))
        session.add(Worker(name="web-1:102", started_at=now, heartbeat_at=now))
        session.add(Worker(name="web-2:7", started_at=now, heartbeat_at=now - timedelta(minutes=3)))
        session.add(Worker(name="web-2:8", started_at=now, heartbeat_at=now, stopped_at=now))
        enqueue(session, "sms.notice", {"event_id": "x"}, "worker-page")
    from referrals.db import db

    claim_next(db.session(), "web-1:101", timedelta(seconds=30))
    db.session.remove()
    client.login(world, "admin")
    html = text(client.get("/admin/jobs"))
    rows = {
        name: row
        for name, row in re.findall(
            r'<tr class="worker-\w+">\s*<td><code>([^<]+)</code>(.*?)</tr>', html, re.S
        )
    }
    assert "Running a job" in rows["web-1:101"] and "sms.notice" in rows["web-1:101"]
    assert "Waiting for work" in rows["web-1:102"]
    assert "Silent for over a minute" in rows["web-2:7"]
    assert "Stopped" in rows["web-2:8"]
