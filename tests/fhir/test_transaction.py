"""A clinic's system sends a referral as a transaction Bundle (Patient, Condition, Consent,
ServiceRequest, Task): it lands in the recipient's inbox like one sent from our pages, a retry
never duplicates it, and bad input is refused whole with an OperationOutcome naming the entry
and the element."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.db import db
from referrals.identifiers import PartnerIdentifier
from referrals.jobs import Job
from referrals.loop.models import Referral, ReferralEvent, Task
from referrals.patients.models import Consent, Need, Patient
from referrals.terminology import california_today
from tests.fhir.schema_check import assert_valid_r4
from tests.fhir.test_api import get, outcome
from tests.fhir.test_oauth import assertion, register, token_form
from tests.helpers import World, make_patient, years_ago

FHIR_JSON = "application/fhir+json"
EHR = "https://ehr.sunrise.example/fhir"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
SNOMED = "http://snomed.info/sct"
WRITE = "system/*.read system/*.write"


def token(app, world: World, org: str = "clinic", scope: str = WRITE) -> str:
    client = register(world, org, scopes=["system/*.read", "system/*.write"])
    response = app.test_client().post(
        "/oauth/token", data=token_form(assertion(client.client_id), scope=scope)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def post(app, body, bearer: str, content_type: str = FHIR_JSON, **headers: str):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return app.test_client().post(
        "/fhir",
        data=data,
        headers={"Authorization": f"Bearer {bearer}", **headers},
        content_type=content_type,
    )


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def referral_bundle(world: World, service: str = "food", tag: str = "1001") -> dict:
    """What an EHR sends for a food referral of a 9-year-old, with its identifiers."""
    patient, condition, consent, request, task = (urn() for _ in range(5))
    org = world.orgs[service].id
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {
                            "type": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                        "code": "MR",
                                    }
                                ]
                            },
                            "system": f"{EHR}/mrn",
                            "value": f"MRN-{tag}",
                        }
                    ],
                    "name": [{"use": "official", "family": "Reyes", "given": ["Lucia", "M"]}],
                    "gender": "female",
                    "birthDate": years_ago(9),
                    "address": [{"postalCode": "94601-2233"}],
                    "communication": [
                        {
                            "language": {
                                "coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]
                            },
                            "preferred": True,
                        }
                    ],
                    "contact": [
                        {
                            "relationship": [
                                {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                            "code": "MTH",
                                        }
                                    ]
                                }
                            ],
                            "name": {"family": "Reyes", "given": ["Carmen"]},
                            "telecom": [
                                {"system": "phone", "value": "(510) 555-0177", "use": "mobile"}
                            ],
                        }
                    ],
                    "extension": [{"url": "http://example.org/unknown", "valueString": "kept"}],
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={EHR}/mrn|MRN-{tag}",
                },
            },
            {
                "fullUrl": condition,
                "resource": {
                    "resourceType": "Condition",
                    "identifier": [{"system": f"{EHR}/condition", "value": f"C-{tag}"}],
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "verificationStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                "code": "confirmed",
                            }
                        ]
                    },
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                                    "code": "health-concern",
                                }
                            ]
                        },
                        {
                            "coding": [
                                {
                                    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                                    "code": "sdoh",
                                }
                            ]
                        },
                        {"coding": [{"system": SDOHCC_CODES, "code": "food-insecurity"}]},
                    ],
                    "code": {
                        "coding": [
                            {"system": SNOMED, "code": "733423003", "display": "Food insecurity"},
                            {
                                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                "code": "Z59.41",
                                "display": "Food insecurity",
                            },
                        ],
                        "text": "Food insecurity",
                    },
                    "subject": {"reference": patient},
                },
                "request": {
                    "method": "POST",
                    "url": "Condition",
                    "ifNoneExist": f"identifier={EHR}/condition|C-{tag}",
                },
            },
            {
                "fullUrl": consent,
                "resource": {
                    "resourceType": "Consent",
                    "identifier": [{"system": f"{EHR}/consent", "value": f"K-{tag}"}],
                    "status": "active",
                    "scope": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                "code": "patient-privacy",
                            }
                        ]
                    },
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                    "code": "IDSCL",
                                }
                            ]
                        }
                    ],
                    "patient": {"reference": patient},
                    "dateTime": california_today().isoformat(),
                    "organization": [{"reference": f"Organization/{world.orgs['clinic'].id}"}],
                    "sourceReference": {"reference": f"{EHR}/DocumentReference/consent-{tag}"},
                    "performer": [{"type": "RelatedPerson", "display": "Carmen Reyes"}],
                    "policyRule": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "OPTIN",
                            }
                        ]
                    },
                    "provision": {
                        "type": "permit",
                        "actor": [
                            {
                                "role": {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "IRCP",
                                        }
                                    ]
                                },
                                "reference": {"reference": f"Organization/{org}"},
                            }
                        ],
                    },
                },
                "request": {"method": "POST", "url": "Consent"},
            },
            {
                "fullUrl": request,
                "resource": {
                    "resourceType": "ServiceRequest",
                    "identifier": [{"system": f"{EHR}/referral", "value": f"R-{tag}"}],
                    "status": "active",
                    "intent": "order",
                    "category": [{"coding": [{"system": SDOHCC_CODES, "code": "food-insecurity"}]}],
                    "code": {"coding": [{"system": SNOMED, "code": "710925007"}]},
                    "subject": {"reference": patient},
                    "requester": {
                        "reference": f"{EHR}/PractitionerRole/okafor",
                        "display": "Dr. Amara Okafor",
                    },
                    "performer": [{"reference": f"HealthcareService/{world.service_ids[service]}"}],
                    "reasonReference": [{"reference": condition}],
                    "supportingInfo": [{"reference": consent}],
                    "note": [{"text": "Lost SNAP benefits last month."}],
                    "authoredOn": california_today().isoformat(),
                },
                "request": {
                    "method": "POST",
                    "url": "ServiceRequest",
                    "ifNoneExist": f"identifier={EHR}/referral|R-{tag}",
                },
            },
            {
                "fullUrl": task,
                "resource": {
                    "resourceType": "Task",
                    "identifier": [{"system": f"{EHR}/task", "value": f"T-{tag}"}],
                    "status": "requested",
                    "intent": "order",
                    "code": {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/CodeSystem/task-code",
                                "code": "fulfill",
                            }
                        ]
                    },
                    "focus": {"reference": request},
                    "for": {"reference": patient},
                    "authoredOn": california_today().isoformat(),
                    "requester": {"reference": f"{EHR}/PractitionerRole/okafor"},
                    "owner": {"reference": f"Organization/{org}"},
                },
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }


def entry(bundle: dict, resource_type: str) -> dict:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)


def counts() -> dict[str, int]:
    session = db.session()
    out = {
        model.__name__: session.scalar(select(func.count()).select_from(model))
        for model in (Patient, Need, Consent, Referral, Task, ReferralEvent, PartnerIdentifier, Job)
    }
    db.session.remove()
    return out


def answer_ids(response) -> dict[str, str]:
    return {
        e["response"]["location"].split("/")[0]: e["response"]["location"].split("/")[1]
        for e in response.get_json()["entry"]
    }


# --- a referral arrives -------------------------------------------------------------------------


def test_a_referral_bundle_lands_in_the_recipients_inbox(app, world: World, client) -> None:
    bearer = token(app, world)
    response = post(app, referral_bundle(world), bearer)
    assert response.status_code == 200, response.get_json()
    answer = Bundle.model_validate(response.get_json())
    assert_valid_r4(response.get_json())
    assert answer.type == "transaction-response"
    assert [e.response.status for e in answer.entry] == ["201 Created"] * 5
    ids = answer_ids(response)
    assert answer.entry[4].response.location == f"Task/{ids['Task']}/_history/1"
    assert answer.entry[4].response.etag == 'W/"1"'

    referral = db.session().get(Referral, uuid.UUID(ids["ServiceRequest"]))
    assert referral.patient.name == "Lucia M Reyes"
    assert referral.patient.mrn == "MRN-1001" and referral.patient.zip_code == "94601"
    assert referral.patient.language == "es"
    assert [(g.name, g.relationship_code, g.phone) for g in referral.patient.guardians] == [
        ("Carmen Reyes", "mother", "+15105550177")
    ]
    assert referral.service_id == world.service_ids["food"]
    assert referral.requester_user_id is None and referral.referred_by == "Dr. Amara Okafor"
    assert referral.need.domain == "food-insecurity" and referral.need.icd10_code == "Z59.41"
    assert referral.consent.granted_by == "guardian"
    assert referral.consent.granted_by_name == "Carmen Reyes"
    assert referral.consent.recorded_by_id is None and referral.consent.method == "on-file"
    assert str(referral.task.id) == ids["Task"] and referral.task.status == "requested"
    actions = set(
        db.session().scalars(
            select(AuditEvent.action).where(AuditEvent.patient_id == referral.patient_id)
        )
    )
    assert {"patient.create", "need.create", "consent.create", "referral.create"} <= actions
    assert counts()["Job"] == 1  # the family's "referral sent" text
    db.session.remove()

    client.login(world, "food")
    inbox = client.get("/inbox").get_data(as_text=True)
    assert "Lucia M Reyes" in inbox
    page = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Dr. Amara Okafor" in page and "Lost SNAP benefits last month." in page
    assert "Carmen Reyes, on file at the referring clinic" in page


def test_what_we_serve_carries_the_partners_identifiers(app, world: World) -> None:
    bearer = token(app, world)
    ids = answer_ids(post(app, referral_bundle(world), bearer))
    task = get(app, f"/fhir/Task/{ids['Task']}", bearer).get_json()
    request = get(app, f"/fhir/ServiceRequest/{ids['ServiceRequest']}", bearer).get_json()
    patient = get(app, f"/fhir/Patient/{ids['Patient']}", bearer).get_json()
    assert {"system": f"{EHR}/task", "value": "T-1001"} in task["identifier"]
    assert {"system": f"{EHR}/referral", "value": "R-1001"} in request["identifier"]
    assert {"system": f"{EHR}/mrn", "value": "MRN-1001"} in patient["identifier"]
    assert request["reasonReference"][0]["reference"].endswith(f"/Condition/{ids['Condition']}")
    assert request["supportingInfo"][0]["reference"].endswith(f"/Consent/{ids['Consent']}")
    # The partner finds its Task by polling, as the recipient does.
    found = get(app, f"/fhir/Task?requester=Organization/{world.orgs['clinic'].id}", bearer)
    assert [e["resource"]["id"] for e in found.get_json()["entry"]] == [ids["Task"]]


def test_a_retry_creates_nothing(app, world: World) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world)
    first = post(app, bundle, bearer)
    before = counts()
    again = copy.deepcopy(bundle)
    for item in again["entry"]:  # a new message: new fullUrls, the same identifiers
        new = urn()
        old = item["fullUrl"]
        text = json.dumps(again).replace(old, new)
        again = json.loads(text)
    second = post(app, again, bearer)
    assert second.status_code == 200
    assert [e["response"]["status"] for e in second.get_json()["entry"]] == ["200 OK"] * 5
    assert answer_ids(second) == answer_ids(first)
    assert counts() == before


def test_a_new_referral_for_a_known_patient_adds_only_the_referral(app, world: World) -> None:
    bearer = token(app, world)
    first = answer_ids(post(app, referral_bundle(world, tag="2001"), bearer))
    bundle = referral_bundle(world, "housing", tag="2001")
    # Same patient, condition and MRN; a new referral (new identifiers) to another service.
    for name in ("ServiceRequest", "Task", "Consent"):
        for identifier in entry(bundle, name)["resource"]["identifier"]:
            identifier["value"] += "-b"
    entry(bundle, "ServiceRequest")["request"].pop("ifNoneExist")
    entry(bundle, "Condition")["resource"]["category"][2]["coding"][0]["code"] = "food-insecurity"
    entry(bundle, "ServiceRequest")["resource"]["category"] = [
        {"coding": [{"system": SDOHCC_CODES, "code": "housing-instability"}]}
    ]
    response = post(app, bundle, bearer)
    assert response.status_code == 200, response.get_json()
    statuses = {
        e["response"]["location"].split("/")[0]: e["response"]["status"]
        for e in response.get_json()["entry"]
    }
    assert statuses == {
        "Patient": "200 OK",
        "Condition": "200 OK",
        "Consent": "201 Created",
        "ServiceRequest": "201 Created",
        "Task": "201 Created",
    }
    assert answer_ids(response)["Patient"] == first["Patient"]
    assert counts()["Patient"] == 1 and counts()["Referral"] == 2


def test_a_patient_on_record_is_referenced(app, world: World) -> None:
    patient = make_patient(world)
    bearer = token(app, world)
    bundle = referral_bundle(world)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    text = json.dumps(bundle)
    old = next(ref["reference"] for ref in [entry(bundle, "ServiceRequest")["resource"]["subject"]])
    bundle = json.loads(text.replace(old, f"Patient/{patient.id}"))
    response = post(app, bundle, bearer)
    assert response.status_code == 200, response.get_json()
    referral = db.session().get(Referral, uuid.UUID(answer_ids(response)["ServiceRequest"]))
    assert referral.patient_id == patient.id and counts()["Patient"] == 1


def test_an_organisation_and_a_service_code_find_the_service(app, world: World) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world, "housing")
    request = entry(bundle, "ServiceRequest")["resource"]
    request["performer"] = [
        {
            "reference": f"{app.config['SETTINGS'].public_base_url.rstrip('/')}/fhir/Organization/"
            f"{world.orgs['housing'].id}"
        }
    ]
    request["code"] = {"coding": [{"system": SNOMED, "code": "710911006"}]}
    request["category"] = [{"coding": [{"system": SDOHCC_CODES, "code": "housing-instability"}]}]
    response = post(app, bundle, bearer)
    assert response.status_code == 200, response.get_json()
    referral = db.session().get(Referral, uuid.UUID(answer_ids(response)["ServiceRequest"]))
    assert referral.service_id == world.service_ids["housing"]
    assert referral.category == "housing-instability"


def test_partners_send_received_and_original_order(app, world: World) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world)
    entry(bundle, "Task")["resource"]["status"] = "received"
    entry(bundle, "ServiceRequest")["resource"]["intent"] = "original-order"
    response = post(app, bundle, bearer)
    assert response.status_code == 200, response.get_json()
    ids = answer_ids(response)
    request = get(app, f"/fhir/ServiceRequest/{ids['ServiceRequest']}", bearer).get_json()
    task = get(app, f"/fhir/Task/{ids['Task']}", bearer).get_json()
    assert request["intent"] == "original-order" and task["status"] == "requested"


def test_a_teens_restricted_referral_is_sensitive(app, world: World) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world)
    patient = entry(bundle, "Patient")
    patient["resource"]["birthDate"] = years_ago(15)
    consent = entry(bundle, "Consent")["resource"]
    consent["performer"] = [{"reference": patient["fullUrl"], "display": "Lucia Reyes"}]
    entry(bundle, "ServiceRequest")["resource"]["meta"] = {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ]
    }
    entry(bundle, "ServiceRequest")["resource"]["orderDetail"] = [
        {"coding": [{"system": SDOHCC_CODES, "code": "contacting-subject-prohibited"}]}
    ]
    response = post(app, bundle, bearer)
    assert response.status_code == 200, response.get_json()
    referral = db.session().get(Referral, uuid.UUID(answer_ids(response)["ServiceRequest"]))
    assert referral.sensitive and referral.contact_prohibited
    assert referral.consent.granted_by == "patient"
    served = get(app, f"/fhir/ServiceRequest/{referral.id}", bearer).get_json()
    assert served["meta"]["security"][0]["code"] == "R"


def test_a_child_cannot_consent_to_a_confidential_referral(app, world: World) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world)
    entry(bundle, "ServiceRequest")["resource"]["meta"] = {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ]
    }
    before = counts()
    response = post(app, bundle, bearer)
    assert response.status_code == 422
    assert "needs a patient aged 12 or over" in outcome(response).issue[0].diagnostics
    assert counts() == before


def test_what_the_sender_leaves_unsaid_or_gets_wrong_is_taken_sensibly(app, world: World) -> None:
    """No consent performer (the IG leaves it to the signed form): the guardian on file for a
    child. A number that is not one is left out with a warning. An ended name is not used. The
    order's own code is kept."""
    bearer = token(app, world)
    bundle = referral_bundle(world)
    patient = entry(bundle, "Patient")["resource"]
    patient["name"].insert(
        0, {"use": "official", "family": "Old", "given": ["Name"], "period": {"end": "2020-01-01"}}
    )
    patient["telecom"] = [{"system": "phone", "value": "555-555-5555", "use": "mobile"}]
    entry(bundle, "Consent")["resource"].pop("performer")
    entry(bundle, "ServiceRequest")["resource"]["code"] = {
        "coding": [
            {
                "system": SNOMED,
                "code": "467771000124109",
                "display": "Assistance with application for food pantry program",
            }
        ]
    }
    response = post(app, bundle, bearer)
    assert response.status_code == 200, response.get_json()
    warning = response.get_json()["entry"][0]["response"]["outcome"]["issue"][0]
    assert_valid_r4(response.get_json())
    assert warning["severity"] == "warning"
    assert "'555-555-5555' is not a valid phone number" in warning["diagnostics"]
    referral = db.session().get(Referral, uuid.UUID(answer_ids(response)["ServiceRequest"]))
    assert referral.patient.name == "Lucia M Reyes" and referral.patient.phone is None
    assert (referral.consent.granted_by, referral.consent.granted_by_name) == (
        "guardian",
        "Carmen Reyes",
    )
    assert referral.service_id == world.service_ids["food"]
    assert (referral.code, referral.code_display) == (
        "467771000124109",
        "Assistance with application for food pantry program",
    )


def test_a_given_name_sent_as_null_with_only_its_extension_is_no_name(app, world: World) -> None:
    """FHIR JSON lets a list of primitives hold null where `_given` carries only an extension
    (here: the name is masked); the other given names are the patient's."""
    bundle = referral_bundle(world)
    name = bundle["entry"][0]["resource"]["name"][0]
    name["given"] = [None, "Lucia"]
    name["_given"] = [
        {
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                    "valueCode": "masked",
                }
            ]
        },
        None,
    ]
    response = post(app, bundle, token(app, world))
    assert response.status_code == 200, response.get_json()
    stored = db.session().scalar(select(Patient).where(Patient.family_name == "Reyes"))
    assert stored.given_name == "Lucia"


def test_representation_is_returned_when_asked(app, world: World) -> None:
    bearer = token(app, world)
    response = post(app, referral_bundle(world), bearer, Prefer="return=representation")
    assert_valid_r4(response.get_json())
    resources = [e["resource"] for e in response.get_json()["entry"]]
    assert [r["resourceType"] for r in resources] == [
        "Patient",
        "Condition",
        "Consent",
        "ServiceRequest",
        "Task",
    ]
    assert resources[4]["meta"]["versionId"] == "1"


# --- refused whole ------------------------------------------------------------------------------


def _drop(resource_type: str):
    def change(bundle: dict) -> None:
        bundle["entry"] = [
            e for e in bundle["entry"] if e["resource"]["resourceType"] != resource_type
        ]

    return change


def _set(resource_type: str, path: str, value):
    def change(bundle: dict) -> None:
        target = entry(bundle, resource_type)
        *parents, last = path.split(".")
        node = target
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            node.pop(last, None)
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _other_org(bundle: dict) -> None:
    world_org = uuid.uuid4()
    entry(bundle, "Task")["resource"]["owner"] = {"reference": f"Organization/{world_org}"}


BAD = [
    ("batch", lambda b: b.update(type="batch"), 400, "transaction Bundle", "Bundle.type"),
    ("no entries", lambda b: b.update(entry=[]), 400, "no entries", "Bundle.entry"),
    (
        "PUT entry",
        _set("Task", "request.method", "PUT"),
        400,
        "creates, with POST",
        "Bundle.entry[4].request.method",
    ),
    (
        "url mismatch",
        _set("Task", "request.url", "Patient"),
        400,
        "not Task",
        "Bundle.entry[4].request.url",
    ),
    (
        "ifNoneExist by name",
        _set("Patient", "request.ifNoneExist", "name=Reyes"),
        400,
        "only identifier",
        "Bundle.entry[0].request.ifNoneExist",
    ),
    (
        "an Observation",
        _set(
            "Condition",
            "resource",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Food insecurity risk"},
            },
        ),
        422,
        "not Observation",
        "Bundle.entry[1].resource.resourceType",
    ),
    ("no ServiceRequest", _drop("ServiceRequest"), 422, "exactly one ServiceRequest", None),
    (
        "no consent for a non-HIPAA recipient",
        lambda b: (_drop("Consent")(b), _set("ServiceRequest", "resource.supportingInfo", None)(b)),
        422,
        "not a HIPAA-covered entity",
        "Consent.performer",
    ),
    (
        "a draft",
        _set("ServiceRequest", "resource.status", "draft"),
        422,
        "a referral is sent active",
        "Bundle.entry[3].resource.status",
    ),
    (
        "a plan",
        _set("ServiceRequest", "resource.intent", "plan"),
        422,
        "is not a referral",
        "Bundle.entry[3].resource.intent",
    ),
    (
        "an accepted Task",
        _set("Task", "resource.status", "accepted"),
        422,
        "requested (or received)",
        "Bundle.entry[4].resource.status",
    ),
    ("an unknown owner", _other_org, 422, "is offered by Community Food Bank", "Task.owner"),
    (
        "a Patient on another server",
        _set("ServiceRequest", "resource.subject", {"reference": f"{EHR}/Patient/9"}),
        422,
        "neither on this server nor an entry",
        "Bundle.entry[3].resource.subject",
    ),
    (
        "no birth date",
        _set("Patient", "resource.birthDate", None),
        422,
        "Missing data",
        "Patient.birthDate",
    ),
    (
        "a child without a guardian",
        _set("Patient", "resource.contact", None),
        422,
        "needs a parent or guardian",
        "Patient.contact.name",
    ),
    (
        "a refuted need",
        _set(
            "Condition",
            "resource.verificationStatus",
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "refuted",
                    }
                ]
            },
        ),
        422,
        "refuted Condition",
        "Condition",
    ),
    (
        "a service that is not ours",
        _set(
            "ServiceRequest",
            "resource.performer",
            [{"reference": f"HealthcareService/{uuid.UUID(int=7)}"}],
        ),
        422,
        "not in the directory",
        "ServiceRequest.performer",
    ),
    (
        "a bad birth date",
        _set("Patient", "resource.birthDate", "last year"),
        400,
        "birthDate",
        None,
    ),
    (
        "a Task for another request",
        _set("Task", "resource.focus", {"reference": "ServiceRequest/" + str(uuid.UUID(int=3))}),
        422,
        "must be the Bundle's ServiceRequest",
        "Bundle.entry[4].resource.focus",
    ),
]


@pytest.mark.parametrize(
    ("change", "status", "diagnostics", "expression"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_bad_referral_bundles_are_refused_whole(
    app, world: World, change, status, diagnostics, expression, caplog
) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world)
    change(bundle)
    before = counts()
    response = post(app, bundle, bearer)
    assert response.status_code == status, response.get_json()
    issue = outcome(response).issue[0]
    assert diagnostics in issue.diagnostics
    if expression:
        assert issue.expression == [expression]
    assert counts() == before
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and "POST /fhir from client" in refused[-1] and f" {status} " in refused[-1]
    assert "Reyes" not in caplog.text and "Lucia" not in caplog.text


def test_a_consent_for_another_organisation_is_refused(app, world: World) -> None:
    bearer = token(app, world)
    bundle = referral_bundle(world)
    consent = entry(bundle, "Consent")["resource"]
    consent["provision"]["actor"][0]["reference"] = {
        "reference": f"Organization/{world.orgs['housing'].id}"
    }
    before = counts()
    response = post(app, bundle, bearer)
    assert response.status_code == 422
    assert "another organisation than Community Food Bank" in outcome(response).issue[0].diagnostics
    assert counts() == before


def test_another_clinics_patient_is_not_found(app, world: World) -> None:
    theirs = make_patient(world, "other_clinician")
    bearer = token(app, world)
    bundle = referral_bundle(world)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    old = entry(bundle, "ServiceRequest")["resource"]["subject"]["reference"]
    bundle = json.loads(json.dumps(bundle).replace(old, f"Patient/{theirs.id}"))
    before = counts()
    response = post(app, bundle, bearer)
    assert response.status_code == 404
    assert "No such patient" in outcome(response).issue[0].diagnostics
    assert counts() == before


def test_a_read_only_token_or_a_cbo_cannot_send(app, world: World) -> None:
    bundle = referral_bundle(world)
    before = counts()
    reader = token(app, world, scope="system/*.read")
    response = post(app, bundle, reader)
    assert response.status_code == 403
    assert "do not allow create of Condition" in outcome(response).issue[0].diagnostics
    cbo = token(app, world, "food")
    response = post(app, bundle, cbo)
    assert response.status_code == 403
    assert "Only a clinic's system can send referrals" in outcome(response).issue[0].diagnostics
    assert counts() == before


def test_not_json_or_not_fhir_json(app, world: World) -> None:
    bearer = token(app, world)
    bad_json = post(app, "{not json", bearer)
    assert bad_json.status_code == 400 and "not JSON" in outcome(bad_json).issue[0].diagnostics
    form = post(app, "a=b", bearer, content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    task = post(app, {"resourceType": "Task"}, bearer)
    assert task.status_code == 400 and "Expected a Bundle" in outcome(task).issue[0].diagnostics
    unauthenticated = app.test_client().post(
        "/fhir", data=json.dumps(referral_bundle(world)), content_type=FHIR_JSON
    )
    assert unauthenticated.status_code == 401


def test_a_record_number_that_is_another_patients_is_refused(app, world: World) -> None:
    bearer = token(app, world)
    assert post(app, referral_bundle(world, tag="3001"), bearer).status_code == 200
    other = referral_bundle(world, tag="3002")
    patient = entry(other, "Patient")
    patient["resource"]["identifier"][0]["value"] = "MRN-3001"  # the same number...
    patient["resource"]["name"] = [{"family": "Nguyen", "given": ["An"]}]  # ...another child
    patient["request"].pop("ifNoneExist")
    before = counts()
    response = post(app, other, bearer)
    assert response.status_code == 422
    issue = outcome(response).issue[0]
    assert issue.expression == ["Patient.identifier"]
    assert "on record for a different patient" in issue.diagnostics
    assert counts() == before
