"""The SDOH Clinical Care IG's own example referral is accepted: its Patient, food insecurity
Condition, disclosure Consent, food pantry ServiceRequest and referral Task (tests/fhir/ig_examples,
converted from the IG's FSH; see the README there), posted by a clinic as one transaction Bundle,
reach the food bank's inbox and its Task poll, and a retry of the same Bundle creates nothing new.

The examples are posted as published, but for what must point at our data:
- Task.owner is the food bank, ServiceRequest.performer its service, and the Consent names the
  food bank as its recipient (provision.actor, role IRCP; the IG's example has no provision);
- references between the five resources point at the entries' urn:uuid fullUrls; references to
  the IG's other examples (the practitioner, the payer, the screening observation), which are
  neither in the Bundle nor on our server, are made absolute on the IG's base, as a sender's
  references to its own server are;
- the Condition, Consent, ServiceRequest and Task get an identifier (the example's id, under a
  sender's system) so that a retry is a conditional create; the Patient has its own;
- Task.status is requested: the IG's only referral Task for this ServiceRequest shows it after
  the recipient accepted it, and a referral is sent requested.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from referrals.fhir.profiles import check
from tests.fhir.test_api import get
from tests.fhir.test_oauth import assertion, register, token_form
from tests.helpers import World

FHIR_JSON = "application/fhir+json"
EXAMPLES = Path(__file__).parent / "ig_examples"
IG_BASE = "http://hl7.org/fhir/us/sdoh-clinicalcare/"
SENDER_IDS = "http://example.org/sdohcc-ig-examples"
SNOMED = "http://snomed.info/sct"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
FOOD_PANTRY_APPLICATION = "467771000124109"

# In the order the Bundle carries them: what is referenced comes first.
FILES = {
    "Patient": "Patient-pat-53234.json",
    "Condition": "Condition-SDOHCC-ConditionFoodInsecurityExample.json",
    "Consent": "Consent-SDOHCC-ConsentInformationDisclosureExample.json",
    "ServiceRequest": (
        "ServiceRequest-SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample.json"
    ),
    "Task": "Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json",
}


def example(resource_type: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / FILES[resource_type]).read_text())


# --- the IG's examples against our profile checks ----------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize("resource_type", list(FILES))
def test_the_ig_example_passes_our_profile_checks(resource_type: str) -> None:
    resource = example(resource_type)
    assert resource["resourceType"] == resource_type
    assert check(resource) == []


# --- the example referral, posted as a transaction ---------------------------------------------


def _point_references(value: Any, full_urls: dict[str, str]) -> None:
    """References to the Bundle's resources become their fullUrls; other relative references
    (the IG's examples that are not sent) become absolute on the IG's base."""
    if isinstance(value, list):
        for item in value:
            _point_references(item, full_urls)
    elif isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str):
            if reference in full_urls:
                value["reference"] = full_urls[reference]
            elif "://" not in reference and not reference.startswith(("#", "urn:")):
                value["reference"] = IG_BASE + reference
        for item in value.values():
            _point_references(item, full_urls)


def referral_bundle(world: World) -> dict[str, Any]:
    food = world.orgs["food"].id
    resources = {kind: example(kind) for kind in FILES}
    full_urls = {
        f"{kind}/{resource['id']}": f"urn:uuid:{uuid.uuid4()}"
        for kind, resource in resources.items()
    }
    for resource in resources.values():
        _point_references(resource, full_urls)

    # What must point at our data: the recipient, its service, the consent's recipient.
    task, request, consent = resources["Task"], resources["ServiceRequest"], resources["Consent"]
    task["owner"] = {"reference": f"Organization/{food}"}
    task["status"] = "requested"
    request["performer"] = [{"reference": f"HealthcareService/{world.service_ids['food']}"}]
    consent["provision"] = {
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": PARTICIPATION_TYPE,
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "reference": {"reference": f"Organization/{food}"},
            }
        ]
    }

    entries = []
    for kind, resource in resources.items():
        if not resource.get("identifier"):
            resource["identifier"] = [{"system": SENDER_IDS, "value": resource["id"]}]
        identifier = resource["identifier"][0]
        entries.append(
            {
                "fullUrl": full_urls[f"{kind}/{resource['id']}"],
                "resource": resource,
                "request": {
                    "method": "POST",
                    "url": kind,
                    "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}",
                },
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def clinic_token(app, world: World) -> str:
    client = register(world, "clinic", scopes=["system/*.read", "system/*.write"])
    response = app.test_client().post(
        "/oauth/token",
        data=token_form(assertion(client.client_id), scope="system/*.write system/*.read"),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def food_token(app, world: World) -> str:
    client = register(world, "food", scopes=["system/*.read"])
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope="system/*.read")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def post_bundle(app, bundle: dict[str, Any], bearer: str):
    return app.test_client().post(
        "/fhir",
        data=json.dumps(bundle),
        headers={"Authorization": f"Bearer {bearer}", "Accept": FHIR_JSON},
        content_type=FHIR_JSON,
    )


def created_ids(response, expected_status: str) -> dict[str, str]:
    """The id of each entry's resource from a transaction-response, checking each entry's status
    and location (Type/id, with /_history/n for the versioned Task; relative or absolute)."""
    body = response.get_json()
    assert response.status_code == 200, json.dumps(body, indent=1)
    assert response.mimetype == FHIR_JSON
    assert body["resourceType"] == "Bundle" and body["type"] == "transaction-response"
    assert len(body["entry"]) == len(FILES), json.dumps(body, indent=1)
    ids = {}
    for kind, entry in zip(FILES, body["entry"], strict=True):
        answer = entry["response"]
        assert answer["status"].startswith(expected_status), (kind, answer)
        found = re.fullmatch(rf"(?:.*/)?{kind}/([^/]+)(?:/_history/\d+)?", answer["location"])
        assert found, (kind, answer)
        ids[kind] = found.group(1)
    return ids


def inbox_rows(client) -> list[str]:
    response = client.get("/inbox")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    return re.findall(r'<tr id="task-[^"]+".*?</tr>', html, re.S)


def name_in_use() -> tuple[str, str]:
    """The example Patient's name without an end to its period: COLIN V. BAXTER (ABBAS until
    2020-07-22)."""
    current = [n for n in example("Patient")["name"] if "end" not in n.get("period", {})]
    assert len(current) == 1
    return current[0]["given"][0], current[0]["family"]


def test_the_ig_example_referral_reaches_the_food_bank_inbox(app, world: World, client) -> None:
    response = post_bundle(app, referral_bundle(world), clinic_token(app, world))
    ids = created_ids(response, "201")

    client.login(world, "food")
    rows = inbox_rows(client)
    assert len(rows) == 1
    row = rows[0]
    given, family = name_in_use()
    assert given.lower() in row.lower() and family.lower() in row.lower(), row
    assert "Food insecurity" in row and "Sunrise Pediatrics" in row, row

    link = re.search(r'href="(/referrals/[^"]+)"', row)
    assert link, row
    page = client.get(link.group(1))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert family.lower() in html.lower()
    assert "Food boxes (Community Food Bank)" in html  # the service the ServiceRequest names
    assert "Food insecurity" in html
    # The IG's Consent (given 2021-05-01) is the consent on record, not "not needed".
    assert "Not needed (HIPAA-covered recipient)" not in html
    assert "May 1, 2021" in html
    assert f'id="task-{ids["Task"]}"' in row  # the row is the Task the transaction created


def test_the_recipient_polls_the_ig_example_task_with_its_service_request(
    app, world: World
) -> None:
    ids = created_ids(post_bundle(app, referral_bundle(world), clinic_token(app, world)), "201")

    owner = f"Organization/{world.orgs['food'].id}"
    response = get(app, f"/fhir/Task?owner={owner}&_include=Task:focus", food_token(app, world))
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    matches = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    includes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [task["id"] for task in matches] == [ids["Task"]]
    task = matches[0]
    assert task["status"] == "requested"
    assert task["intent"] == "order"
    assert {c["code"] for c in task["code"]["coding"]} == {"fulfill"}
    assert task["focus"]["reference"].endswith(f"ServiceRequest/{ids['ServiceRequest']}")
    assert task["for"]["reference"].endswith(f"Patient/{ids['Patient']}")
    assert task["owner"]["reference"].endswith(owner)

    request = next(r for r in includes if r["resourceType"] == "ServiceRequest")
    assert request["id"] == ids["ServiceRequest"]
    published = example("ServiceRequest")
    assert request["status"] == published["status"] and request["intent"] == published["intent"]
    assert {(c["system"], c["code"]) for c in request["code"]["coding"]} >= {
        (SNOMED, FOOD_PANTRY_APPLICATION)
    }
    categories = {(c["system"], c["code"]) for cat in request["category"] for c in cat["coding"]}
    assert {(SNOMED, "410606002"), (SDOHCC_CODES, "food-insecurity")} <= categories
    assert [r["reference"].rsplit("/", 2)[-2:] for r in request["reasonReference"]] == [
        ["Condition", ids["Condition"]]
    ]
    assert request["subject"]["reference"].endswith(f"Patient/{ids['Patient']}")


def test_a_retried_ig_example_bundle_creates_nothing_new(app, world: World, client) -> None:
    bundle = referral_bundle(world)
    bearer = clinic_token(app, world)
    first = created_ids(post_bundle(app, copy.deepcopy(bundle), bearer), "201")

    again = created_ids(post_bundle(app, copy.deepcopy(bundle), bearer), "200")
    assert again == first

    client.login(world, "food")
    assert len(inbox_rows(client)) == 1
    owner = f"Organization/{world.orgs['food'].id}"
    tasks = get(app, f"/fhir/Task?owner={owner}", food_token(app, world)).get_json()
    assert [e["resource"]["id"] for e in tasks["entry"]] == [first["Task"]]
