"""From "screen this family" to "referrals sent, with consent" in a real browser: a clinician
screens a 9-year-old's mother with the AHC HRSN tool (food and housing positive), confirms both
needs, sends two referrals to two organisations with the mother's consent, and both appear in
the organisations' inboxes. Every click is counted: the flow must take 12 or fewer."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from referrals.db import db
from referrals.loop.models import Referral
from referrals.patients.models import Consent, Need
from tests.e2e.test_journey import SCREENSHOTS, run_worker_once, sign_in
from tests.helpers import World, make_patient

pytestmark = pytest.mark.e2e

MAX_CLICKS = 12


class Clicks:
    """Clicks and ticks made on the clinician's behalf, counted."""

    def __init__(self) -> None:
        self.count = 0

    def click(self, target: Locator) -> None:
        self.count += 1
        target.click()

    def check(self, target: Locator) -> None:
        self.count += 1
        target.check()


def choose(page: Page, question: str, answer: str) -> Locator:
    fieldset = page.locator("fieldset.question", has_text=question)
    return fieldset.get_by_label(answer, exact=True)


def test_screen_confirm_and_refer_in_twelve_clicks(new_page, world: World, browser_problems):
    patient = make_patient(world)
    clinician = new_page()
    sign_in(clinician, world, "clinician")
    clinician.goto(f"/patients/{patient.id}")
    expect(clinician.get_by_role("heading", name="Maya Lopez")).to_be_visible()
    # A 9-year-old does not answer for herself: her mother, the one guardian on file, does.
    expect(clinician.get_by_label("Ana Lopez (mother)")).to_be_checked()
    clicks = Clicks()

    # Screening, in Spanish: the mother's language.
    clicks.click(clinician.get_by_role("button", name="Start screening"))
    expect(clinician.get_by_role("heading", name=re.compile("Evaluación"))).to_be_visible()
    clicks.check(
        choose(
            clinician,
            "situación de vivienda",
            "Hoy tengo un lugar donde vivir, pero me preocupa perderlo en el futuro",
        )
    )
    clicks.check(choose(clinician, "nos preocupó que la comida", "Con frecuencia es cierto"))
    clicks.check(choose(clinician, "no alcanzó", "A veces es cierto"))
    expect(clinician.locator("#progress")).to_contain_text("3 de 10 respondidas")  # saved as we go
    clicks.click(clinician.get_by_role("button", name="Responder “no” al resto"))
    expect(
        clinician.locator("fieldset.question", has_text="daño físico").get_by_role(
            "radio", name=re.compile("^Nunca")
        )
    ).to_be_checked()
    clicks.click(clinician.get_by_role("button", name="Terminar la evaluación"))
    expect(clinician.locator("#messages")).to_contain_text(
        "positive for housing instability, food insecurity"
    )

    # Both needs confirmed as wanting help now; one service each; the mother's verbal consent.
    food = clinician.locator("fieldset.need", has_text="Food insecurity")
    housing = clinician.locator("fieldset.need", has_text="Housing instability")
    expect(food.get_by_text("Unconfirmed")).to_be_visible()
    expect(food).to_contain_text("ICD-10-CM Z59.41")
    clicks.check(food.get_by_label("Confirmed: wants help now"))
    clicks.check(housing.get_by_label("Confirmed: wants help now"))
    clicks.check(food.locator("label.service", has_text="Food boxes").get_by_role("checkbox"))
    clicks.check(
        housing.locator("label.service", has_text="Housing navigation").get_by_role("checkbox")
    )
    consent = clinician.locator("fieldset.consent")
    expect(consent.get_by_label("Ana Lopez (parent or guardian)")).to_be_checked()
    expect(consent.get_by_label("Text updates to")).to_have_value(
        f"guardian:{patient.guardians[0].id}"
    )
    clicks.check(consent.get_by_label("Verbally: I attest that they agreed, today"))
    clinician.screenshot(path=SCREENSHOTS.format(name="screening-needs"), full_page=True)
    clicks.click(clinician.get_by_role("button", name="Save and send referrals"))
    expect(clinician.locator("#messages")).to_contain_text(
        "2 referrals sent: Housing Help, Community Food Bank."
    )
    assert clicks.count <= MAX_CLICKS, f"{clicks.count} clicks"
    print(f"\nscreening to two referrals with consent: {clicks.count} clicks")

    # What was written: each referral linked to its confirmed need, one consent per organisation.
    session = db.session()
    referrals = session.scalars(select(Referral).where(Referral.patient_id == patient.id)).all()
    needs = {n.id: n for n in session.scalars(select(Need).where(Need.patient_id == patient.id))}
    assert sorted((needs[r.need_id].domain, r.performer_org.name) for r in referrals) == [
        ("food-insecurity", "Community Food Bank"),
        ("housing-instability", "Housing Help"),
    ]
    assert all(n.verification == "confirmed" and n.family_priority for n in needs.values())
    consents = session.scalars(select(Consent).where(Consent.patient_id == patient.id)).all()
    assert sorted((c.recipient.name, c.granted_by_name, c.method) for c in consents) == [
        ("Community Food Bank", "Ana Lopez", "verbal"),
        ("Housing Help", "Ana Lopez", "verbal"),
    ]
    db.session.remove()
    assert run_worker_once() == {"done": 2}

    # The patient page shows the screening's decided needs, the consents and the referrals.
    expect(clinician.get_by_role("heading", name="Maya Lopez")).to_be_visible()
    expect(clinician.locator("table", has_text="Answered by")).to_contain_text(
        "Food insecurity: confirmed, wants help now"
    )

    # Both organisations find the referral in their inbox.
    for who, org in (("food", "Community Food Bank"), ("housing", "Housing Help")):
        page = new_page()
        sign_in(page, world, who)
        expect(page.locator("header")).to_contain_text(org)
        page.goto("/inbox")
        row = page.locator("#inbox-table tbody tr", has_text="Maya Lopez")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Requested")
        expect(row).to_contain_text("Sunrise Pediatrics")
        page.screenshot(path=SCREENSHOTS.format(name=f"inbox-{who}"), full_page=True)

    assert browser_problems.page_errors == []
    assert browser_problems.console_errors == []
