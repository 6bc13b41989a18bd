"""Our records as FHIR: each resource parses with the R4B model of its type, passes our profile
checks, and carries the codes, references and privacy markings the Gravity IG asks for."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.consent import Consent as FhirConsent
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location as FhirLocation
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization as FhirOrganization
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task as FhirTask
from sqlalchemy import select

from referrals.auth.models import Membership, User
from referrals.db import db
from referrals.directory.models import Address, Location, Schedule, ServiceAtLocation
from referrals.fhir import mapping, profiles
from referrals.loop.from_screening import refer_for_needs
from referrals.loop.models import Referral
from referrals.patients.models import Consent, Screening
from referrals.patients.screening import (
    complete_screening,
    save_answers,
    start_screening,
)
from tests.helpers import World, make_patient, move, send

BASE = "https://referrals.example/fhir"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"

AHC_FOOD_AND_HOUSING = {
    "q-71802-3": "LA31994-9",
    "q-88122-7": "LA28397-0",
    "q-88123-5": "LA6729-3",
}


def valid(model: Any, resource: dict) -> Any:
    """Structurally valid R4(B) and true to the profiles it claims."""
    parsed = model.model_validate(resource)
    assert profiles.check(resource) == [], profiles.check(resource)
    return parsed


def codes(concepts: list[dict] | dict, system: str) -> list[str]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    return [c["code"] for cc in concepts for c in cc.get("coding", []) if c["system"] == system]


def finished_screening(world: World, patient) -> Screening:
    guardian = patient.guardians[0]
    actor = world.actor("clinician")
    screening = start_screening(
        actor, patient.id, {"instrument": "ahc-hrsn", "respondent": f"guardian:{guardian.id}"}
    )
    save_answers(actor, screening.id, AHC_FOOD_AND_HOUSING, rest_negative=True)
    complete_screening(actor, screening.id, {})
    return reload_screening(screening.id)


def reload_screening(screening_id) -> Screening:
    db.session.remove()
    return db.session().get(Screening, screening_id)


def refer_food(world: World, patient, screening: Screening) -> Referral:
    food = next(n for n in screening.needs if n.domain == "food-insecurity")
    guardian = patient.guardians[0]
    _, referrals = refer_for_needs(
        world.actor("clinician"),
        screening.id,
        {
            f"need-{food.id}": "help-now",
            f"service-{food.id}": str(world.service_ids["food"]),
            "consent_by": f"guardian:{guardian.id}",
            "consent_method": "verbal",
        },
    )
    return reload(referrals[0].id)


def reload(referral_id) -> Referral:
    db.session.remove()
    return db.session().get(Referral, referral_id)


# --- parties and directory --------------------------------------------------------------------


def test_patient_is_us_core_with_guardian_language_and_mrn(world: World) -> None:
    patient = make_patient(world, mrn="A-1001", zip_code="94607", phone="+15105550100")
    resource = mapping.patient_to_fhir(patient, BASE)
    parsed = valid(FhirPatient, resource)
    assert parsed.id == str(patient.id)
    assert resource["meta"]["profile"] == [profiles.US_CORE_PATIENT]
    mrn = next(i for i in resource["identifier"] if i["value"] == "A-1001")
    assert mrn["system"].startswith(f"{BASE}/sid/mrn") and mrn["type"]["coding"][0]["code"] == "MR"
    assert resource["name"][0] == {"use": "official", "family": "Lopez", "given": ["Maya"]}
    assert resource["communication"][0]["language"]["coding"][0] == {
        "system": "urn:ietf:bcp:47",
        "code": "es",
        "display": "Spanish",
    }
    assert resource["address"] == [{"postalCode": "94607", "country": "US"}]
    contact = resource["contact"][0]
    assert contact["name"]["text"] == "Ana Lopez"
    assert codes(contact["relationship"], mapping.ROLE_CODE) == ["MTH"]
    assert contact["telecom"][0]["value"] == "+15105550142"


def test_organizations_carry_their_kind(world: World) -> None:
    for key, expected in (("clinic", "prov"), ("food", "cbo"), ("school", "edu")):
        resource = mapping.organization_to_fhir(world.orgs[key], BASE)
        valid(FhirOrganization, resource)
        assert codes(resource["type"], profiles.ORGANIZATION_TYPE) == [expected]
        assert resource["active"] is True and resource["name"] == world.orgs[key].name


def test_practitioner_role_for_a_membership(world: World) -> None:
    session = db.session()
    user = session.scalar(select(User).where(User.email == world.emails["clinician"]))
    membership = session.scalar(select(Membership).where(Membership.user_id == user.id))
    resource = mapping.practitioner_role_to_fhir(membership, BASE)
    valid(PractitionerRole, resource)
    assert resource["organization"]["reference"] == f"{BASE}/Organization/{world.orgs['clinic'].id}"
    assert resource["practitioner"] == {"display": user.name}


def test_healthcare_service_and_location_from_the_directory(world: World) -> None:
    session = db.session()
    service = session.merge(world.services["food"])
    location = Location(
        organization_id=service.organization_id,
        name="Food Bank Warehouse",
        latitude=37.8,
        longitude=-122.27,
        addresses=[
            Address(
                address_1="100 Main St",
                city="Oakland",
                state_province="CA",
                postal_code="94607",
            )
        ],
    )
    session.add(location)
    session.flush()
    service.service_at_locations.append(ServiceAtLocation(location_id=location.id))
    service.schedules.append(
        Schedule(freq="WEEKLY", byday="MO,WE", opens_at="09:00", closes_at="17:00")
    )
    session.commit()

    resource = mapping.healthcare_service_to_fhir(service, BASE)
    valid(HealthcareService, resource)
    assert codes(resource["category"], SDOHCC_CODES) == ["food-insecurity"]
    assert codes(resource["type"], "http://snomed.info/sct") == ["710925007"]
    assert resource["providedBy"]["reference"] == f"{BASE}/Organization/{service.organization_id}"
    assert resource["location"][0]["reference"] == f"{BASE}/Location/{location.id}"
    assert resource["availableTime"] == [
        {
            "daysOfWeek": ["mon", "wed"],
            "availableStartTime": "09:00:00",
            "availableEndTime": "17:00:00",
        }
    ]
    assert {c["coding"][0]["code"] for c in resource["communication"]} == {"en", "es"}

    place = mapping.location_to_fhir(location, BASE)
    valid(FhirLocation, place)
    assert place["address"]["postalCode"] == "94607" and place["address"]["line"] == ["100 Main St"]
    assert place["position"] == {"latitude": 37.8, "longitude": -122.27}


# --- the screening ----------------------------------------------------------------------------


def test_questionnaire_response_lists_answers_by_loinc_code(world: World) -> None:
    patient = make_patient(world)
    screening = finished_screening(world, patient)
    resource = mapping.questionnaire_response_to_fhir(screening, BASE)
    valid(QuestionnaireResponse, resource)
    assert resource["questionnaire"] == "http://loinc.org/q/96777-8"
    assert resource["status"] == "completed"
    assert resource["meta"]["versionId"] == str(screening.version)
    items = {item["linkId"]: item for item in resource["item"]}
    assert items["88122-7"]["answer"][0]["valueCoding"]["code"] == "LA28397-0"
    assert items["88122-7"]["answer"][0]["valueCoding"]["system"] == "http://loinc.org"
    assert items["95614-4"]["answer"] == [{"valueInteger": 4}]  # the safety score
    # a guardian answered: a contained RelatedPerson is the source
    assert resource["source"]["reference"] == "#respondent"
    assert resource["contained"][0]["name"] == [{"text": "Ana Lopez"}]


def test_an_unfinished_screening_omits_skipped_questions(world: World) -> None:
    patient = make_patient(world)
    guardian = patient.guardians[0]
    actor = world.actor("clinician")
    screening = start_screening(
        actor, patient.id, {"instrument": "hvs", "respondent": f"guardian:{guardian.id}"}
    )
    save_answers(actor, screening.id, {"q-88122-7": "LA28397-0"})
    resource = mapping.questionnaire_response_to_fhir(reload_screening(screening.id), BASE)
    valid(QuestionnaireResponse, resource)
    assert resource["status"] == "in-progress"
    assert [item["linkId"] for item in resource["item"]] == ["88122-7"]


def test_observations_mark_positive_answers_only(world: World) -> None:
    patient = make_patient(world)
    screening = finished_screening(world, patient)
    by_code = {o.code: o for o in screening.observations}

    food = mapping.observation_to_fhir(by_code["88122-7"], BASE, screening)
    valid(Observation, food)
    assert codes(food["category"], profiles.OBSERVATION_CATEGORY) == ["survey"]
    assert codes(food["category"], profiles.US_CORE_CATEGORY) == ["sdoh"]
    assert codes(food["category"], SDOHCC_CODES) == ["food-insecurity"]
    assert codes(food["interpretation"], profiles.INTERPRETATION) == ["POS"]
    assert food["valueCodeableConcept"]["coding"][0]["code"] == "LA28397-0"
    assert food["derivedFrom"][0]["reference"] == f"{BASE}/QuestionnaireResponse/{screening.id}"

    transport = mapping.observation_to_fhir(by_code["93030-5"], BASE)
    valid(Observation, transport)
    assert "interpretation" not in transport

    score = mapping.observation_to_fhir(by_code["95614-4"], BASE, screening)
    valid(Observation, score)
    assert score["valueInteger"] == 4 and "performer" not in score
    assert len(score["derivedFrom"]) > 1  # the QR and the four safety answers


def test_conditions_follow_the_clinicians_decision(world: World) -> None:
    patient = make_patient(world)
    screening = finished_screening(world, patient)
    food, housing = sorted(screening.needs, key=lambda n: n.domain)

    resource = mapping.condition_to_fhir(food, BASE)
    valid(Condition, resource)
    assert codes(resource["verificationStatus"], profiles.CONDITION_VERIFICATION) == ["unconfirmed"]
    assert codes(resource["category"], profiles.US_CORE_CONDITION_CATEGORY) == ["health-concern"]
    assert codes(resource["category"], profiles.CONDITION_CATEGORY) == []
    assert codes(resource["category"], profiles.US_CORE_CATEGORY) == ["sdoh"]
    assert codes(resource["category"], SDOHCC_CODES) == ["food-insecurity"]
    assert codes(resource["code"], "http://snomed.info/sct") == ["733423003"]
    assert codes(resource["code"], "http://hl7.org/fhir/sid/icd-10-cm") == ["Z59.41"]
    evidence = {d["reference"] for d in resource["evidence"][0]["detail"]}
    positive_food = {o.id for o in screening.observations if o.code in {"88122-7", "88123-5"}}
    assert {f"{BASE}/Observation/{key}" for key in positive_food} <= evidence

    refer_for_needs(
        world.actor("clinician"),
        screening.id,
        {f"need-{food.id}": "confirmed", f"need-{housing.id}": "dismissed"},
    )
    screening = reload_screening(screening.id)
    food, housing = sorted(screening.needs, key=lambda n: n.domain)
    confirmed = mapping.condition_to_fhir(food, BASE)
    refuted = mapping.condition_to_fhir(housing, BASE)
    valid(Condition, confirmed)
    valid(Condition, refuted)
    assert codes(confirmed["verificationStatus"], profiles.CONDITION_VERIFICATION) == ["confirmed"]
    assert codes(refuted["verificationStatus"], profiles.CONDITION_VERIFICATION) == ["refuted"]
    assert codes(refuted["clinicalStatus"], profiles.CONDITION_CLINICAL) == ["inactive"]


# --- consent, referral, task, procedure ------------------------------------------------------


def test_consent_discloses_to_the_recipient(world: World) -> None:
    patient = make_patient(world)
    screening = finished_screening(world, patient)
    referral = refer_food(world, patient, screening)
    consent = db.session().get(Consent, referral.consent_id)
    resource = mapping.consent_to_fhir(consent, BASE)
    valid(FhirConsent, resource)
    assert resource["status"] == "active"
    assert codes(resource["category"], profiles.ACT_CODE) == ["IDSCL"]
    assert codes(resource["scope"], profiles.CONSENT_SCOPE) == ["patient-privacy"]
    assert (
        resource["organization"][0]["reference"] == f"{BASE}/Organization/{world.orgs['clinic'].id}"
    )
    actor = resource["provision"]["actor"][0]
    assert codes(actor["role"], profiles.PARTICIPATION_TYPE) == ["IRCP"]
    assert actor["reference"]["reference"] == f"{BASE}/Organization/{world.orgs['food'].id}"
    assert resource["performer"][0]["display"] == "Ana Lopez"
    assert resource["provision"]["type"] == "permit"


def test_service_request_from_a_screening_points_at_need_and_consent(world: World) -> None:
    patient = make_patient(world)
    screening = finished_screening(world, patient)
    referral = refer_food(world, patient, screening)
    resource = mapping.service_request_to_fhir(referral, BASE)
    valid(ServiceRequest, resource)
    assert resource["status"] == "active" and resource["intent"] == "order"
    assert codes(resource["category"], "http://snomed.info/sct") == ["410606002"]
    assert codes(resource["category"], SDOHCC_CODES) == ["food-insecurity"]
    assert codes(resource["code"], "http://snomed.info/sct") == ["710925007"]
    assert resource["reasonReference"][0]["reference"] == f"{BASE}/Condition/{referral.need_id}"
    assert resource["supportingInfo"][0]["reference"] == f"{BASE}/Consent/{referral.consent_id}"
    assert resource["requester"]["reference"] == f"{BASE}/Organization/{world.orgs['clinic'].id}"
    assert "orderDetail" not in resource and "security" not in resource["meta"]


def test_contact_prohibited_and_sensitive_referrals_are_marked(world: World) -> None:
    patient = make_patient(world, birth_date="2010-01-01")
    referral = send(
        world,
        patient,
        "youth",
        sensitive="y",
        contact_prohibited="y",
        category="intimate-partner-violence",
        consent_given_by="patient",
        consent_given_by_name="Maya Lopez",
    )
    referral = reload(referral.id)
    resource = mapping.service_request_to_fhir(referral, BASE)
    valid(ServiceRequest, resource)
    assert codes(resource["orderDetail"], SDOHCC_CODES) == ["contacting-subject-prohibited"]
    assert resource["meta"]["security"][0]["code"] == "R"
    task = mapping.task_to_fhir(referral.task, BASE)
    valid(FhirTask, task)
    assert task["meta"]["security"][0]["code"] == "R"


def test_task_from_request_to_completion_with_its_procedure(world: World) -> None:
    referral = send(world, make_patient(world))
    resource = mapping.task_to_fhir(reload(referral.id).task, BASE)
    valid(FhirTask, resource)
    assert resource["status"] == "requested" and resource["intent"] == "order"
    assert resource["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/CodeSystem/task-code",
        "code": "fulfill",
        "display": "Fulfill the focal request",
    }
    assert resource["focus"]["reference"] == f"{BASE}/ServiceRequest/{referral.id}"
    assert resource["for"]["reference"] == f"{BASE}/Patient/{referral.patient_id}"
    assert resource["owner"]["reference"] == f"{BASE}/Organization/{world.orgs['food'].id}"
    assert "output" not in resource

    move(world, "food", referral, "accept")
    move(
        world, "food", referral, "note", note="Left voicemail", business_status="contact-attempted"
    )
    task = reload(referral.id).task
    resource = mapping.task_to_fhir(task, BASE)
    valid(FhirTask, resource)
    assert resource["status"] == "accepted"
    assert resource["meta"]["versionId"] == str(task.version)
    assert resource["businessStatus"]["coding"][0]["code"] == "contact-attempted"

    move(
        world,
        "food",
        referral,
        "complete",
        output_code="710925007",
        outcome_note="Two weeks of groceries",
    )
    referral = reload(referral.id)
    resource = mapping.task_to_fhir(referral.task, BASE)
    valid(FhirTask, resource)
    assert resource["status"] == "completed"
    output = resource["output"][0]
    assert codes(output["type"], SDOHCC_CODES) == ["resulting-activity"]
    assert output["valueReference"]["reference"] == f"{BASE}/Procedure/{referral.task.id}"

    procedure = mapping.procedure_to_fhir(referral.task, BASE)
    valid(Procedure, procedure)
    assert procedure["status"] == "completed"
    assert codes(procedure["code"], "http://snomed.info/sct") == ["710925007"]
    assert procedure["basedOn"][0]["reference"] == f"{BASE}/ServiceRequest/{referral.id}"
    assert codes(procedure["category"], SDOHCC_CODES) == ["food-insecurity"]
    assert procedure["performedDateTime"].endswith("Z")

    service_request = mapping.service_request_to_fhir(referral, BASE)
    assert service_request["status"] == "completed"


def test_a_declined_task_carries_its_reason(world: World) -> None:
    referral = send(world, make_patient(world))
    move(world, "food", referral, "decline", reason="at-capacity", reason_detail="Until March")
    resource = mapping.task_to_fhir(reload(referral.id).task, BASE)
    valid(FhirTask, resource)
    assert resource["status"] == "rejected"
    assert resource["statusReason"]["text"] == "No capacity / waiting list closed. Until March"


# --- envelopes and the checks themselves ------------------------------------------------------


def test_operation_outcome_and_searchset_bundle(world: World) -> None:
    outcome = mapping.operation_outcome("error", "processing", "Bad status", "Task.status")
    parsed = OperationOutcome.model_validate(outcome)
    assert parsed.issue[0].expression == ["Task.status"]

    referral = reload(send(world, make_patient(world)).id)
    task = mapping.task_to_fhir(referral.task, BASE)
    request = mapping.service_request_to_fhir(referral, BASE)
    bundle = mapping.bundle_searchset(
        [task], 1, f"{BASE}/Task?owner=x", f"{BASE}/Task?owner=x&page=2", included=[request]
    )
    Bundle.model_validate(bundle)
    assert bundle["total"] == 1
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["match", "include"]
    assert bundle["entry"][0]["fullUrl"] == f"{BASE}/Task/{referral.task.id}"
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    empty = mapping.bundle_searchset([], 0, f"{BASE}/Task?owner=x")
    Bundle.model_validate(empty)
    assert empty["total"] == 0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.update(intent="plan"), "Task.intent is fixed to order"),
        (lambda t: t.update(status="received"), "not in SDOHCC-ValueSetReferralTaskStatus"),
        (lambda t: t["code"]["coding"][0].update(code="approve"), "task-code#fulfill"),
        (lambda t: t.pop("focus"), "Task.focus is required"),
        (lambda t: t.update(status="failed"), "needs statusReason.text"),
        (lambda t: t.update(status="completed"), "resulting-activity"),
    ],
)
def test_task_checks_catch_what_the_profile_forbids(world: World, change, problem) -> None:
    referral = reload(send(world, make_patient(world)).id)
    resource = mapping.task_to_fhir(referral.task, BASE)
    change(resource)
    assert any(problem in found for found in profiles.check(resource)), profiles.check(resource)


def test_condition_and_observation_checks_need_the_sdoh_category(world: World) -> None:
    patient = make_patient(world)
    screening = finished_screening(world, patient)
    condition = mapping.condition_to_fhir(screening.needs[0], BASE)
    condition["category"] = [condition["category"][0]]
    assert any("SDOH-Con-3" in p for p in profiles.check(condition))
    observation = mapping.observation_to_fhir(screening.observations[0], BASE)
    observation["category"] = observation["category"][:1]
    problems = profiles.check(observation)
    assert any("SDOH-Obs-4" in p for p in problems) and any("2..*" in p for p in problems)
    consent = {"resourceType": "Consent", "meta": {"profile": [profiles.CONSENT]}}
    assert any("IDSCL" in p for p in profiles.check(consent))
    assert any("ppc-1" in p for p in profiles.check(consent))
