"""Our records as FHIR R4 resources (Gravity SDOH Clinical Care 2.3.0 on US Core 7.0.0).

Pure: each function takes model instances already loaded (it may follow their relationships)
and the FHIR base URL, and returns a JSON-ready dict. No Flask, no session calls. Every
resource names its profile in meta.profile; references are absolute (`{base}/{Type}/{id}`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from referrals.fhir import profiles as p
from referrals.loop.lifecycle import OPEN
from referrals.patients.instruments import INSTRUMENTS, LOINC
from referrals.patients.needs import ICD_10_CM, goal_codes
from referrals.terminology import (
    CALIFORNIA,
    CONSENT_METHOD_LABELS,
    GUARDIAN_RELATIONSHIPS,
    LANGUAGES,
    SDOH_CATEGORIES,
    SDOHCC_CODES,
    SNOMED,
    SOCIAL_SERVICE_CATEGORY,
)

Json = dict[str, Any]

BUSINESS_STATUS_SYSTEM = "urn:referrals:business-status"  # = loop.reasons.BUSINESS_STATUS_SYSTEM
STATUS_REASON_SYSTEM = "urn:referrals:status-reason"
ORGANIZATION_KIND_SYSTEM = "urn:referrals:organization-kind"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
GOAL_ACHIEVEMENT_LABELS = {"in-progress": "In Progress", "improving": "Improving"}

# Our organisation kinds in http://terminology.hl7.org/CodeSystem/organization-type
ORGANIZATION_TYPES = {
    "clinic": ("prov", "Healthcare Provider"),
    "cbo": ("cbo", "Community Based Organization"),
    "school": ("edu", "Educational Institute"),
    "network": ("other", "Other"),
    "exchange": ("other", "Other"),
}
# Guardian.relationship -> v3-RoleCode (Patient.contact.relationship)
GUARDIAN_ROLE_CODES = {
    "mother": ("MTH", "mother"),
    "father": ("FTH", "father"),
    "parent": ("PRN", "parent"),
    "grandparent": ("GRPRN", "grandparent"),
    "legal-guardian": ("GUARD", "guardian"),
    "foster-parent": ("PRNFOST", "foster parent"),
}
WEEKDAYS = {
    "MO": "mon",
    "TU": "tue",
    "WE": "wed",
    "TH": "thu",
    "FR": "fri",
    "SA": "sat",
    "SU": "sun",
}


# --- small pieces -----------------------------------------------------------------------------


def url(base: str, resource_type: str, key: uuid.UUID | str) -> str:
    return f"{base.rstrip('/')}/{resource_type}/{key}"


def reference(
    base: str, resource_type: str, key: uuid.UUID | str, display: str | None = None
) -> Json:
    ref: Json = {"reference": url(base, resource_type, key), "type": resource_type}
    if display:
        ref["display"] = display
    return ref


def instant(value: datetime) -> str:
    """An instant with a time zone (naive values are UTC, as we store them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # Microseconds: a client polling with _lastUpdated=gt<this> must not skip what changed
    # later in the same second.
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def coding(system: str, code: str, display: str | None = None) -> Json:
    out: Json = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(*codings: Json, text: str | None = None) -> Json:
    out: Json = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def sdoh_category(domain: str) -> Json:
    return concept(coding(SDOHCC_CODES, domain, SDOH_CATEGORIES.get(domain, domain)))


SDOH = concept(coding(p.US_CORE_CATEGORY, "sdoh", "SDOH"))


def _meta(profile: str, updated: datetime | None = None, version: int | None = None) -> Json:
    meta: Json = {"profile": [profile]}
    if version is not None:
        meta["versionId"] = str(version)
    if updated is not None:
        meta["lastUpdated"] = instant(updated)
    return meta


def _resource(resource_type: str, key: uuid.UUID, meta: Json) -> Json:
    return {"resourceType": resource_type, "id": str(key), "meta": meta}


def _language(code: str) -> Json:
    name = LANGUAGES.get(code, (code, code))[0]
    return concept(coding(p.BCP47, code, name), text=name)


def _phone(number: str | None, use: str | None = None) -> list[Json]:
    if not number:
        return []
    out: Json = {"system": "phone", "value": number}
    if use:
        out["use"] = use
    return [out]


def _identifiers(record: Any) -> list[Json]:
    """The identifiers a partner's system gave this record when it sent it, so it finds its
    own records in what we serve."""
    return [
        {"system": known.system, "value": known.value}
        for known in getattr(record, "identifiers", None) or []
    ]


def _drop_empty(resource: Json) -> Json:
    return {k: v for k, v in resource.items() if v not in (None, "", [], {})}


# --- the parties and the directory ------------------------------------------------------------


def patient_to_fhir(patient: Any, base_url: str) -> Json:
    """US Core Patient: identifiers (MRN when known, and our id), name, gender, birth date,
    phone, preferred language, ZIP code, and the guardians as contacts."""
    identifiers = []
    if patient.mrn:
        identifiers.append(
            {
                "use": "usual",
                "type": concept(
                    coding(
                        "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "MR",
                        "Medical record number",
                    )
                ),
                "system": f"{base_url.rstrip('/')}/sid/mrn/{patient.organization_id}",
                "value": patient.mrn,
            }
        )
    identifiers.append({"system": f"{base_url.rstrip('/')}/sid/patient", "value": str(patient.id)})
    identifiers.extend(_identifiers(patient))
    contacts = []
    for guardian in patient.guardians:
        role = GUARDIAN_ROLE_CODES.get(guardian.relationship_code)
        label = GUARDIAN_RELATIONSHIPS.get(guardian.relationship_code, guardian.relationship_code)
        relationship = concept(*([coding(ROLE_CODE, *role)] if role else []), text=label)
        contacts.append(
            _drop_empty(
                {
                    "relationship": [relationship],
                    "name": {"text": guardian.name},
                    "telecom": _phone(guardian.phone, "mobile"),
                }
            )
        )
    resource = _resource("Patient", patient.id, _meta(p.US_CORE_PATIENT, patient.created_at))
    resource.update(
        _drop_empty(
            {
                "identifier": identifiers,
                "active": True,
                "name": [
                    {
                        "use": "official",
                        "family": patient.family_name,
                        "given": [patient.given_name],
                    }
                ],
                "telecom": _phone(patient.phone, "mobile"),
                "gender": patient.gender
                if patient.gender in {"male", "female", "other", "unknown"}
                else "unknown",
                "birthDate": patient.birth_date.isoformat(),
                "address": [{"postalCode": patient.zip_code, "country": "US"}]
                if patient.zip_code
                else [],
                "contact": contacts,
                "communication": [{"language": _language(patient.language), "preferred": True}],
                "managingOrganization": reference(
                    base_url, "Organization", patient.organization_id
                ),
            }
        )
    )
    return resource


def organization_to_fhir(org: Any, base_url: str) -> Json:
    """US Core Organization: active, name, type (organization-type and our own kind)."""
    kind = ORGANIZATION_TYPES.get(org.kind, ("other", "Other"))
    telecom = _phone(org.phone, "work")
    if org.email:
        telecom.append({"system": "email", "value": org.email, "use": "work"})
    if org.website:
        telecom.append({"system": "url", "value": org.website, "use": "work"})
    resource = _resource("Organization", org.id, _meta(p.US_CORE_ORGANIZATION, org.updated_at))
    resource.update(
        _drop_empty(
            {
                "active": True,
                "type": [
                    concept(
                        coding(p.ORGANIZATION_TYPE, *kind),
                        coding(ORGANIZATION_KIND_SYSTEM, org.kind),
                    )
                ],
                "name": org.name,
                "alias": [org.alternate_name] if org.alternate_name else [],
                "telecom": telecom,
                "partOf": reference(base_url, "Organization", org.parent_organization_id)
                if org.parent_organization_id
                else None,
            }
        )
    )
    return resource


def practitioner_role_to_fhir(membership: Any, base_url: str) -> Json:
    """US Core PractitionerRole for a person's membership of an organisation: minimal. We serve
    no Practitioner, so the practitioner is named (display), not referenced."""
    user, org = membership.user, membership.organization
    telecom = [*_phone(org.phone, "work"), {"system": "email", "value": user.email, "use": "work"}]
    resource = _resource(
        "PractitionerRole", membership.id, _meta(p.US_CORE_PRACTITIONER_ROLE, membership.created_at)
    )
    resource.update(
        {
            "active": bool(user.active),
            "practitioner": {"display": user.name},
            "organization": reference(base_url, "Organization", org.id, org.name),
            "code": [concept(coding("urn:referrals:role", membership.role), text=membership.role)],
            "telecom": telecom,
        }
    )
    return resource


def _available_times(schedules: Iterable[Any]) -> list[Json]:
    times = []
    for schedule in schedules:
        days = [
            WEEKDAYS[d.strip()[-2:].upper()]
            for d in (schedule.byday or "").split(",")
            if d.strip()[-2:].upper() in WEEKDAYS
        ]
        entry: Json = {}
        if days:
            entry["daysOfWeek"] = days
        opens, closes = _time(schedule.opens_at), _time(schedule.closes_at)
        if opens and closes:
            entry["availableStartTime"], entry["availableEndTime"] = opens, closes
        elif not days:
            continue  # neither days nor hours: nothing to say
        times.append(entry)
    return times


def _time(value: str | None) -> str | None:
    """HH:MM[offset] as HSDS has it -> FHIR time (hh:mm:ss); the offset is dropped."""
    if not value or len(value) < 5 or value[2] != ":":
        return None
    hours, minutes = value[:2], value[3:5]
    if not (hours.isdigit() and minutes.isdigit()):
        return None
    return f"{hours}:{minutes}:00"


def healthcare_service_to_fhir(service: Any, base_url: str) -> Json:
    """A directory service as a (base) HealthcareService: SDOH domains as category, the SNOMED
    CT service as type, its organisation, locations, hours, eligibility and languages."""
    telecom = [
        {"system": "phone", "value": phone.number, "use": "work"}
        for phone in service.phones
        if phone.number
    ]
    if service.email:
        telecom.append({"system": "email", "value": service.email, "use": "work"})
    if service.url:
        telecom.append({"system": "url", "value": service.url, "use": "work"})
    eligibility = []
    ages = _age_text(service.minimum_age, service.maximum_age)
    if service.eligibility_description or ages:
        eligibility.append(
            _drop_empty(
                {
                    "code": concept(text="Eligibility"),
                    "comment": " ".join(x for x in (service.eligibility_description, ages) if x),
                }
            )
        )
    schedules = list(service.schedules)
    for link in service.service_at_locations:
        schedules.extend(link.schedules)
    resource = _resource(
        "HealthcareService", service.id, _meta(p.HEALTHCARE_SERVICE, service.last_modified)
    )
    resource.update(
        _drop_empty(
            {
                "active": service.status == "active",
                "providedBy": reference(
                    base_url, "Organization", service.organization_id, service.organization.name
                ),
                "category": [sdoh_category(c) for c in service.categories if c in SDOH_CATEGORIES],
                "type": [concept(coding(SNOMED, service.service_code, service.service_display))],
                "location": [
                    reference(base_url, "Location", link.location_id)
                    for link in service.service_at_locations
                ],
                "name": service.name,
                "comment": service.description or None,
                "extraDetails": service.application_process or None,
                "telecom": telecom,
                "eligibility": eligibility,
                "communication": [_language(code) for code in service.language_codes or []],
                "referralMethod": [
                    concept(
                        coding(
                            "http://terminology.hl7.org/CodeSystem/service-referral-method",
                            "elec",
                            "Secure Messaging",
                        )
                    )
                ]
                if service.accepts_electronic_referrals
                else [],
                "availableTime": _available_times(schedules),
            }
        )
    )
    return resource


def _age_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"Ages {minimum} to {maximum}."
    if minimum is not None:
        return f"Ages {minimum} and up."
    if maximum is not None:
        return f"Ages up to {maximum}."
    return ""


def location_to_fhir(location: Any, base_url: str) -> Json:
    """US Core Location: name, address, position, managing organisation."""
    addresses = [
        _drop_empty(
            {
                "use": "work",
                "type": "postal" if a.address_type == "postal" else "physical",
                "line": [line for line in (a.address_1, a.address_2) if line],
                "city": a.city,
                "district": a.region,
                "state": a.state_province,
                "postalCode": a.postal_code,
                "country": a.country,
            }
        )
        for a in location.addresses
    ]
    physical = [a for a in addresses if a.get("type") == "physical"] or addresses
    resource = _resource("Location", location.id, _meta(p.US_CORE_LOCATION))
    resource.update(
        _drop_empty(
            {
                "status": "active",
                "name": location.name
                or (physical[0].get("line", ["Location"])[0] if physical else "Location"),
                "alias": [location.alternate_name] if location.alternate_name else [],
                "description": location.description,
                "mode": "instance",
                "telecom": [
                    {"system": "phone", "value": ph.number, "use": "work"}
                    for ph in location.phones
                    if ph.number
                ],
                "address": physical[0] if physical else None,
                "position": {"latitude": location.latitude, "longitude": location.longitude}
                if location.latitude is not None and location.longitude is not None
                else None,
                "managingOrganization": reference(
                    base_url, "Organization", location.organization_id
                )
                if location.organization_id
                else None,
            }
        )
    )
    return resource


# --- the screening ----------------------------------------------------------------------------


def _answer_display(code: str) -> str | None:
    for instrument in INSTRUMENTS.values():
        for question in instrument.questions:
            option = question.option(code)
            if option is not None:
                return option.text.en
        for rule in instrument.rules:
            for option in (getattr(rule, "at_risk", None), getattr(rule, "no_risk", None)):
                if option is not None and option.code == code:
                    return option.text.en
    return None


def _question_domains(code: str) -> list[str]:
    domains: dict[str, None] = {}
    for instrument in INSTRUMENTS.values():
        question = instrument.question(code)
        if question is not None:
            domains.update(dict.fromkeys(question.domains))
        for rule in instrument.rules:
            if rule.code == code:
                domains[rule.domain] = None
    return list(domains)


def _respondent(screening: Any, base_url: str) -> tuple[Json, list[Json]]:
    """QuestionnaireResponse.source, and a contained RelatedPerson when someone other than the
    patient answered (we keep no RelatedPerson resources)."""
    if screening.respondent == "patient":
        return reference(base_url, "Patient", screening.patient_id, screening.respondent_name), []
    related: Json = {
        "resourceType": "RelatedPerson",
        "id": "respondent",
        "patient": reference(base_url, "Patient", screening.patient_id),
        "name": [{"text": screening.respondent_name}],
    }
    guardian = (
        next(
            (g for g in screening.patient.guardians if g.id == screening.respondent_guardian_id),
            None,
        )
        if screening.respondent_guardian_id
        else None
    )
    if guardian is not None:
        role = GUARDIAN_ROLE_CODES.get(guardian.relationship_code)
        related["relationship"] = [
            concept(
                *([coding(ROLE_CODE, *role)] if role else []),
                text=GUARDIAN_RELATIONSHIPS.get(
                    guardian.relationship_code, guardian.relationship_code
                ),
            )
        ]
    return {
        "reference": "#respondent",
        "type": "RelatedPerson",
        "display": screening.respondent_name,
    }, [related]


def questionnaire_response_to_fhir(screening: Any, base_url: str) -> Json:
    """SDC QuestionnaireResponse: one item per answered question (linkId = the LOINC code,
    answers as LOINC answer codings), then the instrument's own results; skipped questions
    are left out."""
    instrument = INSTRUMENTS.get(screening.instrument)
    items = []
    questions = instrument.questions if instrument else ()
    known = {q.code for q in questions}
    for question in questions:
        answer = screening.answers.get(question.code)
        if not answer or answer == "skipped":
            continue
        items.append(
            {
                "linkId": question.code,
                "text": question.text.in_language(screening.language),
                "answer": [
                    {
                        "valueCoding": coding(
                            LOINC,
                            code,
                            (question.option(code).text.en if question.option(code) else None),
                        )
                    }
                    for code in answer
                ],
            }
        )
    for code, answer in screening.answers.items():  # answers to questions no longer listed
        if code in known or not answer or answer == "skipped":
            continue
        items.append(
            {
                "linkId": code,
                "answer": [{"valueCoding": coding(LOINC, c, _answer_display(c))} for c in answer],
            }
        )
    if screening.completed:
        for result in screening.results or []:
            value = result.get("value")
            if isinstance(value, bool) or value is None:
                continue
            answer_value = (
                {"valueInteger": value}
                if isinstance(value, int)
                else {"valueCoding": coding(LOINC, str(value), _answer_display(str(value)))}
            )
            items.append({"linkId": result["code"], "answer": [answer_value]})
    source, contained = _respondent(screening, base_url)
    resource = _resource(
        "QuestionnaireResponse",
        screening.id,
        _meta(p.SDC_QUESTIONNAIRE_RESPONSE, screening.updated_at, screening.version),
    )
    resource.update(
        _drop_empty(
            {
                "language": screening.language,
                "contained": contained,
                "questionnaire": f"http://loinc.org/q/{screening.instrument_code}",
                "status": "completed" if screening.completed else "in-progress",
                "subject": reference(base_url, "Patient", screening.patient_id),
                "authored": instant(screening.completed_at or screening.updated_at),
                "author": reference(base_url, "Organization", screening.organization_id),
                "source": source,
                "item": items,
            }
        )
    )
    return resource


def observation_to_fhir(observation: Any, base_url: str, screening: Any | None = None) -> Json:
    """SDOHCC-ObservationScreeningResponse: one answered question or one of the instrument's
    results. Categories survey + sdoh + the question's SDOH domains; derivedFrom the
    QuestionnaireResponse; interpretation POS only for a positive answer. With the screening,
    a question answered by the patient names the patient as performer (a derived result has
    no performer, as the profile says)."""
    domains = list(dict.fromkeys([*observation.domains, *_question_domains(observation.code)]))
    categories = [
        concept(coding(p.OBSERVATION_CATEGORY, "survey", "Survey")),
        SDOH,
        *[sdoh_category(d) for d in domains if d in SDOH_CATEGORIES],
    ]
    resource = _resource(
        "Observation",
        observation.id,
        _meta(p.OBSERVATION_SCREENING_RESPONSE, observation.effective_at),
    )
    body: Json = {
        "status": "final",
        "category": categories,
        "code": concept(
            coding(LOINC, observation.code, observation.display), text=observation.display
        ),
        "subject": reference(base_url, "Patient", observation.patient_id),
        "effectiveDateTime": instant(observation.effective_at),
    }
    if observation.value_integer is not None:
        body["valueInteger"] = observation.value_integer
    elif len(observation.answer_codes) == 1:
        code = observation.answer_codes[0]
        body["valueCodeableConcept"] = concept(
            coding(LOINC, code, _answer_display(code) or observation.answer_display),
            text=observation.answer_display,
        )
    elif observation.answer_codes:  # "select all that apply": one component per answer
        body["component"] = [
            {
                "code": concept(coding(LOINC, observation.code, observation.display)),
                "valueCodeableConcept": concept(coding(LOINC, code, _answer_display(code))),
            }
            for code in observation.answer_codes
        ]
    else:
        body["dataAbsentReason"] = concept(
            coding("http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown", "Unknown")
        )
    if observation.positive:
        body["interpretation"] = [concept(coding(p.INTERPRETATION, "POS", "Positive"))]
    if screening is not None and not observation.derived and screening.respondent == "patient":
        body["performer"] = [reference(base_url, "Patient", observation.patient_id)]
    body["derivedFrom"] = [reference(base_url, "QuestionnaireResponse", observation.screening_id)]
    if screening is not None and observation.derived:
        instrument = INSTRUMENTS.get(screening.instrument)
        rule = next(
            (r for r in (instrument.rules if instrument else ()) if r.code == observation.code),
            None,
        )
        if rule is not None:
            body["derivedFrom"] += [
                reference(base_url, "Observation", o.id)
                for o in screening.observations
                if o.code in rule.questions and not o.derived
            ]
    resource.update(body)
    return resource


# --- the need, the consent, the referral --------------------------------------------------------


def _evidence(need: Any, base_url: str) -> list[Json]:
    screening = need.screening
    if screening is None:
        return []
    wanted = set(need.evidence or [])
    matched = [
        o
        for o in screening.observations
        if o.code in wanted or (o.positive and need.domain in (o.domains or []))
    ]
    if not matched:
        return []
    return [{"detail": [reference(base_url, "Observation", o.id, o.display) for o in matched]}]


def condition_to_fhir(need: Any, base_url: str) -> Json:
    """SDOHCC-Condition: a health concern found by a screening (unconfirmed until the clinician
    confirms it, refuted when dismissed), categories health-concern + sdoh + the domain, SNOMED
    CT and ICD-10-CM codings when we have them, evidence -> the screening's observations."""
    codes = []
    if need.snomed_code:
        codes.append(coding(SNOMED, need.snomed_code, need.snomed_display))
    if need.icd10_code:
        codes.append(coding(ICD_10_CM, need.icd10_code, need.icd10_display))
    resource = _resource(
        "Condition", need.id, _meta(p.CONDITION, need.decided_at or need.recorded_at)
    )
    resource.update(
        _drop_empty(
            {
                "identifier": _identifiers(need),
                "clinicalStatus": concept(coding(p.CONDITION_CLINICAL, need.clinical_status)),
                "verificationStatus": concept(coding(p.CONDITION_VERIFICATION, need.verification)),
                "category": [
                    concept(
                        coding(p.US_CORE_CONDITION_CATEGORY, "health-concern", "Health Concern")
                    ),
                    SDOH,
                    sdoh_category(need.domain),
                ],
                "code": concept(*codes, text=need.display),
                "subject": reference(base_url, "Patient", need.patient_id),
                "onsetDateTime": instant(need.recorded_at),
                "recordedDate": instant(need.recorded_at),
                "evidence": _evidence(need, base_url),
            }
        )
    )
    return resource


def has_goal(need: Any) -> bool:
    """A need has a Goal once the clinician confirmed it and the family wants help with it."""
    return need.verification == "confirmed" and bool(need.family_priority)


def _achievement(referrals: Iterable[Any]) -> tuple[str | None, datetime | None]:
    """Goal.achievementStatus from the referrals for the need, with the moment it took effect
    (Goal.statusDate, which the IG asks to keep in step with achievementStatus): `improving`
    once one completed with an outcome (the latest such), else `in-progress` while one is open
    (since the first was sent), else nothing: no referral, or only declined, failed or
    cancelled ones, tell us nothing about the family's progress."""
    tasks = [r.task for r in referrals if r.task is not None]
    done = [t for t in tasks if t.status == "completed" and t.output_code]
    if done:
        return "improving", max(t.closed_at or t.updated_at for t in done)
    open_tasks = [t for t in tasks if t.status in OPEN]
    if open_tasks:
        return "in-progress", min(t.authored_on for t in open_tasks)
    return None, None


def goal_to_fhir(need: Any, referrals: Iterable[Any], base_url: str) -> Json:
    """SDOHCC-Goal for a need the clinician confirmed and the family wants help with (same id
    as the need's Condition, which it `addresses`): lifecycleStatus `active`; achievementStatus
    from `referrals`, those for this need that the reader may see (see _achievement); category
    the SDOH domain; description a SNOMED CT goal where one is confirmed, else words
    (needs.GOAL_CODES); expressedBy the patient, since the family asked for the help;
    startDate the day the family's wish was recorded; lastUpdated the latest change to it or
    to those referrals."""
    if not has_goal(need):
        raise ValueError("Only a confirmed need the family wants help with has a goal.")
    referrals = [r for r in referrals if r.need_id == need.id]
    status, since = _achievement(referrals)
    decided = need.decided_at or need.recorded_at
    changed = [decided, *(r.task.updated_at for r in referrals if r.task is not None)]
    goal = goal_codes(need.domain)
    codes = (
        [coding(goal.snomed.system, goal.snomed.code, goal.snomed.display)] if goal.snomed else []
    )
    resource = _resource("Goal", need.id, _meta(p.GOAL, max(changed, key=_utc)))
    resource.update(
        _drop_empty(
            {
                "lifecycleStatus": "active",
                "achievementStatus": concept(
                    coding(p.GOAL_ACHIEVEMENT, status, GOAL_ACHIEVEMENT_LABELS[status])
                )
                if status
                else None,
                "category": [sdoh_category(need.domain)],
                "description": concept(*codes, text=goal.display),
                "subject": reference(base_url, "Patient", need.patient_id),
                "startDate": _day(decided),
                "expressedBy": reference(base_url, "Patient", need.patient_id),
                "statusDate": _day(since) if since else None,
                "addresses": [reference(base_url, "Condition", need.id, need.display)],
            }
        )
    )
    return resource


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(value: datetime) -> str:
    """The day, in California where our families live, of a moment we store in UTC."""
    return _utc(value).astimezone(CALIFORNIA).date().isoformat()


def _signature_attachment(consent: Any) -> Json:
    method = CONSENT_METHOD_LABELS.get(consent.method, consent.method)
    attachment: Json = {"title": f"Consent to share with {consent.recipient.name}: {method}"}
    signature = consent.signature or ""
    if signature.startswith("data:") and ";base64," in signature:
        header, data = signature.split(";base64,", 1)
        attachment["contentType"] = header[5:] or "image/png"
        attachment["data"] = data
    attachment["creation"] = instant(consent.granted_at)
    return attachment


def consent_to_fhir(consent: Any, base_url: str, organization_id: uuid.UUID | None = None) -> Json:
    """SDOHCC-Consent: permission to disclose to one (non-HIPAA) recipient. The clinic that
    holds the patient's record recorded it and is its custodian (`organization`); the form
    (or the on-screen signature) is the source."""
    clinic = organization_id or consent.patient.organization_id
    performer = (
        reference(base_url, "Patient", consent.patient_id, consent.granted_by_name)
        if consent.granted_by == "patient"
        else {"type": "RelatedPerson", "display": consent.granted_by_name}
    )
    period: Json = {"start": instant(consent.granted_at)}
    if consent.revoked_at is not None:
        period["end"] = instant(consent.revoked_at)
    resource = _resource(
        "Consent", consent.id, _meta(p.CONSENT, consent.revoked_at or consent.created_at)
    )
    resource.update(
        _drop_empty(
            {
                "identifier": _identifiers(consent),
                "status": "active" if consent.status == "active" else "inactive",
                "scope": concept(coding(p.CONSENT_SCOPE, "patient-privacy", "Privacy Consent")),
                "category": [
                    concept(coding(p.ACT_CODE, "IDSCL", "information disclosure")),
                    concept(coding(LOINC, "59284-0", "Patient Consent")),
                ],
                "patient": reference(base_url, "Patient", consent.patient_id),
                "dateTime": instant(consent.granted_at),
                "performer": [performer],
                "organization": [reference(base_url, "Organization", clinic)] if clinic else [],
                "sourceAttachment": _signature_attachment(consent),
                "policyRule": concept(coding(p.ACT_CODE, "OPTIN", "opt-in")),
                "provision": {
                    "type": "permit",
                    "period": period,
                    "actor": [
                        {
                            "role": concept(
                                coding(p.PARTICIPATION_TYPE, "IRCP", "information recipient")
                            ),
                            "reference": reference(
                                base_url,
                                "Organization",
                                consent.recipient_org_id,
                                consent.recipient.name,
                            ),
                        }
                    ],
                    "action": [
                        concept(
                            coding(
                                "http://terminology.hl7.org/CodeSystem/consentaction",
                                "disclose",
                                "Disclose",
                            )
                        )
                    ],
                },
            }
        )
    )
    return resource


def _restricted(sensitive: bool) -> list[Json]:
    """meta.security R (restricted) for minor-consent referrals: never for a guardian's eyes."""
    return [coding(CONFIDENTIALITY, "R", "restricted")] if sensitive else []


def service_request_to_fhir(referral: Any, base_url: str) -> Json:
    """SDOHCC-ServiceRequest: what is asked, of whom, for which need, under which consent."""
    meta = _meta(p.SERVICE_REQUEST, referral.updated_at)
    if referral.sensitive:
        meta["security"] = _restricted(True)
    resource = _resource("ServiceRequest", referral.id, meta)
    resource.update(
        _drop_empty(
            {
                "identifier": _identifiers(referral),
                "basedOn": [{"reference": referral.based_on}]
                if getattr(referral, "based_on", "")
                else [],
                "status": referral.status,
                "intent": referral.intent or "order",
                "category": [
                    concept(coding(SNOMED, *SOCIAL_SERVICE_CATEGORY)),
                    sdoh_category(referral.category),
                ],
                "priority": referral.priority,
                "code": concept(
                    coding(SNOMED, referral.code, referral.code_display), text=referral.code_display
                ),
                "orderDetail": [
                    concept(
                        coding(
                            SDOHCC_CODES,
                            "contacting-subject-prohibited",
                            "Contacting subject prohibited",
                        )
                    )
                ]
                if referral.contact_prohibited
                else [],
                "subject": reference(base_url, "Patient", referral.patient_id),
                "authoredOn": instant(referral.created_at),
                "requester": reference(
                    base_url, "Organization", referral.requester_org_id, referral.requester_org.name
                ),
                "performer": [
                    reference(
                        base_url,
                        "Organization",
                        referral.performer_org_id,
                        referral.performer_org.name,
                    ),
                    reference(
                        base_url, "HealthcareService", referral.service_id, referral.service.name
                    ),
                ],
                "reasonReference": [reference(base_url, "Condition", referral.need_id)]
                if referral.need_id
                else [],
                "supportingInfo": [reference(base_url, "Consent", referral.consent_id)]
                if referral.consent_id
                else [],
                "note": [{"text": referral.note}] if referral.note else [],
            }
        )
    )
    return resource


def task_to_fhir(task: Any, base_url: str) -> Json:
    """SDOHCC-TaskForReferralManagement: the recipient's work on the referral, versioned."""
    referral = task.referral
    meta = _meta(p.TASK, task.updated_at, task.version)
    if referral.sensitive:
        meta["security"] = _restricted(True)
    status_reason = None
    if task.status_reason:
        status_reason = concept(
            *(
                [coding(STATUS_REASON_SYSTEM, task.status_reason_code)]
                if task.status_reason_code
                else []
            ),
            text=task.status_reason,
        )
    business = None
    if task.business_status:
        from referrals.loop.reasons import BUSINESS_STATUS_LABELS

        business = concept(
            coding(
                BUSINESS_STATUS_SYSTEM,
                task.business_status,
                BUSINESS_STATUS_LABELS.get(task.business_status),
            ),
            text=BUSINESS_STATUS_LABELS.get(task.business_status, task.business_status),
        )
    period: Json = {}
    if task.responded_at:
        period["start"] = instant(task.responded_at)
    if task.closed_at:
        period["end"] = instant(task.closed_at)
    outputs = []
    if task.output_code:
        outputs.append(
            {
                "type": concept(coding(SDOHCC_CODES, "resulting-activity", "Resulting Activity")),
                "valueReference": reference(base_url, "Procedure", task.id, task.output_display),
            }
        )
    resource = _resource("Task", task.id, meta)
    resource.update(
        _drop_empty(
            {
                "identifier": _identifiers(task),
                "partOf": [{"reference": task.part_of}] if getattr(task, "part_of", "") else [],
                "status": task.status,
                "statusReason": status_reason,
                "businessStatus": business,
                "intent": "order",
                "priority": referral.priority,
                "code": concept(coding(p.TASK_CODE, "fulfill", "Fulfill the focal request")),
                "focus": reference(base_url, "ServiceRequest", referral.id),
                "for": reference(base_url, "Patient", referral.patient_id),
                "executionPeriod": period,
                "authoredOn": instant(task.authored_on),
                "lastModified": instant(task.updated_at),
                "requester": reference(base_url, "Organization", task.requester_org_id),
                "owner": reference(
                    base_url, "Organization", task.owner_org_id, task.owner_org.name
                ),
                "note": [{"text": task.outcome_note}] if task.outcome_note else [],
                "output": outputs,
            }
        )
    )
    return resource


def procedure_to_fhir(task: Any, base_url: str) -> Json:
    """SDOHCC-Procedure: what the recipient did, recorded when it completed the Task (same id
    as the Task: one Procedure per completed Task)."""
    referral = task.referral
    if not task.output_code:
        raise ValueError("This task recorded no procedure.")
    meta = _meta(p.PROCEDURE, task.closed_at or task.updated_at)
    if referral.sensitive:
        meta["security"] = _restricted(True)
    resource = _resource("Procedure", task.id, meta)
    resource.update(
        _drop_empty(
            {
                "basedOn": [reference(base_url, "ServiceRequest", referral.id)],
                "status": "completed",
                "category": sdoh_category(referral.category),
                "code": concept(
                    coding(SNOMED, task.output_code, task.output_display), text=task.output_display
                ),
                "subject": reference(base_url, "Patient", referral.patient_id),
                "performedDateTime": instant(task.closed_at or task.updated_at),
                "performer": [
                    {
                        "actor": reference(
                            base_url, "Organization", task.owner_org_id, task.owner_org.name
                        )
                    }
                ],
                "reasonReference": [reference(base_url, "Condition", referral.need_id)]
                if referral.need_id
                else [],
                "note": [{"text": task.outcome_note}] if task.outcome_note else [],
            }
        )
    )
    return resource


# --- envelopes --------------------------------------------------------------------------------


def operation_outcome(
    severity: str, code: str, diagnostics: str, expression: str | None = None
) -> Json:
    issue: Json = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _base_of(self_url: str) -> str:
    path = self_url.split("?", 1)[0].rstrip("/")
    head, _, last = path.rpartition("/")
    return head if last[:1].isupper() else path


def bundle_searchset(
    resources: Sequence[Json],
    total: int,
    self_url: str,
    next_url: str | None = None,
    *,
    included: Sequence[Json] = (),
    base_url: str | None = None,
) -> Json:
    """A searchset Bundle: the matches (and `_include`d resources), with self and next links."""
    base = (base_url or _base_of(self_url)).rstrip("/")
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries = [
        {
            "fullUrl": url(base, resource["resourceType"], resource["id"]),
            "resource": resource,
            "search": {"mode": mode},
        }
        for mode, group in (("match", resources), ("include", included))
        for resource in group
    ]
    return _drop_empty(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": links,
            "entry": entries,
        }
    ) | {"total": total}


__all__ = [
    "bundle_searchset",
    "condition_to_fhir",
    "consent_to_fhir",
    "goal_to_fhir",
    "has_goal",
    "healthcare_service_to_fhir",
    "location_to_fhir",
    "observation_to_fhir",
    "operation_outcome",
    "organization_to_fhir",
    "patient_to_fhir",
    "practitioner_role_to_fhir",
    "procedure_to_fhir",
    "questionnaire_response_to_fhir",
    "service_request_to_fhir",
    "task_to_fhir",
]
