"""Our CapabilityStatement: what the API serves, as a Coordination Platform of the SDOH
Clinical Care IG (2.3.0)."""

from __future__ import annotations

from typing import Any

FHIR_VERSION = "4.0.1"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

# resource type -> (profile, search parameters and their types)
SERVED: dict[str, tuple[str, dict[str, str]]] = {
    "Patient": (US_CORE + "us-core-patient", {"_id": "token"}),
    "Organization": (US_CORE + "us-core-organization", {"_id": "token", "name": "string"}),
    "HealthcareService": (
        "http://hl7.org/fhir/StructureDefinition/HealthcareService",
        {"_id": "token", "service-category": "token"},
    ),
    "Location": (US_CORE + "us-core-location", {"_id": "token"}),
    "QuestionnaireResponse": (
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaireresponse",
        {"_id": "token", "patient": "reference"},
    ),
    "Observation": (
        SDOHCC + "SDOHCC-ObservationScreeningResponse",
        {"_id": "token", "category": "token", "patient": "reference"},
    ),
    "Condition": (
        SDOHCC + "SDOHCC-Condition",
        {"_id": "token", "category": "token", "patient": "reference"},
    ),
    "Consent": (SDOHCC + "SDOHCC-Consent", {"_id": "token"}),
    "ServiceRequest": (
        SDOHCC + "SDOHCC-ServiceRequest",
        {
            "_id": "token",
            "_lastUpdated": "date",
            "category": "token",
            "intent": "token",
            "patient": "reference",
            "status": "token",
        },
    ),
    "Task": (
        SDOHCC + "SDOHCC-TaskForReferralManagement",
        {
            "_id": "token",
            "_lastUpdated": "date",
            "code": "token",
            "focus": "reference",
            "owner": "reference",
            "patient": "reference",
            "requester": "reference",
            "status": "token",
        },
    ),
    "Procedure": (
        SDOHCC + "SDOHCC-Procedure",
        {"_id": "token", "based-on": "reference", "patient": "reference", "status": "token"},
    ),
}

# The types `GET /fhir/{type}?...` answers (referrals.fhir.search); the directory
# (Organization, HealthcareService, Location) is read by id only, so far.
SEARCHED = frozenset(
    {
        "Patient",
        "QuestionnaireResponse",
        "Observation",
        "Condition",
        "Consent",
        "ServiceRequest",
        "Task",
        "Procedure",
    }
)


def capability_statement(base: str) -> dict[str, Any]:
    """What we serve, and how clients authenticate."""
    resources = []
    for resource_type, (profile, searches) in SERVED.items():
        entry: dict[str, Any] = {
            "type": resource_type,
            "supportedProfile": [profile],
            "interaction": [{"code": "read"}],
        }
        if resource_type in SEARCHED:
            entry["interaction"].append({"code": "search-type"})
            entry["searchParam"] = [{"name": n, "type": k} for n, k in searches.items()]
        if resource_type == "Task":
            entry["interaction"].append({"code": "update"})
            entry["versioning"] = "versioned-update"
            entry["searchInclude"] = ["Task:focus"]
        if resource_type == "Procedure":
            entry["interaction"].append({"code": "create"})
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-24",
        "kind": "instance",
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "implementation": {
            "description": "Referrals: closed-loop social-needs referrals",
            "url": base,
        },
        "instantiates": [
            "http://hl7.org/fhir/us/sdoh-clinicalcare/CapabilityStatement/"
            "SDOHCC-CoordinationPlatform"
        ],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth 2.0 client credentials with a signed JWT assertion "
                    "(SMART Backend Services); see /.well-known/smart-configuration.",
                },
                "resource": resources,
            }
        ],
    }
