"""The profiles our FHIR resources claim, and checks of an emitted (or received) resource against
what each profile fixes and requires: fixed codes, required elements, the invariants the SDOH
Clinical Care IG (2.3.0, on US Core 7.0.0) and GRAVITY.md state. Pure: dicts in, problems out.

These are not a full validator (no terminology server, no slicing engine): structure is checked
by the `fhir.resources` models, these rules add what the profiles say on top. Checked against
the IG's FSH source (`input/fsh/profiles/*.fsh` of HL7/fhir-sdoh-clinicalcare):
SDOHCC-TaskForReferralManagement, -ServiceRequest, -Consent, -Condition (with invariants
SDOH-Con-1/2/3), -ObservationScreeningResponse (SDOH-Obs-4), -Procedure (us-core-7), -Goal (on
US Core Goal; gol-1) and -HealthcareService."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from referrals.terminology import SDOH_CATEGORIES, SDOHCC_CODES, SNOMED

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

US_CORE_PATIENT = US_CORE + "us-core-patient"
US_CORE_ORGANIZATION = US_CORE + "us-core-organization"
US_CORE_PRACTITIONER_ROLE = US_CORE + "us-core-practitionerrole"
US_CORE_LOCATION = US_CORE + "us-core-location"
# The IG's SDOHCC-HealthcareService is for a patient's appointment contacts (active fixed to
# true, an appointment telecom required); a directory entry is a plain HealthcareService.
HEALTHCARE_SERVICE = "http://hl7.org/fhir/StructureDefinition/HealthcareService"
SDC_QUESTIONNAIRE_RESPONSE = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaireresponse"
)
OBSERVATION_SCREENING_RESPONSE = SDOHCC + "SDOHCC-ObservationScreeningResponse"
CONDITION = SDOHCC + "SDOHCC-Condition"
GOAL = SDOHCC + "SDOHCC-Goal"
CONSENT = SDOHCC + "SDOHCC-Consent"
SERVICE_REQUEST = SDOHCC + "SDOHCC-ServiceRequest"
TASK = SDOHCC + "SDOHCC-TaskForReferralManagement"
PROCEDURE = SDOHCC + "SDOHCC-Procedure"

# Code systems
LOINC = "http://loinc.org"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"  # #sdoh
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
# US Core's own condition categories: health-concern lives here, not in CONDITION_CATEGORY.
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
BCP47 = "urn:ietf:bcp:47"

# SDOHCC-ValueSetReferralTaskStatus: Task.status without received and ready.
TASK_STATUSES = frozenset(
    {
        "draft",
        "requested",
        "accepted",
        "rejected",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    }
)
# Statuses that need Task.statusReason.text (the IG's comment on statusReason; GRAVITY.md).
TASK_STATUSES_WITH_REASON = frozenset({"rejected", "cancelled", "on-hold", "failed"})
# Goal.lifecycleStatus (required binding, GoalLifecycleStatus) and Goal.achievementStatus
# (preferred binding, goal-achievement: the only codes we check, since we send them).
GOAL_LIFECYCLE_STATUSES = frozenset(
    {
        "proposed",
        "planned",
        "accepted",
        "active",
        "on-hold",
        "completed",
        "cancelled",
        "entered-in-error",
        "rejected",
    }
)
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
GOAL_ACHIEVEMENT_STATUSES = frozenset(
    {
        "in-progress",
        "improving",
        "worsening",
        "no-change",
        "achieved",
        "sustaining",
        "not-achieved",
        "no-progress",
        "not-attainable",
    }
)
# SDOHCC-ValueSetObservationStatus
OBSERVATION_STATUSES = frozenset({"final", "corrected", "entered-in-error", "unknown"})

Check = Callable[[dict[str, Any]], Iterable[str]]


# --- helpers ----------------------------------------------------------------------------------


def codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def has_coding(concepts: Any, system: str, code: str | None = None) -> bool:
    if isinstance(concepts, dict):
        concepts = [concepts]
    for concept in concepts or []:
        for coding in codings(concept):
            if coding.get("system") == system and (code is None or coding.get("code") == code):
                return True
    return False


def reference_type(reference: Any) -> str | None:
    """The resource type a Reference points at (`.../Type/id`, or `#id` for contained)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    parts = reference["reference"].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-2] if len(parts) >= 2 else None


def _required(*paths: str) -> Check:
    def check(resource: dict[str, Any]) -> Iterable[str]:
        for path in paths:
            choices = path.split("|")
            if not any(_present(resource, choice) for choice in choices):
                yield f"{resource.get('resourceType')}.{path.replace('|', ' or ')} is required"

    return check


def _present(resource: dict[str, Any], path: str) -> bool:
    value: Any = resource
    for part in path.split("."):
        if isinstance(value, list):
            value = [v.get(part) for v in value if isinstance(v, dict)]
            value = [v for v in value if v not in (None, "", [], {})]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return False
        if value in (None, "", [], {}):
            return False
    return True


def _reference_to(path: str, *types: str, required: bool = True) -> Check:
    def check(resource: dict[str, Any]) -> Iterable[str]:
        values = resource.get(path)
        if values is None:
            if required:
                yield f"{resource.get('resourceType')}.{path} is required"
            return
        for value in values if isinstance(values, list) else [values]:
            if not required and isinstance(value, dict) and "reference" not in value:
                continue  # a display or an identifier alone is a Reference too
            kind = reference_type(value)
            if kind not in types:
                yield (
                    f"{resource.get('resourceType')}.{path} must reference "
                    f"{' or '.join(types)}, not {kind or 'nothing'}"
                )

    return check


def _sdoh_categories(path: str, *, at_least: int = 0) -> Check:
    """Codes of the SDOHCC system in these CodeableConcepts are from the SDOH category set."""

    def check(resource: dict[str, Any]) -> Iterable[str]:
        concepts = resource.get(path) or []
        if isinstance(concepts, dict):
            concepts = [concepts]
        found = 0
        for concept in concepts:
            for coding in codings(concept):
                if coding.get("system") != SDOHCC_CODES:
                    continue
                if coding.get("code") not in SDOH_CATEGORIES:
                    yield (
                        f"{resource.get('resourceType')}.{path}: "
                        f"{coding.get('code')!r} is not an SDOH category"
                    )
                else:
                    found += 1
        if found < at_least:
            yield (
                f"{resource.get('resourceType')}.{path} needs an SDOH category "
                "(SDOHCC-ValueSetSDOHCategory)"
            )

    return check


def _resource_type(expected: str) -> Check:
    def check(resource: dict[str, Any]) -> Iterable[str]:
        if resource.get("resourceType") != expected:
            yield f"resourceType must be {expected}, not {resource.get('resourceType')!r}"

    return check


# --- per profile ------------------------------------------------------------------------------


def _patient(resource: dict[str, Any]) -> Iterable[str]:
    for identifier in resource.get("identifier") or []:
        if not identifier.get("system") or not identifier.get("value"):
            yield "Patient.identifier needs a system and a value"
    for name in resource.get("name") or []:
        if not name.get("family") and not name.get("given"):  # us-core-6
            yield "Patient.name needs a family or a given name (us-core-6)"


def _practitioner_role(resource: dict[str, Any]) -> Iterable[str]:
    if not resource.get("telecom") and not resource.get("endpoint"):  # pd-1
        yield "PractitionerRole needs contact details (telecom) or an endpoint (pd-1)"


def _questionnaire_response(resource: dict[str, Any]) -> Iterable[str]:
    if resource.get("status") not in {
        "in-progress",
        "completed",
        "amended",
        "entered-in-error",
        "stopped",
    }:
        yield f"QuestionnaireResponse.status {resource.get('status')!r} is not allowed"
    for item in resource.get("item") or []:
        if not item.get("linkId"):
            yield "QuestionnaireResponse.item.linkId is required"
        if not item.get("answer") and not item.get("item"):
            yield f"QuestionnaireResponse.item {item.get('linkId')} has no answer (qrs-1)"


def _observation(resource: dict[str, Any]) -> Iterable[str]:
    if resource.get("status") not in OBSERVATION_STATUSES:
        yield (
            f"Observation.status {resource.get('status')!r} "
            "is not in SDOHCC-ValueSetObservationStatus"
        )
    categories = resource.get("category") or []
    if len(categories) < 2:
        yield "Observation.category needs at least 2 codings (2..*)"
    if not has_coding(categories, US_CORE_CATEGORY, "sdoh"):
        yield "Observation.category must include us-core-category#sdoh (SDOH-Obs-4)"
    if not has_coding(resource.get("code"), LOINC):
        yield "Observation.code must be a LOINC code"
    if not any(
        resource.get(key)
        for key in (
            "valueCodeableConcept",
            "valueInteger",
            "valueQuantity",
            "valueString",
            "valueBoolean",
            "component",
            "hasMember",
            "dataAbsentReason",
        )
    ):  # us-core-2
        yield "Observation needs a value, components, members or a dataAbsentReason (us-core-2)"
    interpretation = resource.get("interpretation") or []
    if has_coding(interpretation, INTERPRETATION, "POS") and not any(
        has_coding(categories, SDOHCC_CODES, code) for code in SDOH_CATEGORIES
    ):
        yield "A positive Observation should name the SDOH domain it is positive for"


def _condition(resource: dict[str, Any]) -> Iterable[str]:
    categories = resource.get("category") or []
    # SDOH-Con-2. Older senders put health-concern in the HL7 condition-category system.
    concern = (
        has_coding(categories, US_CORE_CONDITION_CATEGORY, "health-concern")
        or has_coding(categories, CONDITION_CATEGORY, "health-concern")
        or has_coding(categories, CONDITION_CATEGORY, "problem-list-item")
        or has_coding(categories, CONDITION_CATEGORY, "encounter-diagnosis")
    )
    if not concern:
        yield (
            "Condition.category needs health-concern, problem-list-item or "
            "encounter-diagnosis (SDOH-Con-2)"
        )
    if not has_coding(categories, US_CORE_CATEGORY, "sdoh"):
        yield "Condition.category must include us-core-category#sdoh (SDOH-Con-3)"
    asserters = 1 if resource.get("asserter") else 0
    asserters += sum(
        1
        for ext in resource.get("extension") or []
        if ext.get("url", "").endswith("SDOHCC-ExtensionConditionAsserter")
    )
    if asserters > 1:
        yield "Condition can have at most one asserter (SDOH-Con-1)"
    code = resource.get("code") or {}
    if not codings(code) and not code.get("text"):
        yield "Condition.code is required"
    verification = codings(resource.get("verificationStatus"))
    if verification:
        value = verification[0].get("code")
        if value not in {
            "unconfirmed",
            "provisional",
            "differential",
            "confirmed",
            "refuted",
            "entered-in-error",
        }:
            yield f"Condition.verificationStatus {value!r} is not allowed"
        if value == "entered-in-error" and resource.get("clinicalStatus"):  # con-5
            yield "Condition.clinicalStatus must be absent when entered-in-error (con-5)"
    elif not resource.get("clinicalStatus"):
        yield "Condition.clinicalStatus is required (con-3)"
    if (
        resource.get("abatementDateTime")
        and not has_coding(resource.get("clinicalStatus"), CONDITION_CLINICAL, "inactive")
        and not any(
            has_coding(resource.get("clinicalStatus"), CONDITION_CLINICAL, c)
            for c in ("resolved", "remission")
        )
    ):
        yield "An abated Condition must be inactive, resolved or in remission (con-4)"
    for evidence in resource.get("evidence") or []:
        for detail in evidence.get("detail") or []:
            if reference_type(detail) not in {"Observation", "Condition"}:
                yield "Condition.evidence.detail should reference Observations or Conditions"


def _consent(resource: dict[str, Any]) -> Iterable[str]:
    if not has_coding(resource.get("category"), ACT_CODE, "IDSCL"):
        yield "Consent.category must include v3-ActCode#IDSCL"
    if not resource.get("policy") and not resource.get("policyRule"):  # ppc-1
        yield "Consent needs a policy or a policyRule (ppc-1)"
    if not resource.get("sourceAttachment") and not resource.get("sourceReference"):
        yield "Consent.source[x] is required"
    if has_coding(resource.get("scope"), CONSENT_SCOPE, "patient-privacy") and not resource.get(
        "patient"
    ):
        yield "A privacy Consent needs a patient (ppc-2)"
    for actor in (resource.get("provision") or {}).get("actor") or []:
        if not actor.get("role") or not actor.get("reference"):
            yield "Consent.provision.actor needs a role and a reference"


def _service_request(resource: dict[str, Any]) -> Iterable[str]:
    for detail in resource.get("orderDetail") or []:
        if has_coding(detail, SDOHCC_CODES) and not has_coding(
            detail, SDOHCC_CODES, "contacting-subject-prohibited"
        ):
            yield (
                "ServiceRequest.orderDetail from the SDOHCC codes must be "
                "contacting-subject-prohibited"
            )
    code = resource.get("code") or {}
    if not codings(code) and not code.get("text"):
        yield "ServiceRequest.code is required (US Core)"
    if resource.get("intent") not in {
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }:
        yield f"ServiceRequest.intent {resource.get('intent')!r} is not allowed"


def _task(resource: dict[str, Any]) -> Iterable[str]:
    status = resource.get("status")
    if status not in TASK_STATUSES:
        yield f"Task.status {status!r} is not in SDOHCC-ValueSetReferralTaskStatus"
    if resource.get("intent") != "order":
        yield "Task.intent is fixed to order"
    if not has_coding(resource.get("code"), TASK_CODE, "fulfill"):
        yield "Task.code is fixed to task-code#fulfill"
    reason = resource.get("statusReason")
    if reason is not None and not reason.get("text"):
        yield "Task.statusReason.text is required when statusReason is present"
    if status in TASK_STATUSES_WITH_REASON and not (reason or {}).get("text"):
        yield f"A {status} Task needs statusReason.text"
    resulting = [
        output
        for output in resource.get("output") or []
        if has_coding(output.get("type"), SDOHCC_CODES, "resulting-activity")
    ]
    for output in resulting:
        if output.get("valueReference") is not None:
            if reference_type(output["valueReference"]) != "Procedure":
                yield "Task.output resulting-activity must reference a Procedure"
        elif not output.get("valueCodeableConcept"):
            yield "Task.output resulting-activity needs a Procedure reference or a procedure code"
    if status == "completed" and not resulting:
        yield "A completed Task needs an output of type resulting-activity"


def _procedure(resource: dict[str, Any]) -> Iterable[str]:
    status = resource.get("status")
    if status in {"completed", "in-progress"} and not any(
        key.startswith("performed") for key in resource
    ):  # us-core-7
        yield "Procedure.performed[x] is required when completed or in progress (us-core-7)"
    code = resource.get("code") or {}
    if not codings(code) and not code.get("text"):
        yield "Procedure.code is required"


def _goal(resource: dict[str, Any]) -> Iterable[str]:
    status = resource.get("lifecycleStatus")
    if status not in GOAL_LIFECYCLE_STATUSES:
        yield f"Goal.lifecycleStatus {status!r} is not a goal lifecycle status"
    for achievement in codings(resource.get("achievementStatus")):
        if achievement.get("system") == GOAL_ACHIEVEMENT and (
            achievement.get("code") not in GOAL_ACHIEVEMENT_STATUSES
        ):
            yield f"Goal.achievementStatus {achievement.get('code')!r} is not in goal-achievement"
    description = resource.get("description") or {}
    if not codings(description) and not description.get("text"):
        yield "Goal.description needs a code or a text (US Core: free text when no code fits)"
    for target in resource.get("target") or []:
        has_detail = any(key.startswith("detail") for key in target)
        if has_detail and not target.get("measure"):  # gol-1
            yield "Goal.target.measure is required when a target detail is given (gol-1)"


def _healthcare_service(resource: dict[str, Any]) -> Iterable[str]:
    if not resource.get("name"):
        yield "HealthcareService.name is expected"


PROFILE_RULES: dict[str, tuple[Check, ...]] = {
    US_CORE_PATIENT: (
        _resource_type("Patient"),
        _required("identifier", "name", "gender"),
        _patient,
    ),
    US_CORE_ORGANIZATION: (
        _resource_type("Organization"),
        _required("active", "name"),
    ),
    US_CORE_PRACTITIONER_ROLE: (
        _resource_type("PractitionerRole"),
        _required("practitioner", "organization"),
        _reference_to("organization", "Organization"),
        _practitioner_role,
    ),
    US_CORE_LOCATION: (
        _resource_type("Location"),
        _required("name"),
    ),
    HEALTHCARE_SERVICE: (
        _resource_type("HealthcareService"),
        _reference_to("providedBy", "Organization", required=False),
        _reference_to("location", "Location", required=False),
        _sdoh_categories("category"),
        _healthcare_service,
    ),
    SDC_QUESTIONNAIRE_RESPONSE: (
        _resource_type("QuestionnaireResponse"),
        _required("questionnaire", "status", "subject", "authored"),
        _reference_to("subject", "Patient"),
        _questionnaire_response,
    ),
    OBSERVATION_SCREENING_RESPONSE: (
        _resource_type("Observation"),
        _required("status", "category", "code", "subject", "effectiveDateTime|effectivePeriod"),
        _reference_to("subject", "Patient"),
        _reference_to(
            "derivedFrom",
            "QuestionnaireResponse",
            "Observation",
            "DocumentReference",
            required=False,
        ),
        _reference_to("hasMember", "Observation", "QuestionnaireResponse", required=False),
        _sdoh_categories("category"),
        _observation,
    ),
    CONDITION: (
        _resource_type("Condition"),
        _required("category", "code", "subject"),
        _reference_to("subject", "Patient"),
        _sdoh_categories("category"),
        _condition,
    ),
    CONSENT: (
        _resource_type("Consent"),
        _required("status", "scope", "category", "patient", "dateTime", "organization"),
        _reference_to("patient", "Patient"),
        _reference_to("organization", "Organization"),
        _consent,
    ),
    SERVICE_REQUEST: (
        _resource_type("ServiceRequest"),
        _required("status", "intent", "category", "code", "subject"),
        _reference_to("subject", "Patient", "Group", "Location"),
        _reference_to(
            "requester",
            "Organization",
            "PractitionerRole",
            "Practitioner",
            "Patient",
            "RelatedPerson",
            "Device",
            required=False,
        ),
        _reference_to("reasonReference", "Condition", "Observation", required=False),
        _reference_to("supportingInfo", "Consent", required=False),
        _sdoh_categories("category", at_least=1),
        _service_request,
    ),
    TASK: (
        _resource_type("Task"),
        _required("status", "intent", "code", "focus", "for", "authoredOn", "requester"),
        _reference_to("focus", "ServiceRequest"),
        _reference_to("for", "Patient", "RelatedPerson", "Group"),
        _reference_to("requester", "Organization", "PractitionerRole"),
        _reference_to(
            "owner", "Organization", "PractitionerRole", "HealthcareService", required=False
        ),
        _reference_to("partOf", "Task", required=False),
        _task,
    ),
    GOAL: (
        _resource_type("Goal"),
        _required("lifecycleStatus", "description", "subject"),
        _reference_to("subject", "Patient"),  # US Core narrows the base's Group, Organization
        _reference_to(
            "expressedBy",
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            required=False,
        ),
        _reference_to("addresses", "Condition", "Observation", "RiskAssessment", required=False),
        _sdoh_categories("category"),
        _goal,
    ),
    PROCEDURE: (
        _resource_type("Procedure"),
        _required("status", "code", "subject"),
        _reference_to("subject", "Patient"),
        _reference_to("basedOn", "ServiceRequest", "CarePlan", required=False),
        _sdoh_categories("category"),
        _procedure,
    ),
}


def check_profile(resource: dict[str, Any], profile: str) -> list[str]:
    """What in the resource breaks the profile's fixed values, required elements and
    invariants; [] when nothing does. An unknown profile is a problem in itself."""
    rules = PROFILE_RULES.get(profile)
    if rules is None:
        return [f"We have no rules for the profile {profile}"]
    problems: list[str] = []
    for rule in rules:
        problems.extend(rule(resource))
    return problems


def check(resource: dict[str, Any]) -> list[str]:
    """Check a resource against every profile its meta.profile claims (at least one)."""
    claimed = (resource.get("meta") or {}).get("profile") or []
    if not claimed:
        return [f"{resource.get('resourceType')} claims no profile (meta.profile)"]
    problems: list[str] = []
    for profile in claimed:
        problems.extend(check_profile(resource, profile))
    return problems


__all__ = ["PROFILE_RULES", "SNOMED", "check", "check_profile", "has_coding", "reference_type"]
