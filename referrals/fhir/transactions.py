"""A referral sent as a FHIR transaction Bundle (the IG's referral from a clinic's system):
Patient when new, Consent, Condition, ServiceRequest and Task, read into the one
`loop.intake.IncomingReferral` the service writes. Pure: the Bundle in, the referral or a
FhirProblem naming the entry and element out; nothing here reads the database.

Accepted: `POST` entries only, each `fullUrl` a `urn:uuid:` (or any URL) the other entries may
reference; `ifNoneExist` as `identifier=system|value`; references relative (`Patient/<id>`),
absolute on this server, or to another entry. Exactly one ServiceRequest, at most one of each
other type. What partners really send is taken as they send it: a Task `received`, a
ServiceRequest `original-order` from an intermediary, extensions we do not know."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from urllib.parse import unquote

from marshmallow import ValidationError

from referrals.fhir import profiles as p
from referrals.fhir.mapping import GUARDIAN_ROLE_CODES
from referrals.fhir.tasks import FhirProblem
from referrals.forms import normalize_phone
from referrals.loop.intake import (
    ConsentPart,
    Identifier,
    IncomingReferral,
    NeedPart,
    PatientPart,
    ReferralPart,
)
from referrals.patients.needs import ICD_10_CM
from referrals.terminology import (
    CALIFORNIA,
    LANGUAGES,
    PRIORITIES,
    SDOH_CATEGORIES,
    SDOHCC_CODES,
    SNOMED,
)
from referrals.text_values import utc_moment

ACCEPTED = ("Patient", "Consent", "Condition", "ServiceRequest", "Task")
REFERRAL_INTENTS = frozenset({"order", "original-order", "filler-order", "instance-order"})
NEW_TASK_STATUSES = frozenset({"requested", "received"})
RELATED_PERSON_CODES = {code: ours for ours, (code, _) in GUARDIAN_ROLE_CODES.items()} | {
    "GUARD": "legal-guardian",
    "NMTH": "mother",
    "NFTH": "father",
    "STPPRN": "parent",
    "GRMTH": "grandparent",
    "GRFTH": "grandparent",
}
V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass
class Entry:
    """One request of the Bundle."""

    index: int
    resource_type: str
    resource: dict[str, Any]
    full_url: str | None
    if_none_exist: Identifier | None

    @property
    def path(self) -> str:
        return f"Bundle.entry[{self.index}].resource"


@dataclass
class Parsed:
    incoming: IncomingReferral
    entries: list[Entry]
    types: set[str] = field(default_factory=set)
    # What we took differently from what was sent, per entry index (OperationOutcome warnings).
    warnings: dict[int, list[str]] = field(default_factory=dict)


def problem(status: int, code: str, diagnostics: str, expression: str | None = None) -> FhirProblem:
    return FhirProblem(status, code, diagnostics, expression)


# --- the Bundle ---------------------------------------------------------------------------------


def parse_transaction(bundle: dict[str, Any], base: str) -> Parsed:
    """The referral a transaction Bundle sends, or the FhirProblem saying what is wrong."""
    if bundle.get("type") != "transaction":
        raise problem(
            400,
            "not-supported",
            f"Send a transaction Bundle; type {bundle.get('type')!r} is not accepted here.",
            "Bundle.type",
        )
    raw_entries = bundle.get("entry") or []
    if not raw_entries:
        raise problem(400, "required", "The Bundle has no entries.", "Bundle.entry")
    entries = [_entry(index, raw) for index, raw in enumerate(raw_entries)]
    by_url: dict[str, Entry] = {}
    for entry in entries:
        if entry.full_url:
            if entry.full_url in by_url:
                raise problem(
                    400,
                    "invalid",
                    f"Two entries have the fullUrl {entry.full_url}.",
                    f"Bundle.entry[{entry.index}].fullUrl",
                )
            by_url[entry.full_url] = entry
    of_type: dict[str, list[Entry]] = {t: [] for t in ACCEPTED}
    for entry in entries:
        of_type[entry.resource_type].append(entry)
    requests = of_type["ServiceRequest"]
    if len(requests) != 1:
        raise problem(
            422,
            "business-rule",
            f"A referral Bundle holds exactly one ServiceRequest, not {len(requests)}: send each "
            "referral in its own transaction.",
            "Bundle.entry",
        )
    for resource_type in ("Patient", "Consent", "Condition", "Task"):
        if len(of_type[resource_type]) > 1:
            extra = of_type[resource_type][1]
            raise problem(
                422,
                "business-rule",
                f"A referral Bundle holds at most one {resource_type}.",
                extra.path,
            )
    refs = _References(base, by_url)
    for entry in entries:
        _check_profile(entry, by_url)
    patient_entry = _single(of_type["Patient"])
    service_request = requests[0]
    warnings: dict[int, list[str]] = {}
    patient = _patient_part(patient_entry, service_request, refs, warnings)
    need = _need_part(_single(of_type["Condition"]), service_request, patient_entry, refs)
    consent = _consent_part(_single(of_type["Consent"]), service_request, patient_entry, refs)
    referral = _referral_part(service_request, _single(of_type["Task"]), patient_entry, refs)
    return Parsed(
        IncomingReferral(patient=patient, referral=referral, need=need, consent=consent),
        entries,
        {entry.resource_type for entry in entries},
        warnings,
    )


def _single(entries: list[Entry]) -> Entry | None:
    return entries[0] if entries else None


def _entry(index: int, raw: Any) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise problem(400, "structure", f"{where} is not an object.", where)
    resource = raw.get("resource")
    if not isinstance(resource, dict):
        raise problem(400, "required", f"{where} has no resource.", f"{where}.resource")
    resource_type = resource.get("resourceType")
    request = raw.get("request") or {}
    method = request.get("method")
    if method != "POST":
        raise problem(
            400,
            "not-supported",
            f"{where}.request.method is {method!r}: a referral Bundle creates, with POST. "
            "Update a Task with PUT /fhir/Task/<id>.",
            f"{where}.request.method",
        )
    if resource_type not in ACCEPTED:
        raise problem(
            422,
            "not-supported",
            f"{where}: a referral Bundle creates {', '.join(ACCEPTED)}, not {resource_type}. "
            "Reference the others (the directory's Organization and HealthcareService).",
            f"{where}.resource.resourceType",
        )
    url = str(request.get("url") or "").split("?", 1)[0].strip("/")
    if url != resource_type:
        raise problem(
            400,
            "invalid",
            f"{where}.request.url is {request.get('url')!r}, not {resource_type}.",
            f"{where}.request.url",
        )
    return Entry(
        index,
        resource_type,
        resource,
        raw.get("fullUrl"),
        _if_none_exist(request.get("ifNoneExist"), f"{where}.request.ifNoneExist"),
    )


def _if_none_exist(value: Any, path: str) -> Identifier | None:
    """`identifier=system|value`, the one condition we match creates on."""
    if value in (None, ""):
        return None
    text = str(value).lstrip("?")
    name, _, token = text.partition("=")
    system, bar, code = unquote(token).partition("|")
    if name != "identifier" or "&" in text or not bar or not system or not code:
        raise problem(
            400,
            "not-supported",
            f"ifNoneExist {value!r}: only identifier=<system>|<value> is supported.",
            path,
        )
    return system, code


def _identifiers(entry: Entry) -> list[Identifier]:
    found: list[Identifier] = [
        (str(i["system"]), str(i["value"]))
        for i in entry.resource.get("identifier") or []
        if isinstance(i, dict) and i.get("system") and i.get("value")
    ]
    if entry.if_none_exist:
        found.insert(0, entry.if_none_exist)
    for system, value in found:
        if len(system) > 255 or len(value) > 255:
            raise problem(422, "too-long", "Identifiers are limited to 255 characters.", entry.path)
    return list(dict.fromkeys(found))


PROFILES = {
    "Patient": p.US_CORE_PATIENT,
    "Condition": p.CONDITION,
    "Consent": p.CONSENT,
    "ServiceRequest": p.SERVICE_REQUEST,
    "Task": p.TASK,
}


def _typed(value: Any, by_url: dict[str, Entry]) -> Any:
    """The resource with references to other entries written `Type/<fullUrl>`, so that the
    profile rules see what they point at."""
    if isinstance(value, list):
        return [_typed(item, by_url) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: _typed(item, by_url) for key, item in value.items()}
    target = by_url.get(value.get("reference")) if isinstance(value.get("reference"), str) else None
    if target is not None:
        out["reference"] = f"{target.resource_type}/{value['reference']}"
    return out


def _check_profile(entry: Entry, by_url: dict[str, Entry]) -> None:
    """The rules of the profile each entry must meet (whatever it claims), as for what we
    serve; a new Task may be `received`."""
    resource = _typed(entry.resource, by_url)
    if entry.resource_type == "Task" and resource.get("status") == "received":
        resource = {**resource, "status": "requested"}
    problems = p.check_profile(resource, PROFILES[entry.resource_type])
    if problems:
        raise problem(422, "processing", f"{entry.path}: {problems[0]}", entry.path)


# --- references ---------------------------------------------------------------------------------


@dataclass
class Ours:
    resource_type: str
    key: uuid.UUID


class _References:
    """Resolve a Reference to another entry of the Bundle or to one of our records."""

    def __init__(self, base: str, by_url: dict[str, Entry]) -> None:
        self.base = base.rstrip("/") + "/"
        self.by_url = by_url

    def resolve(self, value: Any, path: str, *types: str) -> Entry | Ours:
        text = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(text, str) or not text:
            raise problem(422, "required", f"{path} needs a reference.", path)
        if text in self.by_url:
            target = self.by_url[text]
            if types and target.resource_type not in types:
                raise problem(
                    422,
                    "invalid",
                    f"{path} references a {target.resource_type}; expected {' or '.join(types)}.",
                    path,
                )
            return target
        relative = text.removeprefix(self.base)
        if relative.startswith(("http://", "https://", "urn:")):
            raise problem(
                422,
                "not-found",
                f"{path}: {text} is neither on this server nor an entry of the Bundle.",
                path,
            )
        parts = relative.split("/")
        if len(parts) == 4 and parts[2] == "_history":
            parts = parts[:2]
        if len(parts) != 2 or (types and parts[0] not in types):
            expected = " or ".join(types) if types else "a resource"
            raise problem(422, "invalid", f"{path}: {text} is not a reference to {expected}.", path)
        try:
            key = uuid.UUID(parts[1])
        except ValueError:
            raise problem(404, "not-found", f"{path}: {text} does not exist here.", path) from None
        return Ours(parts[0], key)


def _patient_reference(
    value: Any, path: str, patient_entry: Entry | None, refs: _References
) -> Entry | Ours:
    target = refs.resolve(value, path, "Patient")
    if isinstance(target, Entry) and target is not patient_entry:
        raise problem(422, "invalid", f"{path} is not the referral's patient.", path)
    return target


# --- the parts ----------------------------------------------------------------------------------


def _first_name(resource: dict[str, Any]) -> dict[str, Any]:
    """The name in use: not ended (period.end in the past), official before usual before any."""
    today = date.today().isoformat()
    names = [
        n
        for n in resource.get("name") or []
        if isinstance(n, dict) and str((n.get("period") or {}).get("end") or "9999") >= today
    ]
    for use in ("official", "usual", None):
        for name in names:
            if use is None or name.get("use") == use:
                return name
    return {}


def _given(name: dict[str, Any]) -> list[str]:
    """A HumanName's given names. FHIR JSON lets a list of primitives hold null where only an
    extension (in `_given`) is sent: no name there."""
    return [given for given in name.get("given") or [] if isinstance(given, str) and given]


def _full_name(name: dict[str, Any]) -> str:
    """Given names, then the family name."""
    return " ".join([*_given(name), name.get("family") or ""]).strip()


def _language(resource: dict[str, Any]) -> str:
    """Our code for the preferred language: the first subtag we text in, or English."""
    communications = [c for c in resource.get("communication") or [] if isinstance(c, dict)]
    communications.sort(key=lambda c: not c.get("preferred"))
    for communication in communications:
        for coding in (communication.get("language") or {}).get("coding") or []:
            code = str(coding.get("code") or "").lower().split("-")[0]
            if code in LANGUAGES:
                return code
    return "en"


def _phone(telecoms: Any, path: str, warnings: list[str]) -> str:
    """The number to text: a mobile (or any phone) that is a real number. One that is not is
    left out with a warning rather than stopping the referral."""
    phones = [
        t
        for t in telecoms or []
        if isinstance(t, dict) and t.get("system") in {"phone", "sms"} and t.get("value")
    ]
    phones.sort(key=lambda t: (t.get("use") != "mobile", t.get("system") != "sms"))
    for phone in phones:
        try:
            return normalize_phone(str(phone["value"]))
        except ValidationError:
            warnings.append(
                f"{path}: {phone['value']!r} is not a valid phone number; it was not kept."
            )
    return ""


def _guardian(resource: dict[str, Any], path: str, warnings: list[str]) -> dict[str, Any]:
    """The first contact who is a parent or guardian (or any contact), as the form's fields."""
    contacts = [c for c in resource.get("contact") or [] if isinstance(c, dict)]
    for contact in contacts:
        relationship = "other"
        for concept in contact.get("relationship") or []:
            for coding in concept.get("coding") or []:
                relationship = RELATED_PERSON_CODES.get(coding.get("code"), relationship)
        name = contact.get("name") or {}
        text = name.get("text") or _full_name(name)
        if text:
            return {
                "guardian_name": text,
                "guardian_relationship": relationship,
                "guardian_phone": _phone(contact.get("telecom"), f"{path}.contact", warnings),
            }
    return {}


def _mrn(resource: dict[str, Any]) -> str:
    for identifier in resource.get("identifier") or []:
        concept = identifier.get("type") or {}
        if p.has_coding(concept, V2_IDENTIFIER_TYPE, "MR") and identifier.get("value"):
            return str(identifier["value"])
    return ""


def _patient_part(
    entry: Entry | None,
    service_request: Entry,
    refs: _References,
    warnings: dict[int, list[str]],
) -> PatientPart:
    subject_path = f"{service_request.path}.subject"
    target = _patient_reference(service_request.resource.get("subject"), subject_path, entry, refs)
    if isinstance(target, Ours):
        return PatientPart(existing_id=target.key)
    resource = entry.resource if entry else {}
    path = entry.path if entry else "Patient"
    noted = warnings.setdefault(entry.index, []) if entry else []
    name = _first_name(resource)
    postal = str((resource.get("address") or [{}])[0].get("postalCode") or "")
    form: dict[str, object] = {
        "given_name": " ".join(_given(name)),
        "family_name": name.get("family") or "",
        "birth_date": resource.get("birthDate") or "",
        "gender": resource.get("gender") or "unknown",
        "phone": _phone(resource.get("telecom"), f"{path}.telecom", noted),
        "language": _language(resource),
        "zip_code": postal[:5],
        "mrn": _mrn(resource),
        # A system's patient is its own record: same name and birth date is no reason to stop.
        "confirm_new": "y",
        **_guardian(resource, path, noted),
    }
    return PatientPart(form=form, identifiers=_identifiers(entry) if entry else [])


def _codes_of(concept: Any, system: str) -> list[tuple[str, str]]:
    return [
        (str(c["code"]), str(c.get("display") or c["code"]))
        for c in p.codings(concept)
        if c.get("system") == system and c.get("code")
    ]


def _sdoh_domain(concepts: Any) -> str | None:
    for concept in concepts or []:
        for code, _ in _codes_of(concept, SDOHCC_CODES):
            if code in SDOH_CATEGORIES:
                return code
    return None


VERIFICATION = {
    "confirmed": "confirmed",
    "unconfirmed": "unconfirmed",
    "provisional": "unconfirmed",
    "differential": "unconfirmed",
    "refuted": "refuted",
}


def _need_part(
    entry: Entry | None, service_request: Entry, patient_entry: Entry | None, refs: _References
) -> NeedPart | None:
    reasons = service_request.resource.get("reasonReference") or []
    existing: Ours | None = None
    for index, reason in enumerate(reasons):
        target = refs.resolve(
            reason, f"{service_request.path}.reasonReference[{index}]", "Condition", "Observation"
        )
        if isinstance(target, Ours) and target.resource_type == "Condition" and existing is None:
            existing = target
    if entry is None:
        return NeedPart(existing_id=existing.key) if existing else None
    resource = entry.resource
    _patient_reference(resource.get("subject"), f"{entry.path}.subject", patient_entry, refs)
    verification = p.codings(resource.get("verificationStatus"))
    status = verification[0].get("code") if verification else "confirmed"
    if status not in VERIFICATION:
        raise problem(
            422,
            "business-rule",
            f"{entry.path}.verificationStatus {status!r}: a referral needs a confirmed or "
            "unconfirmed Condition.",
            f"{entry.path}.verificationStatus",
        )
    clinical = p.codings(resource.get("clinicalStatus"))
    code = resource.get("code") or {}
    snomed = _codes_of(code, SNOMED)
    icd10 = _codes_of(code, ICD_10_CM)
    display = code.get("text") or next(
        (c.get("display") for c in p.codings(code) if c.get("display")), ""
    )
    return NeedPart(
        domain=_sdoh_domain(resource.get("category")) or "",
        display=str(display),
        snomed=snomed[0] if snomed else None,
        icd10=icd10[0] if icd10 else None,
        verification=VERIFICATION[status],
        clinical_status=str(clinical[0].get("code")) if clinical else "active",
        identifiers=_identifiers(entry),
    )


def _datetime(value: Any, path: str) -> datetime:
    """A FHIR dateTime; a date alone is midnight in California, as the pages take it."""
    text = str(value or "")
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=CALIFORNIA)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise problem(422, "invalid", f"{path} {text!r} is not a date and time.", path) from None
    return utc_moment(moment if moment.tzinfo else moment.replace(tzinfo=CALIFORNIA))


def _consent_part(
    entry: Entry | None, service_request: Entry, patient_entry: Entry | None, refs: _References
) -> ConsentPart | None:
    existing: Ours | None = None
    for index, info in enumerate(service_request.resource.get("supportingInfo") or []):
        path = f"{service_request.path}.supportingInfo[{index}]"
        target = refs.resolve(info, path)
        if isinstance(target, Ours) and target.resource_type == "Consent" and existing is None:
            existing = target
    if entry is None:
        return ConsentPart(existing_id=existing.key) if existing else None
    resource = entry.resource
    patient = _patient_reference(
        resource.get("patient"), f"{entry.path}.patient", patient_entry, refs
    )
    recipient: Ours | None = None
    provision = resource.get("provision") or {}
    if provision.get("type", "permit") != "permit":
        raise problem(
            422,
            "business-rule",
            f"{entry.path}.provision.type: a referral needs a consent that permits disclosure.",
            f"{entry.path}.provision.type",
        )
    actors = [a for a in provision.get("actor") or [] if isinstance(a, dict)]
    for index, actor in enumerate(actors):
        if len(actors) > 1 and not p.has_coding(actor.get("role"), p.PARTICIPATION_TYPE, "IRCP"):
            continue
        target = refs.resolve(
            actor.get("reference"),
            f"{entry.path}.provision.actor[{index}].reference",
            "Organization",
        )
        if isinstance(target, Ours):
            recipient = target
            break
    if recipient is None:
        raise problem(
            422,
            "required",
            f"{entry.path}.provision.actor: name the recipient (role IRCP), one of our "
            "organisations, as Organization/<id>.",
            f"{entry.path}.provision.actor",
        )
    given_by, name = _consent_giver(resource, patient, patient_entry, refs, entry.path)
    return ConsentPart(
        recipient_org_id=recipient.key,
        given_by=given_by,
        given_by_name=name,
        method="on-file",
        given_at=_datetime(
            resource.get("dateTime") or (provision.get("period") or {}).get("start"),
            f"{entry.path}.dateTime",
        )
        if resource.get("dateTime") or (provision.get("period") or {}).get("start")
        else None,
        active=resource.get("status") == "active",
        identifiers=_identifiers(entry),
    )


def _consent_giver(
    resource: dict[str, Any],
    patient: Entry | Ours,
    patient_entry: Entry | None,
    refs: _References,
    path: str,
) -> tuple[str, str]:
    """("patient" or "guardian", the name) of who gave the consent: Consent.performer, or
    ("", "") when the Consent does not say (the IG leaves it to the signed form)."""
    patient_name = ""
    if patient_entry is not None:
        name = _first_name(patient_entry.resource)
        patient_name = _full_name(name)
    for performer in resource.get("performer") or []:
        if not isinstance(performer, dict):
            continue
        display = str(performer.get("display") or "")
        kind = performer.get("type") or str(performer.get("reference") or "").split("/")[0]
        if performer.get("reference") and performer["reference"] in refs.by_url:
            kind = refs.by_url[performer["reference"]].resource_type
        if kind == "Patient" or (
            isinstance(patient, Ours) and str(patient.key) in str(performer.get("reference"))
        ):
            return "patient", display or patient_name or "the patient"
        if kind == "RelatedPerson" or display:
            return "guardian", display or "a parent or guardian"
    return "", ""  # not said (it is on the signed form): the service decides by the age


def _referral_part(
    entry: Entry, task: Entry | None, patient_entry: Entry | None, refs: _References
) -> ReferralPart:
    resource = entry.resource
    status = resource.get("status")
    if status != "active":
        raise problem(
            422,
            "business-rule",
            f"{entry.path}.status is {status!r}: a referral is sent active.",
            f"{entry.path}.status",
        )
    intent = resource.get("intent")
    if intent not in REFERRAL_INTENTS:
        raise problem(
            422,
            "business-rule",
            f"{entry.path}.intent {intent!r} is not a referral: send an order "
            "(or an intermediary's original-order).",
            f"{entry.path}.intent",
        )
    service_id, organization_id = _performer(entry, refs)
    codes = _codes_of(resource.get("code"), SNOMED)
    priority = resource.get("priority") or "routine"
    priority = "asap" if priority == "stat" else priority
    if priority not in PRIORITIES:
        priority = "routine"
    notes = [str(n.get("text")) for n in resource.get("note") or [] if n.get("text")]
    security = (resource.get("meta") or {}).get("security") or []
    requester = resource.get("requester") or {}
    owner: Ours | None = None
    task_identifiers: list[Identifier] = []
    part_of = ""
    if task is not None:
        owner = _task(task, entry, patient_entry, refs)
        task_identifiers = _identifiers(task)
        part_of = _first_reference(task.resource.get("partOf"), f"{task.path}.partOf")
    return ReferralPart(
        service_id=service_id,
        organization_id=organization_id,
        owner_org_id=owner.key if owner else None,
        service_code=codes[0][0] if codes else None,
        code_display=codes[0][1] if codes else None,
        category=_sdoh_domain(resource.get("category")),
        priority=priority,
        note="\n\n".join(notes),
        sensitive=any(s.get("code") in {"R", "V"} for s in security if isinstance(s, dict)),
        contact_prohibited=any(
            p.has_coding(detail, SDOHCC_CODES, "contacting-subject-prohibited")
            for detail in resource.get("orderDetail") or []
        ),
        intent=str(intent),
        requester_name=str(requester.get("display") or ""),
        identifiers=_identifiers(entry),
        task_identifiers=task_identifiers,
        based_on=_first_reference(resource.get("basedOn"), f"{entry.path}.basedOn"),
        part_of=part_of,
    )


def _first_reference(values: Any, path: str) -> str:
    """An intermediary's reference to its original (basedOn, partOf), kept as it wrote it."""
    for value in values or []:
        text = value.get("reference") if isinstance(value, dict) else None
        if isinstance(text, str) and text:
            if len(text) > 500:
                raise problem(422, "too-long", f"{path}: a reference over 500 characters.", path)
            return text
    return ""


def _performer(entry: Entry, refs: _References) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(service, organisation) the ServiceRequest names among our directory's."""
    service_id = organization_id = None
    for index, performer in enumerate(entry.resource.get("performer") or []):
        path = f"{entry.path}.performer[{index}]"
        target = refs.resolve(performer, path, "HealthcareService", "Organization")
        if not isinstance(target, Ours):
            raise problem(
                422,
                "invalid",
                f"{path}: the performer is one of our directory's HealthcareService or "
                "Organization, not an entry of the Bundle.",
                path,
            )
        if target.resource_type == "HealthcareService":
            service_id = service_id or target.key
        else:
            organization_id = organization_id or target.key
    return service_id, organization_id


def _task(
    task: Entry, service_request: Entry, patient_entry: Entry | None, refs: _References
) -> Ours:
    resource = task.resource
    focus = refs.resolve(resource.get("focus"), f"{task.path}.focus", "ServiceRequest")
    if focus is not service_request:
        raise problem(
            422,
            "invalid",
            f"{task.path}.focus must be the Bundle's ServiceRequest.",
            f"{task.path}.focus",
        )
    if resource.get("for") is not None:
        _patient_reference(resource.get("for"), f"{task.path}.for", patient_entry, refs)
    if resource.get("status") not in NEW_TASK_STATUSES:
        raise problem(
            422,
            "business-rule",
            f"{task.path}.status is {resource.get('status')!r}: a new referral's Task is "
            "requested (or received); move it afterwards with PUT.",
            f"{task.path}.status",
        )
    owner = refs.resolve(resource.get("owner"), f"{task.path}.owner", "Organization")
    if not isinstance(owner, Ours):
        raise problem(
            422,
            "invalid",
            f"{task.path}.owner must be one of our organisations.",
            f"{task.path}.owner",
        )
    return owner
