"""The needs page sent with no service ticked: the decisions are kept, and the page says that no
referral was sent and why, with what was filled in still there."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from referrals.db import db
from referrals.loop.models import Referral
from referrals.patients.models import Consent, Need
from tests.helpers import make_patient
from tests.patients.test_screening_pages import finished, needs


def decisions(url_needs: dict) -> dict[str, tuple[str, bool]]:
    db.session.remove()
    return {
        domain: (need.verification, need.family_priority)
        for domain, need in (
            (domain, db.session().get(Need, need_id)) for domain, need_id in url_needs.items()
        )
    }


def nothing_written() -> bool:
    session = db.session()
    return not session.scalar(select(func.count()).select_from(Referral)) and not session.scalar(
        select(func.count()).select_from(Consent)
    )


def notice(html: str) -> str:
    found = re.findall(r'<p class="flash flash-warn" role="status">(.*?)</p>', html, re.S)
    assert len(found) == 1, html[:2000]
    return unescape(found[0])


@pytest.fixture
def page(world, client):
    """A finished screening positive for food and housing, as the clinician sees it."""
    patient = make_patient(world)
    client.login(world, "clinician")
    url = finished(client, patient)
    return patient, url, needs(url)


def test_a_need_wanted_now_without_a_service_says_nothing_was_sent_and_keeps_the_form(
    world, client, page
):
    patient, url, found = page
    food, housing = found["food-insecurity"], found["housing-instability"]
    guardian = f"guardian:{patient.guardians[0].id}"
    response = client.post(
        f"{url}/referrals",
        {
            f"need-{food}": "help-now",
            f"need-{housing}": "dismissed",
            "consent_by": guardian,
            "consent_method": "verbal",
            "sms_to": guardian,
            "note": "Call after 5pm.",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert notice(html) == (
        "No referral was sent: no service is ticked for food insecurity, which the family "
        "wants help with now. Your decisions on the needs are saved."
    )
    # The need is pointed at, and what was filled in is still there.
    food_fieldset = html.split(f'id="need-{food}"', 1)[1].split("</fieldset>", 1)[0]
    assert "Tick a service to refer for this need" in unescape(food_fieldset)
    assert re.search(rf'name="need-{food}" value="help-now" checked', html)
    assert re.search(rf'name="consent_by" value="{guardian}" checked', html)
    assert re.search(r'name="consent_method" value="verbal" checked', html)
    assert "Call after 5pm.</textarea>" in html
    assert "were saved" not in html
    assert decisions(found) == {
        "food-insecurity": ("confirmed", True),
        "housing-instability": ("refuted", False),
    }
    assert nothing_written()

    # Ticking the service then sends the referral.
    sent = client.post(
        f"{url}/referrals",
        {
            f"need-{food}": "help-now",
            f"service-{food}": str(world.service_ids["food"]),
            "consent_by": guardian,
            "consent_method": "verbal",
            "sms_to": guardian,
        },
    )
    assert sent.status_code == 302
    assert "1 referral sent: Community Food Bank." in client.get(sent.headers["Location"]).get_data(
        as_text=True
    )


def test_two_needs_wanted_now_without_services_are_both_named(client, page):
    _, url, found = page
    response = client.post(
        f"{url}/referrals", {f"need-{need_id}": "help-now" for need_id in found.values()}
    )
    assert response.status_code == 200
    message = notice(response.get_data(as_text=True))
    assert message.startswith("No referral was sent: no service is ticked for ")
    assert "food insecurity" in message and "housing instability" in message
    assert nothing_written()


@pytest.mark.parametrize(
    ("decision", "why", "kept"),
    [
        ("dismissed", "no need is confirmed.", ("refuted", False)),
        (None, "no need is confirmed.", ("unconfirmed", False)),
        (
            "confirmed",
            "the family wants help now with none of the confirmed needs.",
            ("confirmed", False),
        ),
    ],
    ids=["all dismissed", "none decided", "confirmed, not now"],
)
def test_no_need_wanted_now_says_why(client, page, decision, why, kept):
    _, url, found = page
    form = {f"need-{need_id}": decision for need_id in found.values()} if decision else {}
    response = client.post(f"{url}/referrals", form)
    assert response.status_code == 200
    assert notice(response.get_data(as_text=True)) == (
        f"No referral was sent: {why} Your decisions on the needs are saved."
    )
    assert set(decisions(found).values()) == {kept}
    assert nothing_written()
