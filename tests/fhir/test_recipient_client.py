"""The SDOHCC "Direct Referral Light" recipient, played by a third-party FHIR client library
(`fhirclient`, SMART on FHIR's Python client) against the app on a live port: find the food
bank's new Task, accept and start it, record a Procedure, complete the Task with an output that
references it. Then the referring clinician sees it done, as with the pages. And POST
/fhir/Procedure's refusals, through the test client."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator

import pytest
import requests
from fhirclient import client as fhir_client
from fhirclient.models.codeableconcept import CodeableConcept
from fhirclient.models.fhirreference import FHIRReference
from fhirclient.models.patient import Patient
from fhirclient.models.procedure import Procedure
from fhirclient.models.servicerequest import ServiceRequest
from fhirclient.models.task import Task, TaskOutput
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.jobs import Job
from referrals.loop.models import ReferralEvent
from referrals.loop.models import Task as TaskRow
from referrals.loop.service import NOTICE_JOB
from tests.fhir.test_api import outcome
from tests.fhir.test_oauth import assertion, register, token_form
from tests.helpers import WebClient, World, make_patient, move, send

FHIR_JSON = "application/fhir+json"
SNOMED = "http://snomed.info/sct"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
RECIPIENT_SCOPES = ["system/*.read", "system/Task.write", "system/Procedure.write"]
WRITE = " ".join(RECIPIENT_SCOPES)
FOOD = "710925007"  # Provision of food


@pytest.fixture
def live_url(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on a free port, its public base URL the live one (token audience, references)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = app.config["SETTINGS"]
    monkeypatch.setitem(app.config, "SETTINGS", dataclasses.replace(settings, public_base_url=url))
    thread = threading.Thread(target=server.serve_forever, name="fhir-live", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def bearer(app: Flask, world: World, org: str, scope: str = WRITE) -> str:
    client = register(world, org, scopes=RECIPIENT_SCOPES)
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope=scope)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def resulting_activity() -> CodeableConcept:
    return CodeableConcept(
        {"coding": [{"system": SDOHCC_CODES, "code": "resulting-activity"}]}, strict=True
    )


# --- the recipient, as fhirclient ---------------------------------------------------------------


def test_a_fhirclient_recipient_closes_the_loop(app: Flask, world: World, live_url: str) -> None:
    referral = send(world, make_patient(world))
    referral_id, task_id, patient_id = referral.id, referral.task.id, referral.patient_id
    food_org = world.orgs["food"].id
    # The token, as a backend client gets it: a signed assertion for the live token URL.
    client = register(world, "food", scopes=RECIPIENT_SCOPES)
    db.session.remove()
    answer = requests.post(
        f"{live_url}/oauth/token",
        data=token_form(assertion(client.client_id), scope=WRITE),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    access_token = answer.json()["access_token"]
    assert answer.json()["scope"].split() == RECIPIENT_SCOPES

    smart = fhir_client.FHIRClient(
        settings={"app_id": "food-bank-recipient", "api_base": f"{live_url}/fhir"}
    )
    server = smart.server
    # fhirclient 4.4.0 signs requests only through an OAuth2 `auth` it sets up itself from the
    # CapabilityStatement (authorization-code flow); a backend client's bearer token goes on
    # its requests.Session, which every request (GET, PUT, POST) goes through.
    server.session.headers["Authorization"] = f"Bearer {access_token}"

    # 1. Poll: the food bank's requested Tasks.
    search = Task.where(struct={"owner": f"Organization/{food_org}", "status": "requested"})
    found = list(search.perform_resources_iter(server))
    assert [t.id for t in found] == [str(task_id)]
    task = found[0]
    assert task.focus.reference == f"{live_url}/fhir/ServiceRequest/{referral_id}"
    # What the Task points at parses too (fhirclient's models are strict).
    request = ServiceRequest.read(str(referral_id), server)
    assert request.subject.reference == f"{live_url}/fhir/Patient/{patient_id}"
    assert Patient.read(str(patient_id), server).name[0].given == ["Maya"]

    # 2. Accept, then start: read, change the status, update (PUT).
    for status in ("accepted", "in-progress"):
        task = Task.read(str(task_id), server)
        task.status = status
        updated = task.update()
        assert updated["status"] == status, updated

    # 3. Record what was done: an SDOHCC-Procedure basedOn the ServiceRequest.
    procedure = Procedure(
        {
            "resourceType": "Procedure",
            "meta": {
                "profile": [
                    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Procedure"
                ]
            },
            "status": "completed",
            "code": {"coding": [{"system": SNOMED, "code": FOOD, "display": "Provision of food"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "basedOn": [{"reference": f"ServiceRequest/{referral_id}"}],
            "performedDateTime": "2026-11-24T10:00:00-08:00",
            "note": [{"text": "Two weeks of groceries."}],
        },
        strict=True,
    )
    created = procedure.create(server)
    assert created["resourceType"] == "Procedure" and created["id"] == str(task_id)
    recorded = Procedure.read(str(task_id), server)
    assert recorded.code.coding[0].code == FOOD
    assert recorded.basedOn[0].reference == f"{live_url}/fhir/ServiceRequest/{referral_id}"

    # 4. Complete, with an output that references the Procedure (as the IG's examples do).
    # Recording the Procedure changed the Task (it now has that output): read it again.
    task = Task.read(str(task_id), server)
    assert task.status == "in-progress"
    task.status = "completed"
    output = TaskOutput()
    output.type = resulting_activity()
    output.valueReference = FHIRReference({"reference": f"Procedure/{task_id}"})
    task.output = [output]
    done = task.update()
    assert done["status"] == "completed", done
    assert (
        done["output"][0]["valueReference"]["reference"] == f"{live_url}/fhir/Procedure/{task_id}"
    )

    # The referring clinician sees it done, on the referral's page.
    db.session.remove()
    page = WebClient(app.test_client())
    page.login(world, "clinician")
    html = page.get(f"/referrals/{referral_id}").get_data(as_text=True)
    assert "Completed" in html
    assert "Provision of food" in html
    assert "Two weeks of groceries." in html
    # The same path as the pages: timeline, audit trail and a family notice per move.
    session = db.session()
    events = list(
        session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral_id)
            .order_by(ReferralEvent.at)
        )
    )
    assert [e.action for e in events] == ["send", "accept", "start", "complete"]
    notices = {
        j.payload["event_id"] for j in session.scalars(select(Job).where(Job.kind == NOTICE_JOB))
    }
    assert {str(e.id) for e in events if e.action != "send"} <= notices
    audited = {e.action for e in session.scalars(select(AuditEvent))}
    assert {"procedure.create", "referral.accept", "referral.start", "referral.complete"} <= audited


# --- POST /fhir/Procedure ------------------------------------------------------------------------


def procedure_body(referral, code: str = FOOD, **elements) -> dict:
    body = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": f"Patient/{referral.patient_id}"},
        "basedOn": [{"reference": f"ServiceRequest/{referral.id}"}],
    }
    body.update(elements)
    return {k: v for k, v in body.items() if v is not None}


def post(app: Flask, body, token: str | None = None, content_type: str = FHIR_JSON):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return app.test_client().post(
        "/fhir/Procedure", data=data, headers=headers, content_type=content_type
    )


def started(world: World, service: str = "food", who: str = "food"):
    referral = send(world, make_patient(world), service)
    move(world, who, referral, "accept")
    move(world, who, referral, "start")
    return referral


def task_row(task_id) -> TaskRow:
    db.session.remove()
    return db.session().get(TaskRow, task_id)


def test_a_procedure_is_recorded_on_the_task_without_moving_it(app, world) -> None:
    referral = started(world)
    token = bearer(app, world, "food")
    body = procedure_body(
        referral,
        note=[{"text": "Two weeks of groceries."}],
        basedOn=[{"reference": f"http://127.0.0.1:5000/fhir/ServiceRequest/{referral.id}"}],
    )
    response = post(app, body, token)
    assert response.status_code == 201, response.get_json()
    resource = response.get_json()
    assert resource["id"] == str(referral.task.id)
    assert response.headers["Location"] == f"http://127.0.0.1:5000/fhir/Procedure/{resource['id']}"
    assert resource["code"]["coding"][0]["display"] == "Provision of food"
    assert resource["note"] == [{"text": "Two weeks of groceries."}]
    task = task_row(referral.task.id)
    assert (task.status, task.output_code, task.outcome_note) == (
        "in-progress",
        FOOD,
        "Two weeks of groceries.",
    )
    # A retry is the same Procedure, 200, and changes nothing.
    version = task.version
    again = post(app, body, token)
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == resource
    assert task_row(referral.task.id).version == version
    audited = db.session().scalars(
        select(AuditEvent).where(AuditEvent.action == "procedure.create")
    )
    assert len(list(audited)) == 1


def test_a_code_the_service_does_not_offer_is_422_naming_the_allowed_ones(app, world) -> None:
    referral = started(world)
    response = post(app, procedure_body(referral, "409063005"), bearer(app, world, "food"))
    assert response.status_code == 422
    assert "710925007 (Provision of food)" in outcome(response).issue[0].diagnostics
    assert task_row(referral.task.id).output_code is None


def test_another_organisations_referral_is_404(app, world) -> None:
    referral = started(world)
    housing = send(world, make_patient(world, given_name="Leo"), "housing")
    token = bearer(app, world, "food")
    response = post(app, procedure_body(housing, "710911006"), token)
    assert response.status_code == 404
    assert outcome(response).issue[0].code == "not-found"
    # The referrer does not own the Task either.
    clinic = bearer(app, world, "clinic")
    assert post(app, procedure_body(referral), clinic).status_code == 404
    denied = db.session().scalars(
        select(AuditEvent).where(
            AuditEvent.action == "procedure.create", AuditEvent.outcome == "denied"
        )
    )
    assert len(list(denied)) == 2


@pytest.mark.parametrize("status", ["in-progress", "preparation", "not-done"])
def test_a_procedure_not_completed_is_422(app, world, status) -> None:
    referral = started(world)
    response = post(app, procedure_body(referral, status=status), bearer(app, world, "food"))
    assert response.status_code == 422
    assert outcome(response).issue[0].expression == ["Procedure.status"]


def test_the_completed_tasks_own_code_is_a_200_retry(app, world) -> None:
    referral = started(world, "school", "school")
    move(world, "school", referral, "complete", output_code="410606002")
    token = bearer(app, world, "school")
    assert post(app, procedure_body(referral, "410606002"), token).status_code == 200
    # The school offers one code; another is refused before the conflict check.
    assert post(app, procedure_body(referral, "710925007"), token).status_code == 422


def test_a_different_code_on_a_completed_task_conflicts(app, world) -> None:
    from referrals.db import transaction
    from referrals.directory.models import Service

    with transaction() as session:
        service = session.get(Service, world.service_ids["food"])
        service.procedure_codes = [
            {"code": FOOD, "display": "Provision of food"},
            {"code": "1230018009", "display": "Provision of food voucher"},
        ]
    referral = started(world)
    move(world, "food", referral, "complete", output_code=FOOD)
    response = post(app, procedure_body(referral, "1230018009"), bearer(app, world, "food"))
    assert response.status_code == 409, response.get_json()
    assert outcome(response).issue[0].code == "conflict"


def test_a_read_only_token_is_403_and_no_token_401(app, world) -> None:
    referral = started(world)
    read_only = bearer(app, world, "food", "system/*.read")
    assert post(app, procedure_body(referral), read_only).status_code == 403
    response = post(app, procedure_body(referral))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert task_row(referral.task.id).output_code is None


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", FHIR_JSON, 400),
        ({"resourceType": "Task"}, FHIR_JSON, 400),
        ({"resourceType": "Procedure", "status": "completed"}, FHIR_JSON, 400),  # no subject
        ("{}", "text/plain", 415),
    ],
)
def test_bad_bodies_get_the_same_outcomes_as_task_updates(
    app, world, body, content_type, status
) -> None:
    response = post(app, body, bearer(app, world, "food"), content_type)
    assert response.status_code == status
    assert outcome(response).issue[0].severity == "error"


def test_completing_with_a_reference_to_an_unrecorded_procedure_is_422(app, world) -> None:
    referral = started(world)
    token = bearer(app, world, "food")
    task = (
        app.test_client()
        .get(f"/fhir/Task/{referral.task.id}", headers={"Authorization": f"Bearer {token}"})
        .get_json()
    )
    task["status"] = "completed"
    task["output"] = [
        {
            "type": {"coding": [{"system": SDOHCC_CODES, "code": "resulting-activity"}]},
            "valueReference": {"reference": f"Procedure/{referral.task.id}"},
        }
    ]
    response = app.test_client().put(
        f"/fhir/Task/{referral.task.id}",
        data=json.dumps(task),
        headers={"Authorization": f"Bearer {token}"},
        content_type=FHIR_JSON,
    )
    assert response.status_code == 422
    assert outcome(response).issue[0].expression == ["Task.output"]
