"""Recipients work referrals through the API: poll their Tasks, then move them with versioned
updates that run the same lifecycle, audit and family notices as the pages."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.jobs import Job
from referrals.loop.models import ReferralEvent
from tests.fhir.test_api import get, outcome, token
from tests.helpers import World, make_patient, send

FHIR_JSON = "application/fhir+json"
WRITE = "system/*.read system/Task.write"


def put(app, url: str, body, bearer: str, **headers):
    headers = {"Authorization": f"Bearer {bearer}", **headers}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    content_type = headers.pop("content_type", FHIR_JSON)
    return app.test_client().put(url, data=data, headers=headers, content_type=content_type)


def current(app, task_id, bearer) -> dict:
    response = get(app, f"/fhir/Task/{task_id}", bearer)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def moved(task: dict, status: str, **elements) -> dict:
    return {**task, "status": status, **elements}


def test_the_recipient_polls_its_new_tasks(app, world: World) -> None:
    first = send(world, make_patient(world))
    send(world, make_patient(world, given_name="Leo", birth_date="2016-02-02"), "housing")
    bearer = token(app, world, "food")
    owner = f"Organization/{world.orgs['food'].id}"
    response = get(app, f"/fhir/Task?owner={owner}&status=requested&_include=Task:focus", bearer)
    assert response.status_code == 200
    bundle = Bundle.model_validate(response.get_json())
    matches = [e for e in bundle.entry if e.search.mode == "match"]
    includes = [e for e in bundle.entry if e.search.mode == "include"]
    assert bundle.total == 1 and len(matches) == 1
    assert matches[0].resource.id == str(first.task.id)
    assert includes[0].resource.__resource_type__ == "ServiceRequest"
    # Polling for changes since now finds nothing new.
    since = response.get_json()["entry"][0]["resource"]["meta"]["lastUpdated"]
    later = get(app, f"/fhir/Task?owner={owner}&_lastUpdated=gt{since}", bearer).get_json()
    assert later["total"] == 0


def test_search_pages_with_next_links(app, world: World) -> None:
    for n in range(3):
        send(world, make_patient(world, given_name=f"P{n}"))
    bearer = token(app, world, "food")
    page = get(app, "/fhir/Task?_count=2", bearer).get_json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = get(app, next_url.split("/fhir", 1)[1].join(["/fhir", ""]), bearer).get_json()
    assert len(rest["entry"]) == 1


def test_an_unknown_search_parameter_is_400(app, world: World) -> None:
    response = get(app, "/fhir/Task?colour=blue", token(app, world, "food"))
    assert response.status_code == 400
    assert "Unknown search parameter colour" in outcome(response).issue[0].diagnostics


def test_accept_start_complete_through_the_api(app, world: World) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", WRITE)
    url = f"/fhir/Task/{referral.task.id}"
    task = current(app, referral.task.id, bearer)
    response = put(app, url, moved(task, "accepted"), bearer, **{"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "accepted"
    assert response.headers["ETag"] == 'W/"2"'
    task = response.get_json()
    task = put(app, url, moved(task, "in-progress"), bearer).get_json()
    done = moved(
        task,
        "completed",
        output=[
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                            "SDOHCC-CodeSystemTemporaryCodes",
                            "code": "resulting-activity",
                        }
                    ]
                },
                "valueCodeableConcept": {
                    "coding": [{"system": "http://snomed.info/sct", "code": "710925007"}]
                },
            }
        ],
    )
    response = put(app, url, done, bearer)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "completed"
    procedure = get(app, f"/fhir/Procedure/{referral.task.id}", bearer).get_json()
    assert procedure["code"]["coding"][0]["code"] == "710925007"
    # The same path as the pages: a timeline event, an audit entry and a family notice each.
    db.session.remove()
    session = db.session()
    actions = [
        e.action
        for e in session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral.id)
            .order_by(ReferralEvent.at)
        )
    ]
    assert actions == ["send", "accept", "start", "complete"]
    assert session.scalar(select(Job).where(Job.payload.is_not(None)).limit(1)) is not None
    audited = {e.action for e in session.scalars(select(AuditEvent))}
    assert {"referral.accept", "referral.start", "referral.complete"} <= audited


def test_a_stale_version_is_412_and_nothing_changes(app, world: World) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", WRITE)
    task = current(app, referral.task.id, bearer)
    response = put(
        app,
        f"/fhir/Task/{referral.task.id}",
        moved(task, "accepted"),
        bearer,
        **{"If-Match": 'W/"7"'},
    )
    assert response.status_code == 412
    assert "is at version 1, not 7" in outcome(response).issue[0].diagnostics
    assert current(app, referral.task.id, bearer)["status"] == "requested"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        ("{not json", FHIR_JSON, 400, "not JSON"),
        ({"resourceType": "Patient"}, FHIR_JSON, 400, "Expected a Task, got Patient"),
        ({"resourceType": "Task"}, "text/plain", 415, "application/fhir+json"),
        ({"resourceType": "Task", "status": 7, "intent": "order"}, FHIR_JSON, 400, "Task.status"),
    ],
)
def test_bad_bodies_get_an_outcome(app, world, body, content_type, status, words) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", WRITE)
    response = put(app, f"/fhir/Task/{referral.task.id}", body, bearer, content_type=content_type)
    assert response.status_code == status
    assert words in outcome(response).issue[0].diagnostics
    assert current(app, referral.task.id, bearer)["status"] == "requested"


def test_a_move_the_lifecycle_forbids_is_422(app, world: World) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", WRITE)
    task = current(app, referral.task.id, bearer)
    response = put(app, f"/fhir/Task/{referral.task.id}", moved(task, "completed"), bearer)
    assert response.status_code == 422
    assert current(app, referral.task.id, bearer)["status"] == "requested"


def test_declining_needs_a_reason(app, world: World) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", WRITE)
    task = current(app, referral.task.id, bearer)
    url = f"/fhir/Task/{referral.task.id}"
    assert put(app, url, moved(task, "rejected"), bearer).status_code == 422
    response = put(
        app, url, moved(task, "rejected", statusReason={"text": "We closed the pantry."}), bearer
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["statusReason"]["text"].endswith("We closed the pantry.")


def test_a_read_only_token_cannot_update(app, world: World) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food")
    task = current(app, referral.task.id, bearer)
    response = put(app, f"/fhir/Task/{referral.task.id}", moved(task, "accepted"), bearer)
    assert response.status_code == 403
    assert "do not allow write of Task" in outcome(response).issue[0].diagnostics
    assert current(app, referral.task.id, bearer)["status"] == "requested"


def test_another_organisation_cannot_update(app, world: World) -> None:
    referral = send(world, make_patient(world))
    mine = current(app, referral.task.id, token(app, world, "food"))
    response = put(
        app,
        f"/fhir/Task/{referral.task.id}",
        moved(mine, "accepted"),
        token(app, world, "housing", WRITE),
    )
    assert response.status_code == 404
    assert "does not exist" in outcome(response).issue[0].diagnostics
    assert current(app, referral.task.id, token(app, world, "food"))["status"] == "requested"


def test_a_body_over_the_limit_is_413(app, world: World) -> None:
    referral = send(world, make_patient(world))
    bearer = token(app, world, "food", WRITE)
    huge = json.dumps({"resourceType": "Task", "note": [{"text": "x" * (1024 * 1024)}]})
    response = put(app, f"/fhir/Task/{referral.task.id}", huge, bearer)
    assert response.status_code == 413
    assert outcome(response).issue[0].diagnostics == "The body is over 1024 KiB."


def test_tasks_come_oldest_change_first_and_only_that_sort_is_offered(app, world: World) -> None:
    first = send(world, make_patient(world))
    second = send(world, make_patient(world, given_name="Leo", birth_date="2016-02-02"))
    bearer = token(app, world, "food")
    page = get(app, "/fhir/Task?_sort=_lastUpdated", bearer).get_json()
    assert [e["resource"]["id"] for e in page["entry"]] == [str(first.task.id), str(second.task.id)]
    refused = get(app, "/fhir/Task?_sort=-_lastUpdated", bearer)
    assert refused.status_code == 400
    assert "Only _sort=_lastUpdated" in outcome(refused).issue[0].diagnostics
