"""The exchange as an intermediary: it sends one of our CBOs a referral another system made
(its ServiceRequest `basedOn` the original, its Task `partOf` the original). It lands in the
CBO's inbox like any other, and the exchange follows our Task's moves back."""

from __future__ import annotations

import json
import uuid

import requests

from referrals.db import db
from referrals.directory.service import register_organization
from referrals.fhir.oauth import register_client
from referrals.loop.models import Referral
from tests.fhir.test_api import get
from tests.fhir.test_oauth import assertion, jwks, token_form
from tests.fhir.test_transaction import entry, referral_bundle
from tests.helpers import SYSTEM, World, move

HIE = "https://hie.example.org/fhir"


def exchange_token(app, world: World) -> str:
    register_organization(SYSTEM, name="Bay Area HIE", kind="exchange", hipaa_covered=True)
    client = register_client(
        SYSTEM,
        name="Bay Area HIE referral relay",
        org_name="Bay Area HIE",
        jwks=jwks(),
        scopes="system/*.read system/*.write",
    )
    answer = app.test_client().post(
        "/oauth/token",
        data=token_form(assertion(client.client_id), scope="system/*.read system/*.write"),
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["access_token"]


def relayed(world: World) -> dict:
    """An Oakland clinic's food referral, as the exchange relays it to our food bank."""
    bundle = referral_bundle(world, tag="HIE-77")
    request = entry(bundle, "ServiceRequest")["resource"]
    request["intent"] = "original-order"
    request["basedOn"] = [{"reference": f"{HIE}/ServiceRequest/orig-77"}]
    request["requester"] = {"display": "Dr. Lee, Oakland Family Clinic"}
    task = entry(bundle, "Task")["resource"]
    task["partOf"] = [{"reference": f"{HIE}/Task/orig-task-77"}]
    task["status"] = "received"
    task["requester"] = {"reference": f"{HIE}/Organization/oakland-family-clinic"}
    return bundle


def test_a_relayed_referral_lands_in_the_inbox_and_its_moves_flow_back(
    app, world: World, client, live_url: str
) -> None:
    """Over real HTTP, as the exchange's system would call us."""
    bearer = exchange_token(app, world)
    sent = requests.post(
        f"{live_url}/fhir",
        data=json.dumps(relayed(world)),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert sent.status_code == 200, sent.text
    ids = {
        e["response"]["location"].split("/")[0]: e["response"]["location"].split("/")[1]
        for e in sent.json()["entry"]
    }
    db.session.remove()

    client.login(world, "food")
    assert "Lucia M Reyes" in client.get("/inbox").get_data(as_text=True)
    page = client.get(f"/referrals/{ids['ServiceRequest']}").get_data(as_text=True)
    assert "Dr. Lee, Oakland Family Clinic, Bay Area HIE" in page

    request = get(app, f"/fhir/ServiceRequest/{ids['ServiceRequest']}", bearer).get_json()
    assert request["basedOn"] == [{"reference": f"{HIE}/ServiceRequest/orig-77"}]
    assert request["intent"] == "original-order"
    task = get(app, f"/fhir/Task/{ids['Task']}", bearer).get_json()
    assert task["partOf"] == [{"reference": f"{HIE}/Task/orig-task-77"}]
    since = task["meta"]["lastUpdated"]

    # The food bank accepts in its inbox; the exchange, polling, sees it.
    move(world, "food", uuid.UUID(ids["ServiceRequest"]), "accept")
    changed = get(app, f"/fhir/Task?_lastUpdated=gt{since}", bearer).get_json()
    assert [e["resource"]["status"] for e in changed["entry"]] == ["accepted"]
    assert changed["entry"][0]["resource"]["partOf"][0]["reference"].endswith("orig-task-77")
    db.session.remove()
    referral = db.session().get(Referral, uuid.UUID(ids["ServiceRequest"]))
    assert referral.requester_org.name == "Bay Area HIE"
    assert referral.patient.organization.name == "Bay Area HIE"
