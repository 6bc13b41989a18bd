"""The closed loop in a real browser: a clinician refers a child to a food bank, the food bank
accepts it from its inbox (in place, through HTMX), works it and completes it, the clinician
sees the outcome, and a network administrator sees the family's text message."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from referrals.db import db
from referrals.jobs import run_due_jobs
from referrals.patients.screening import complete_screening, save_answers, start_screening
from referrals.terminology import california_today
from tests.helpers import PASSWORD, World, make_patient, send, years_ago

pytestmark = pytest.mark.e2e

SCREENSHOTS = "/tmp/e2e-{name}.png"


def sign_in(page: Page, world: World, who: str) -> None:
    page.goto("/login")
    page.fill("#email", world.emails[who])
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def run_worker_once() -> dict[str, int]:
    """What `flask worker --once` does, in the test thread (its own database session)."""
    counts = run_due_jobs()
    db.session.remove()  # hold no transaction (SQLite: no lock) while the server works
    return counts


def test_referral_round_trip(new_page, world: World, browser_problems) -> None:
    today = california_today().isoformat()

    # The clinician adds a patient and refers her to the food bank.
    clinician = new_page()
    sign_in(clinician, world, "clinician")
    clinician.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    expect(clinician.get_by_role("heading", name="Patients")).to_be_visible()
    clinician.get_by_role("link", name="Add a patient").click()
    clinician.fill("#given_name", "Maya")
    clinician.fill("#family_name", "Lopez")
    clinician.fill("#birth_date", years_ago(9))
    clinician.select_option("#language", "es")
    clinician.fill("#guardian_name", "Ana Lopez")
    clinician.select_option("#guardian_relationship", "mother")
    clinician.fill("#guardian_phone", "(510) 555-0142")
    clinician.get_by_role("button", name="Add patient").click()
    expect(clinician.locator("#messages")).to_contain_text("Maya Lopez was added.")
    expect(clinician.get_by_role("heading", name="Maya Lopez")).to_be_visible()

    clinician.get_by_role("link", name="New referral").click()
    expect(
        clinician.get_by_role("heading", name=re.compile("New referral for Maya Lopez"))
    ).to_be_visible()
    clinician.locator("label.service", has_text="Food boxes").get_by_role("radio").check()
    clinician.fill("#note", "Family ran out of food twice this month. Mother prefers Spanish.")
    clinician.select_option("#consent_given_by", "guardian")
    clinician.fill("#consent_given_by_name", "Ana Lopez")
    clinician.select_option("#consent_method", "verbal")
    clinician.fill("#consent_date", today)
    clinician.get_by_role("button", name="Send referral").click()
    expect(clinician.locator("#messages")).to_contain_text("Referral sent to Community Food Bank.")
    expect(clinician.locator(".status-line .badge")).to_have_text("Requested")
    referral_url = clinician.url
    assert re.search(r"/referrals/[0-9a-f-]{36}$", referral_url), referral_url

    # The worker sends the family's notice; a network administrator sees it.
    assert run_worker_once() == {"done": 1}
    admin = new_page()
    sign_in(admin, world, "admin")
    admin.goto("/admin/messages")
    rows = admin.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(
        "Referrals: mensajes sobre sus referencias. Responda STOP para no recibirlos, HELP para"
        " ayuda. Community Food Bank ha recibido una referencia para usted de parte de Sunrise"
        " Pediatrics."
    )
    expect(rows.first).to_contain_text("guardian +1••••••••42")
    expect(rows.first.locator(".badge")).to_have_text("sent")
    admin.context.close()

    # The food bank's staff member finds it in the inbox and accepts it in place.
    food = new_page()
    sign_in(food, world, "food")
    expect(food.get_by_role("heading", name=re.compile("^Inbox"))).to_be_visible()
    expect(food.locator("#new-count")).to_have_text("1 new")
    row = food.locator("#inbox-table tbody tr", has_text="Maya Lopez")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Food insecurity")
    expect(row).to_contain_text("Sunrise Pediatrics")
    expect(row.locator(".badge")).to_have_text("Requested")
    food.screenshot(path=SCREENSHOTS.format(name="inbox"), full_page=True)

    row_id = row.get_attribute("id")
    assert row_id and row_id.startswith("task-")
    inbox_url = food.url
    food.evaluate("window.__e2eMarker = 'still the same page'")
    row.get_by_role("button", name="Accept").click()
    swapped = food.locator(f"#{row_id}")
    expect(swapped.locator(".badge")).to_have_text("Accepted")
    expect(swapped.get_by_role("button", name="Start work")).to_be_visible()
    expect(swapped.get_by_role("button", name="Accept")).to_have_count(0)
    expect(food.locator("#messages")).to_contain_text("Accept: the referral is now accepted.")
    expect(food.locator("#new-count")).to_have_text("0 new")
    assert food.evaluate("window.__e2eMarker") == "still the same page"
    assert food.url == inbox_url
    food.screenshot(path=SCREENSHOTS.format(name="inbox-accepted"), full_page=True)

    # It opens the referral, starts work and completes it with an outcome.
    swapped.get_by_role("link", name="Maya Lopez").click()
    expect(food.get_by_role("heading", name="Referral for Maya Lopez")).to_be_visible()
    expect(food.locator(".status-line .badge")).to_have_text("Accepted")
    food.get_by_role("button", name="Start work").click()
    expect(food.locator("#messages")).to_contain_text("the referral is now in progress")
    expect(food.locator(".status-line .badge")).to_have_text("In progress")
    food.locator("summary", has_text="Complete…").click()  # the form is in a disclosure
    complete = food.locator("form.action-complete")
    expect(complete).to_be_visible()
    complete.get_by_label("What was provided").select_option(label="Provision of food")
    complete.get_by_label("Outcome note").fill(
        "Two food boxes delivered; enrolled in weekly pantry."
    )
    complete.get_by_role("button", name="Complete").click()
    expect(food.locator("#messages")).to_contain_text("the referral is now completed")
    expect(food.locator(".status-line .badge")).to_have_text("Completed")

    # The clinician reloads the referral and sees the loop closed.
    clinician.reload()
    expect(clinician.locator(".status-line .badge")).to_have_text("Completed")
    expect(clinician.locator("dl.facts")).to_contain_text(
        "Provision of food: Two food boxes delivered; enrolled in weekly pantry."
    )
    expect(clinician.locator(".timeline li strong")).to_have_text(
        ["Sent the referral", "Accepted", "Started work", "Completed"]
    )
    expect(clinician.locator(".timeline li").last).to_contain_text("by Food, Community Food Bank")
    clinician.screenshot(path=SCREENSHOTS.format(name="completed"), full_page=True)

    # Each status change queued one more notice for the family.
    assert run_worker_once() == {"done": 3}

    assert browser_problems.page_errors == []


def test_consent_date_is_shown_as_entered(new_page, world: World) -> None:
    """The consent date a clinician records is the date both sides read back (a date, not a
    moment: no time zone may move it to the day before)."""
    day = california_today()
    patient = make_patient(world)
    referral = send(world, patient, consent_date=day.isoformat())
    db.session.remove()
    shown = f"{day:%b} {day.day}, {day.year}"
    for who in ("clinician", "food"):
        page = new_page()
        sign_in(page, world, who)
        page.goto(f"/referrals/{referral.id}")
        consent = page.locator("dl.facts dt:text-is('Consent') + dd")
        expect(consent).to_have_text(
            f"Parent or guardian Ana Lopez, verbal, witnessed by staff, {shown}"
        )


# Pages each person opens, with what proves the page rendered.
PAGES = {
    "clinician": [
        ("/patients", "Patients"),
        ("/patients/new", "Add a patient"),
        ("/patients/{patient}", "Maya Lopez"),
        ("/patients/{patient}/referrals/new", "New referral for Maya Lopez"),
        ("/referrals/{referral}", "Referral for Maya Lopez"),
        ("/referrals", "My referrals"),
        ("/screenings/{screening}", "Evaluación"),  # the form, saving each answer
        ("/screenings/{finished}", "Hunger Vital Sign"),  # needs, suggestions, signature pad
    ],
    "food": [("/inbox", "Inbox"), ("/referrals/{referral}", "Referral for Maya Lopez")],
    "admin": [
        ("/admin/messages", "Messages to families"),
        ("/admin/audit", "Audit trail"),
        ("/admin/jobs", "Outbox jobs"),
    ],
}


def test_pages_log_no_browser_errors(new_page, world: World, browser_problems) -> None:
    """No script error, htmx error or Content-Security-Policy violation on the main pages."""
    patient = make_patient(world)
    referral = send(world, patient)
    clinician = world.actor("clinician")
    respondent = {"respondent": f"guardian:{patient.guardians[0].id}"}
    screening = start_screening(clinician, patient.id, respondent)
    finished = start_screening(clinician, patient.id, {**respondent, "instrument": "hvs"})
    save_answers(clinician, finished.id, {"q-88122-7": "LA28397-0", "q-88123-5": "LA28398-8"})
    complete_screening(clinician, finished.id, {})
    db.session.remove()
    ids = dict(
        patient=patient.id, referral=referral.id, screening=screening.id, finished=finished.id
    )
    for who, pages in PAGES.items():
        page = new_page()
        sign_in(page, world, who)
        for path, heading in pages:
            page.goto(path.format(**ids))
            expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
            page.wait_for_load_state("load")  # deferred scripts (htmx, app.js) have run
            assert page.evaluate("typeof window.htmx") == "object", path
            if path == "/screenings/{screening}":  # an answer saved by htmx, no error
                page.get_by_role("radio", name="Con frecuencia es cierto").first.check()
                expect(page.locator("#progress")).to_contain_text("1 de 10")
    assert browser_problems.page_errors == []
    assert browser_problems.console_errors == []
