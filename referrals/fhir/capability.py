"""Our CapabilityStatement: what the API serves, as a Coordination Platform of the SDOH
Clinical Care IG (2.3.0)."""

from __future__ import annotations

from typing import Any

FHIR_VERSION = "4.0.1"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
BASE_SEARCH = "http://hl7.org/fhir/SearchParameter/"

# resource type -> (profile, search parameters and their types)
SERVED: dict[str, tuple[str, dict[str, str]]] = {
    "Patient": (US_CORE + "us-core-patient", {"_id": "token"}),
    "Organization": (
        US_CORE + "us-core-organization",
        {
            "_id": "token",
            "_lastUpdated": "date",
            "active": "token",
            "name": "string",
            "type": "token",
        },
    ),
    "HealthcareService": (
        "http://hl7.org/fhir/StructureDefinition/HealthcareService",
        {
            "_id": "token",
            "_lastUpdated": "date",
            "active": "token",
            "location": "reference",
            "name": "string",
            "organization": "reference",
            "service-category": "token",
            "service-type": "token",
        },
    ),
    "PractitionerRole": (
        US_CORE + "us-core-practitionerrole",
        {"_id": "token", "active": "token", "organization": "reference"},
    ),
    "Location": (
        US_CORE + "us-core-location",
        {
            "_id": "token",
            "address-city": "string",
            "address-postalcode": "string",
            "name": "string",
            "organization": "reference",
        },
    ),
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
    "Goal": (
        SDOHCC + "SDOHCC-Goal",
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

# Chained parameters, beside the searchParam they go through: a service by where it is.
CHAINED: dict[str, dict[str, str]] = {
    "HealthcareService": {
        "location.address-city": "string",
        "location.address-postalcode": "string",
    }
}
# _include values each type answers.
INCLUDES: dict[str, list[str]] = {
    "Task": ["Task:focus"],
    "HealthcareService": ["HealthcareService:organization", "HealthcareService:location"],
}
# The directory: public to every client, its parameters those of the base specification.
DIRECTORY = frozenset({"Organization", "HealthcareService", "Location"})
# What a referral source creates in a transaction Bundle (not alone: a referral is written
# whole); `ifNoneExist` on identifiers makes a retry find what the first try created.
IN_TRANSACTION = ("Patient", "Condition", "Consent", "ServiceRequest", "Task")

# The types `GET /fhir/{type}?...` answers (referrals.fhir.search).
SEARCHED = frozenset(
    {
        "Organization",
        "HealthcareService",
        "Location",
        "Patient",
        "PractitionerRole",
        "QuestionnaireResponse",
        "Observation",
        "Condition",
        "Goal",
        "Consent",
        "ServiceRequest",
        "Task",
        "Procedure",
    }
)


def _search_param(resource_type: str, name: str, kind: str) -> dict[str, Any]:
    """A searchParam; the directory's name their SearchParameter in the base specification."""
    param: dict[str, Any] = {"name": name, "type": kind}
    if resource_type in DIRECTORY:
        common = {"_id": "Resource-id", "_lastUpdated": "Resource-lastUpdated"}
        param["definition"] = BASE_SEARCH + common.get(name, f"{resource_type}-{name}")
    chains = [chain for chain in CHAINED.get(resource_type, {}) if chain.startswith(name + ".")]
    if chains:
        param["documentation"] = "Also chained: " + ", ".join(chains) + "."
    return param


def _subscription_entry() -> dict[str, Any]:
    """Subscriptions Backport (R4, 1.1.0): our topics, named by their canonical URLs, and the
    $status operation."""
    from referrals.fhir import subscriptions

    return {
        "extension": [
            {"url": subscriptions.TOPIC_CANONICAL, "valueCanonical": topic}
            for topic in subscriptions.TOPICS
        ],
        "type": "Subscription",
        "supportedProfile": [subscriptions.SUBSCRIPTION_PROFILE],
        "documentation": "rest-hook channels with id-only or empty payloads, filtered on the "
        "client's own organisation (Task?owner=, Task?requester=, ServiceRequest?requester=, "
        "ServiceRequest?performer=). "
        + subscriptions.TASK_TOPIC
        + ": a referral sent and every status move of its Task. "
        + subscriptions.SERVICE_REQUEST_TOPIC
        + ": a ServiceRequest created, and completed, revoked or entered in error.",
        "interaction": [{"code": "create"}, {"code": "read"}, {"code": "delete"}],
        "operation": [{"name": "status", "definition": subscriptions.STATUS_OPERATION}],
    }


def capability_statement(base: str) -> dict[str, Any]:
    """What we serve, and how clients authenticate."""
    from referrals.fhir import subscriptions

    resources = []
    for resource_type, (profile, searches) in SERVED.items():
        entry: dict[str, Any] = {
            "type": resource_type,
            "supportedProfile": [profile],
            "interaction": [{"code": "read"}],
        }
        if resource_type in SEARCHED:
            entry["interaction"].append({"code": "search-type"})
            entry["searchParam"] = [_search_param(resource_type, n, k) for n, k in searches.items()]
        if resource_type in INCLUDES:
            entry["searchInclude"] = INCLUDES[resource_type]
        if resource_type == "Task":
            entry["interaction"].append({"code": "update"})
            entry["versioning"] = "versioned-update"
        if resource_type == "Procedure":
            entry["interaction"].append({"code": "create"})
        resources.append(entry)
    resources.append(_subscription_entry())
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
            "SDOHCC-CoordinationPlatform",
            subscriptions.SERVER_CAPABILITY,
        ],
        "rest": [
            {
                "mode": "server",
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": "A referral: "
                        + ", ".join(IN_TRANSACTION)
                        + " entries (POST), conditional on identifier=system|value.",
                    }
                ],
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
