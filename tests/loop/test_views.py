"""Referral pages as a browser gets them: whole pages, HTMX fragments, messages."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from referrals.db import db
from referrals.loop.models import Referral, Task
from tests.helpers import make_patient, move, referral_form, send, years_ago


def text(response) -> str:
    return response.get_data(as_text=True)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="task-[^"]+".*?</tr>', html, re.S)


class TestInbox:
    def test_lists_received_referrals_newest_first_with_the_new_count(self, world, client):
        send(world, make_patient(world, given_name="Older"))
        send(world, make_patient(world, given_name="Newer"))
        send(world, make_patient(world, given_name="Elsewhere"), "housing")
        client.login(world, "food")
        html = text(client.get("/inbox"))
        found = rows(html)
        assert len(found) == 2
        assert "Newer Lopez" in found[0] and "Older Lopez" in found[1]
        assert "Elsewhere" not in html
        assert "2 new" in html
        assert "Food insecurity" in found[0] and "Sunrise Pediatrics" in found[0]

    def test_filter_answers_htmx_with_only_the_table(self, world, client):
        accepted = send(world, make_patient(world, given_name="Accepted"))
        send(world, make_patient(world, given_name="Waiting"))
        move(world, "food", accepted, "accept")
        client.login(world, "food")

        fragment = client.get("/inbox?status=accepted", htmx=True, target="inbox-table")
        html = text(fragment)
        assert html.lstrip().startswith('<div id="inbox-table"')
        assert "<html" not in html and "Accepted Lopez" in html and "Waiting" not in html
        assert "HX-Request" in fragment.headers["Vary"]

        full = text(client.get("/inbox?status=accepted"))
        assert "<html" in full and "Accepted Lopez" in full and "Waiting" not in full

    def test_inline_accept_replaces_just_the_row(self, world, client):
        referral = send(world, make_patient(world))
        client.login(world, "food")
        client.get("/inbox")
        response = client.post(
            f"/referrals/{referral.id}/status",
            {"action": "accept", "version": "1", "from": "inbox"},
            htmx=True,
        )
        html = text(response)
        assert response.status_code == 200
        assert html.lstrip().startswith(f'<tr id="task-{referral.task.id}"')
        assert "Accepted" in html and ">Start work<" in html and "<html" not in html
        assert 'hx-swap-oob="innerHTML"' in html and "the referral is now accepted" in html
        assert '<span class="count" id="new-count" hx-swap-oob="true">0 new</span>' in html

    def test_core_actions_work_without_javascript(self, world, client):
        referral = send(world, make_patient(world))
        client.login(world, "food")
        client.get(f"/referrals/{referral.id}")
        response = client.post(
            f"/referrals/{referral.id}/status", {"action": "accept", "version": "1"}
        )
        assert response.status_code == 302
        assert response.headers["Location"] == f"/referrals/{referral.id}"
        html = text(client.get(response.headers["Location"]))
        assert "Accept: the referral is now accepted." in html

    def test_inline_action_on_a_stale_row_shows_the_conflict_in_the_message_area(
        self, world, client
    ):
        referral = send(world, make_patient(world))
        move(world, "food_admin", referral, "accept")
        client.login(world, "food")
        client.get("/inbox")
        response = client.post(
            f"/referrals/{referral.id}/status",
            {"action": "accept", "version": "1", "from": "inbox"},
            htmx=True,
        )
        assert response.status_code == 409
        assert response.headers["HX-Retarget"] == "#messages"
        assert "Food Admin (Community Food Bank) changed this referral" in text(response)

    def test_paginates_past_one_page(self, world, client):
        patient = make_patient(world)
        for _ in range(27):
            send(world, patient)
        client.login(world, "food")
        first = text(client.get("/inbox"))
        assert len(rows(first)) == 25 and "page 1 of 2" in first
        assert len(rows(text(client.get("/inbox?page=2")))) == 2


class TestReferralPage:
    def test_recipient_sees_the_minimum_necessary(self, world, client):
        patient = make_patient(world, mrn="MRN-777", zip_code="94601")
        referral = send(world, patient, note="Needs food on weekends")
        send(world, patient, "housing")  # another referral: not the food bank's business
        client.login(world, "food")
        html = text(client.get(f"/referrals/{referral.id}"))
        assert "Maya Lopez" in html and "Needs food on weekends" in html
        assert "Spanish" in html and "Ana Lopez" in html and "(510) 555-0142" in html
        assert "age 9" in html
        assert "Food insecurity" in html and "Verbal" in html.title()
        assert "MRN-777" not in html and "Housing" not in html
        assert f"/patients/{patient.id}" not in html  # no door into the clinic's record

    def test_confidential_referral_hides_the_guardian_from_the_recipient(self, world, client):
        teen = make_patient(world, birth_date=years_ago(15), phone="+15105550177")
        referral = send(
            world,
            teen,
            "youth",
            sensitive="y",
            category="stress",
            consent_given_by="patient",
            consent_given_by_name="Maya Lopez",
        )
        client.login(world, "youth")
        html = text(client.get(f"/referrals/{referral.id}"))
        assert "Confidential" in html and "(510) 555-0177" in html
        assert "Ana Lopez" not in html and "555-0142" not in html

    def test_do_not_contact_hides_phone_numbers_and_warns(self, world, client):
        referral = send(world, make_patient(world), contact_prohibited="y")
        client.login(world, "food")
        html = text(client.get(f"/referrals/{referral.id}"))
        assert "Do not contact the family." in html and "555-0142" not in html

    def test_referrer_sees_the_full_timeline_with_reasons_and_notes(self, world, client):
        referral = send(world, make_patient(world))
        move(world, "food", referral, "accept")
        move(
            world,
            "food",
            referral,
            "note",
            note="Left voicemail",
            business_status="contact-attempted",
        )
        move(world, "food", referral, "fail", reason="unreachable", reason_detail="3 calls")
        client.login(world, "clinician")
        html = text(client.get(f"/referrals/{referral.id}"))
        timeline = html[html.index('class="timeline"') :]
        for expected in (
            "Sent the referral",
            "Accepted",
            "Progress note",
            "Left voicemail",
            "Tried to reach the family",
            "Closed as not completed",
            "Reason: Family could not be reached. 3 calls",
            "by Food, Community Food Bank",
        ):
            assert expected in timeline
        assert timeline.index("Sent the referral") < timeline.index("Closed as not completed")

    def test_declining_without_a_reason_re_renders_with_the_message(self, world, client):
        referral = send(world, make_patient(world))
        client.login(world, "food")
        client.get(f"/referrals/{referral.id}")
        response = client.post(
            f"/referrals/{referral.id}/status", {"action": "decline", "version": "1"}
        )
        assert response.status_code == 422
        assert "Pick a reason from the list." in text(response)
        assert db.session().scalar(select(Task.status)) == "requested"

    def test_a_refused_move_says_why(self, world, client):
        referral = send(world, make_patient(world))
        move(world, "food", referral, "decline", reason="not-eligible")
        client.login(world, "food")
        client.get(f"/referrals/{referral.id}")
        response = client.post(
            f"/referrals/{referral.id}/status", {"action": "accept", "version": "2"}
        )
        assert response.status_code == 409
        assert "This referral is declined, which is final" in text(response)

    def test_stale_form_asks_to_reload_and_names_who_changed_it(self, world, client):
        referral = send(world, make_patient(world))
        client.login(world, "food")
        client.get(f"/referrals/{referral.id}")
        move(world, "food_admin", referral, "accept")
        response = client.post(
            f"/referrals/{referral.id}/status",
            {"action": "decline", "version": "1", "reason": "at-capacity"},
        )
        assert response.status_code == 409
        html = text(response)
        assert "Food Admin (Community Food Bank) changed this referral" in html
        assert "Reload the page" in html

    def test_another_organisations_referral_is_not_found(self, world, client):
        referral = send(world, make_patient(world))
        client.login(world, "housing")
        response = client.get(f"/referrals/{referral.id}")
        assert response.status_code == 404 and "Maya" not in text(response)
        response = client.post(
            f"/referrals/{referral.id}/status", {"action": "accept", "version": "1"}
        )
        assert response.status_code == 404
        assert db.session().scalar(select(Task.status)) == "requested"

    def test_malformed_ids_are_not_found(self, world, client):
        client.login(world, "food")
        assert client.get("/referrals/not-a-uuid").status_code == 404


class TestSendingPage:
    def test_the_form_lists_directory_services_and_filters_them_by_need(self, world, client):
        patient = make_patient(world)
        client.login(world, "clinician")
        html = text(client.get(f"/patients/{patient.id}/referrals/new"))
        for name in ("Food boxes", "Housing navigation", "Family resource center"):
            assert name in html
        fragment = text(
            client.get(
                f"/patients/{patient.id}/referrals/new?fragment=services&category=homelessness",
                htmx=True,
            )
        )
        assert fragment.lstrip().startswith('<div id="services"')
        assert "Housing navigation" in fragment and "Food boxes" not in fragment

    def test_sending_redirects_to_the_new_referral(self, world, client):
        patient = make_patient(world)
        client.login(world, "clinician")
        client.get(f"/patients/{patient.id}/referrals/new")
        response = client.post(f"/patients/{patient.id}/referrals", referral_form(world))
        referral = db.session().scalar(select(Referral))
        assert response.headers["Location"] == f"/referrals/{referral.id}"
        html = text(client.get(response.headers["Location"]))
        assert "Referral sent to Community Food Bank." in html and "Requested" in html

    def test_a_bad_form_keeps_what_was_typed_and_writes_nothing(self, world, client):
        patient = make_patient(world)
        client.login(world, "clinician")
        client.get(f"/patients/{patient.id}/referrals/new")
        form = referral_form(world, note="Keep this text")
        del form["consent_given_by"]
        response = client.post(f"/patients/{patient.id}/referrals", form)
        html = text(response)
        assert response.status_code == 422
        assert "not a HIPAA-covered entity" in html and "Keep this text" in html
        assert db.session().scalar(select(func.count(Referral.id))) == 0


class TestSentList:
    def test_open_overdue_and_closed_tabs(self, world, client):
        patient = make_patient(world)
        open_one = send(world, patient, note="open one")
        closed = send(world, patient, "housing")
        move(world, "housing", closed, "decline", reason="not-eligible")
        client.login(world, "clinician")
        open_html = text(client.get("/referrals"))
        assert (
            f"/referrals/{open_one.id}" in open_html and f"/referrals/{closed.id}" not in open_html
        )
        closed_html = text(client.get("/referrals?bucket=closed"))
        assert f"/referrals/{closed.id}" in closed_html and "Declined" in closed_html
        assert "No overdue referrals." in text(client.get("/referrals?bucket=overdue"))


def test_referrer_sees_the_medi_cal_closed_loop_values(world, client):
    referral = send(world, make_patient(world))
    move(world, "food", referral, "decline", reason="family-declined")
    client.login(world, "clinician")
    html = text(client.get(f"/referrals/{referral.id}"))
    assert "Referral Status: Declined; Reason for Loop Closure: Member Declined" in html
    client.login(world, "food")
    assert "Medi-Cal closed-loop" not in text(client.get(f"/referrals/{referral.id}"))


def test_a_sensitive_service_still_shows_the_consenting_guardian_to_the_recipient(world, client):
    from referrals.directory.service import add_service
    from referrals.loop.service import send_referral
    from tests.helpers import SYSTEM, referral_form

    program = add_service(
        SYSTEM,
        world.orgs["youth"],
        name="Family safety program",
        categories=["intimate-partner-violence"],
        sensitive=True,
    )
    child = make_patient(world)
    form = referral_form(world, service_id=str(program.id), consent_given_by_name="Ana Lopez")
    referral = send_referral(world.actor("clinician"), child.id, form)
    client.login(world, "youth")
    html = text(client.get(f"/referrals/{referral.id}"))
    assert "Confidential" in html and "Ana Lopez, (510) 555-0142" in html
