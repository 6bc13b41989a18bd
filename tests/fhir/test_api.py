"""The FHIR API over HTTP: the CapabilityStatement, bearer tokens from /oauth/token, reads
scoped to the client's organisation, and OperationOutcome errors."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task

from tests.fhir.test_oauth import assertion, register, token_form
from tests.helpers import World, make_patient, move, send

FHIR_JSON = "application/fhir+json"


def token(app, world: World, org: str, scope: str = "system/*.read") -> str:
    client = register(world, org)
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope=scope)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def get(app, url: str, bearer: str | None = None, **headers: str):
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return app.test_client().get(url, headers=headers)


def outcome(response) -> OperationOutcome:
    assert response.mimetype == FHIR_JSON
    return OperationOutcome.model_validate(response.get_json())


def test_metadata_is_our_capability_statement(app) -> None:
    response = get(app, "/fhir/metadata")
    assert response.status_code == 200
    assert response.mimetype == FHIR_JSON
    statement = CapabilityStatement.model_validate(response.get_json())
    assert statement.fhirVersion == "4.0.1"
    assert statement.instantiates == [
        "http://hl7.org/fhir/us/sdoh-clinicalcare/CapabilityStatement/SDOHCC-CoordinationPlatform",
        "http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/"
        "backport-subscription-server-r4",
    ]
    task = next(r for r in statement.rest[0].resource if r.type == "Task")
    assert task.supportedProfile == [
        "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
        "SDOHCC-TaskForReferralManagement"
    ]
    assert {p.name for p in task.searchParam} >= {"owner", "_lastUpdated", "status", "focus"}


def test_an_unsupported_format_is_refused(app) -> None:
    response = get(app, "/fhir/metadata?_format=xml")
    assert response.status_code == 406
    assert "_format=xml" in outcome(response).issue[0].diagnostics


def test_a_read_without_a_token_is_401(app, world: World) -> None:
    referral = send(world, make_patient(world))
    response = get(app, f"/fhir/Task/{referral.task.id}")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert outcome(response).issue[0].code == "login"


def test_the_recipient_reads_its_task_with_its_version(app, world: World) -> None:
    referral = send(world, make_patient(world))
    move(world, "food", referral, "accept")
    bearer = token(app, world, "food")
    response = get(app, f"/fhir/Task/{referral.task.id}", bearer)
    assert response.status_code == 200, response.get_json()
    task = Task.model_validate(response.get_json())
    assert task.status == "accepted"
    assert response.headers["ETag"] == f'W/"{task.meta.versionId}"'
    assert task.owner.reference.endswith(f"/Organization/{world.orgs['food'].id}")


@pytest.mark.parametrize("org", ["housing", "clinic2"])
def test_another_organisation_gets_404(app, world: World, org: str) -> None:
    referral = send(world, make_patient(world))
    response = get(app, f"/fhir/Task/{referral.task.id}", token(app, world, org))
    assert response.status_code == 404
    assert "does not exist" in outcome(response).issue[0].diagnostics


def test_the_recipient_never_reads_the_screening(app, world: World) -> None:
    from referrals.patients.screening import start_screening

    patient = make_patient(world)
    send(world, patient)
    screening = start_screening(
        world.actor("clinician"), patient.id, {"respondent": f"guardian:{patient.guardians[0].id}"}
    )
    url = f"/fhir/QuestionnaireResponse/{screening.id}"
    assert get(app, url, token(app, world, "food")).status_code == 404
    assert get(app, url, token(app, world, "clinic")).status_code == 200


def test_unknown_types_and_ids_are_404(app, world: World) -> None:
    bearer = token(app, world, "food")
    unknown_type = get(app, "/fhir/Spaceship/1", bearer)
    assert unknown_type.status_code == 404
    assert outcome(unknown_type).issue[0].diagnostics == "We do not serve Spaceship resources."
    bad_id = get(app, "/fhir/Task/not-a-uuid", bearer)
    assert bad_id.status_code == 404
    assert outcome(bad_id).issue[0].diagnostics == "Task/not-a-uuid does not exist."


def test_a_scope_that_does_not_cover_the_type_is_403(app, world: World) -> None:
    referral = send(world, make_patient(world))
    client = register(world, "food", scopes=["system/Patient.read"])
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope="system/Patient.read")
    )
    bearer = response.get_json()["access_token"]
    refused = get(app, f"/fhir/Task/{referral.task.id}", bearer)
    assert refused.status_code == 403
    assert "scopes do not allow read of Task" in outcome(refused).issue[0].diagnostics
