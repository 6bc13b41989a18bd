"""The referral lists on a phone, 390 px wide, in a real browser: the inbox (filtered through
its select, as a person does) and the referrals sent fit the screen without sideways
scrolling, each row's cells named by their column."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from referrals.db import db
from tests.e2e.test_journey import sign_in
from tests.helpers import World, make_patient, move, send

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


def fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"


def test_the_inbox_and_the_sent_list_fit_a_phone(new_page, world: World) -> None:
    accepted = send(world, make_patient(world, given_name="Accepted"))
    send(world, make_patient(world, given_name="Waiting"))
    move(world, "food", accepted, "accept")
    db.session.remove()

    staff = new_page()
    staff.set_viewport_size(PHONE)
    sign_in(staff, world, "food")
    staff.goto("/inbox")
    expect(staff.locator("#inbox-table tbody tr")).to_have_count(2)
    fits(staff)
    staff.select_option("#status", "requested")  # HTMX swaps the table and pushes the URL
    staff.wait_for_url("**/inbox?status=requested")
    expect(staff.locator("#inbox-table tbody tr")).to_have_count(1)
    expect(staff.locator("#inbox-table")).to_contain_text("Waiting Lopez")
    expect(staff.locator('#inbox-table td[data-label="Status"]')).to_have_text("Requested")
    fits(staff)

    clinician = new_page()
    clinician.set_viewport_size(PHONE)
    sign_in(clinician, world, "clinician")
    clinician.goto("/referrals")
    expect(clinician.locator("#sent-table tbody tr")).to_have_count(2)
    expect(clinician.locator('#sent-table td[data-label="To"]').first).to_have_text(
        "Community Food Bank"
    )
    fits(clinician)
