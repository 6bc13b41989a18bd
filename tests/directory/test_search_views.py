"""The directory search page and the referral form's service search, as a browser sees them."""

from __future__ import annotations

import re
from datetime import timedelta

from referrals.db import utcnow
from referrals.directory.service import add_service
from tests.helpers import SYSTEM, make_patient, referral_form


def text(response) -> str:
    return response.get_data(as_text=True)


def add(world, name, zip_code, org="food", **fields):
    fields.setdefault("categories", ["food-insecurity"])
    fields.setdefault("languages", ["en", "es"])
    return add_service(
        SYSTEM,
        world.orgs[org],
        name=name,
        address={"address_1": "1 Main St", "city": "Los Angeles", "postal_code": zip_code},
        **fields,
    )


def result_names(html: str) -> list[str]:
    return re.findall(r'<span class="service-name">([^<]+)</span>', html)


class TestDirectoryPage:
    def test_signed_in_people_search_by_need_place_and_language(self, world, client):
        add(
            world,
            "Downtown pantry",
            "90012",
            capacity_status="waitlist",
            capacity_updated_at=utcnow() - timedelta(days=12),
        )
        add(world, "Pasadena pantry", "91101")
        add(world, "English-only pantry", "90012", languages=["en"])
        client.login(world, "food")
        response = client.get("/directory?need=food-insecurity&zip=90011&radius=10&language=es")
        html = text(response)
        assert response.status_code == 200
        assert result_names(html) == ["Downtown pantry"]
        assert "1 service within 10 miles of 90011 (Los Angeles)." in html
        assert "Waiting list</span> updated 12 days ago" in html and "Spanish (Español)" in html
        assert re.search(r'<span class="distance">\d\.\d mi</span>', html)
        # The form keeps what was asked, and the page works without JavaScript (GET form).
        assert 'value="90011"' in html and '<form method="get" action="/directory"' in html
        assert 'hx-trigger="input changed delay:300ms, submit"' in html

    def test_search_as_you_type_gets_only_the_results(self, world, client):
        add(world, "Downtown pantry", "90012")
        client.login(world, "clinician")
        response = client.get("/directory?zip=90011", htmx=True, target="results")
        html = text(response)
        assert html.lstrip().startswith('<section id="results"')
        assert "<html" not in html and result_names(html) == ["Downtown pantry"]
        assert "HX-Request" in response.headers["Vary"]

    def test_an_unknown_zip_and_a_radius_out_of_range_are_explained(self, world, client):
        client.login(world, "clinician")
        response = client.get("/directory?zip=00000&radius=150")
        html = text(response)
        assert response.status_code == 422
        assert "ZIP code 00000 does not exist" in html
        assert "Radius is a number of miles from 1 to 100." in html
        assert 'aria-invalid="true" aria-describedby="zip-error"' in html
        fragment = text(client.get("/directory?zip=00000", htmx=True, target="results"))
        assert fragment.lstrip().startswith('<section id="results"')
        assert 'role="alert"' in fragment and "ZIP code 00000 does not exist" in fragment

    def test_an_empty_search_invites_a_search(self, world, client):
        client.login(world, "clinician")
        html = text(client.get("/directory"))
        assert "Choose a need, enter a ZIP code or type a name" in html
        assert result_names(html) == []

    def test_nobody_signed_out_searches(self, client):
        response = client.get("/directory?zip=90011")
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        response = client.get("/directory?zip=90011", htmx=True, target="results")
        assert response.status_code == 401 and response.headers["HX-Redirect"] == "/login"


class TestReferralForm:
    def test_the_search_starts_from_the_patients_zip_age_and_language(self, world, client):
        add(world, "Near pantry", "90012")
        add(world, "Far pantry", "94110")
        add(world, "English-only pantry", "90012", languages=["en"])
        add(world, "Senior meals", "90012", minimum_age=60)
        patient = make_patient(world, zip_code="90011")
        client.login(world, "clinician")
        html = text(client.get(f"/patients/{patient.id}/referrals/new"))
        assert 'id="zip" name="zip" type="text" value="90011"' in html
        assert 'id="age" name="age" type="number" value="9"' in html
        assert '<option value="es" selected>' in html
        listed, _, other_languages = html.partition('class="other-languages"')
        assert result_names(listed) == ["Near pantry"]
        assert result_names(other_languages) == ["English-only pantry"]

    def test_changing_the_search_refreshes_the_list_in_place(self, world, client):
        add(world, "Near pantry", "90012")
        add(world, "Far pantry", "94110")
        patient = make_patient(world, zip_code="90011")
        client.login(world, "clinician")
        url = f"/patients/{patient.id}/referrals/new?fragment=services"
        fragment = text(client.get(url + "&zip=94103&radius=5&language=&age=", htmx=True))
        assert fragment.lstrip().startswith('<div id="services"')
        assert result_names(fragment) == ["Far pantry"]
        fragment = text(client.get(url + "&zip=99999&language=es", htmx=True))
        assert "ZIP code 99999 does not exist" in fragment

    def test_without_javascript_the_search_button_redraws_the_form(self, world, client):
        add(world, "Far pantry", "94110")
        patient = make_patient(world, zip_code="90011")
        client.login(world, "clinician")
        client.get(f"/patients/{patient.id}/referrals/new")
        form = referral_form(world, note="Keep this", zip="94110", radius="10", language="")
        response = client.post(
            f"/patients/{patient.id}/referrals", {**form, "find_services": "y", "age": ""}
        )
        html = text(response)
        assert response.status_code == 200 and "Keep this" in html
        assert "Far pantry" in result_names(html)
