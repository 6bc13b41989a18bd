"""From a finished screening to referrals in one submit: the clinician confirms or dismisses each
need, records the family's priorities, picks services for the confirmed needs, and records the
family's consent; each pick becomes its own referral (ServiceRequest and Task) linked to its need,
with one Consent per recipient organisation. All of it is one transaction: nothing is written
unless everything can be."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import transaction, utcnow
from referrals.directory.models import Service
from referrals.directory.search import SearchResult, run_search
from referrals.errors import Forbidden, InvalidInput
from referrals.loop.schemas import NOTE_MAX
from referrals.loop.service import _new_referral, service_problem
from referrals.patients.consent_rules import consent_problem, is_minor_consent, is_sensitive
from referrals.patients.instruments import INSTRUMENTS
from referrals.patients.models import Consent, Need, Patient, Screening
from referrals.patients.screening import (
    apply_decisions,
    load_screening,
    open_referral_exists,
    parse_decisions,
)
from referrals.terminology import CONSENT_SCOPE, LANGUAGES, PRIORITIES, california_today

SIGNATURE_PREFIX = "data:image/png;base64,"
SIGNATURE_MAX = 200_000  # characters of a data URL: a signature drawn on screen is ~10-40 kB
SUGGESTIONS = 4
REQUIRED_SCOPE = ("demographics", "need")  # without them, nobody can be helped


@dataclass
class Person:
    """Someone who may consent or receive texts: the patient or a guardian on file."""

    value: str  # "patient" | "guardian:<id>"
    kind: str  # patient | guardian
    name: str
    phone: str | None
    language: str


def people(patient: Patient) -> list[Person]:
    found = [
        Person(f"guardian:{g.id}", "guardian", g.name, g.phone, g.language)
        for g in patient.guardians
    ]
    found.append(Person("patient", "patient", patient.name, patient.phone, patient.language))
    return found


def respondent_value(screening: Screening) -> str:
    """The person who answered the screening, as a form value: the default consenting person."""
    if screening.respondent == "guardian" and screening.respondent_guardian_id:
        return f"guardian:{screening.respondent_guardian_id}"
    return "patient" if screening.respondent == "patient" else ""


def family_language(patient: Patient, screening: Screening) -> str:
    """The language the family speaks with services: the respondent's."""
    if screening.respondent == "guardian":
        guardian = next(
            (g for g in patient.guardians if g.id == screening.respondent_guardian_id), None
        )
        if guardian is not None:
            return guardian.language
    return patient.language


@dataclass
class Suggestions:
    need: Need
    results: list[SearchResult]
    other_languages: list[SearchResult]


def suggest_services(patient: Patient, screening: Screening) -> list[Suggestions]:
    """For each open need, services that address it, nearest the family's ZIP first, that serve
    the patient's age and accept referrals; those speaking the family's language first, a few
    others after."""
    age = patient.age(california_today())
    language = family_language(patient, screening)
    found = []
    for need in screening.needs:
        if not need.open:
            continue
        outcome = run_search(
            {
                "need": need.domain,
                "zip": patient.zip_code or "",
                "language": language,
                "age": str(age),
                "accepting": "y",
            },
            limit=SUGGESTIONS,
            other_languages=True,
        )
        if outcome.page is None:  # a ZIP the directory cannot place: search without it
            outcome = run_search(
                {"need": need.domain, "language": language, "age": str(age), "accepting": "y"},
                limit=SUGGESTIONS,
                other_languages=True,
            )
        results = [r for r in outcome.page.results if r.service.accepts_electronic_referrals]
        others = [r for r in outcome.other_languages if r.service.accepts_electronic_referrals]
        found.append(Suggestions(need, results, others[: max(0, SUGGESTIONS - len(results))]))
    return found


@dataclass
class ConsentForm:
    given_by: Person | None
    method: str | None  # verbal | electronic
    signature: str | None
    sms_to: Person | None  # None: no texts
    language: str
    note: str
    priority: str
    contact_prohibited: bool
    scope: list[str]
    # An adolescent's own consent for the referrals they consent to alone (partner violence
    # from 12): verbal, attested by the clinician; the main consent covers the others.
    own: Person | None = None


def _consent_form(patient: Patient, form: Mapping[str, object]) -> tuple[ConsentForm, dict]:
    errors: dict[str, list[str]] = {}
    by_value = {person.value: person for person in people(patient)}

    def text(name: str) -> str:
        return str(form.get(name) or "").strip()

    given_by = by_value.get(text("consent_by")) if text("consent_by") else None
    if text("consent_by") and given_by is None:
        errors["consent_by"] = ["Choose the patient or a guardian on file."]
    method = text("consent_method") or None
    if method not in {None, "verbal", "electronic"}:
        errors["consent_method"] = ["Verbal (attested by you) or signed on screen."]
    signature = text("signature") or None
    if method == "electronic":
        if not signature:
            errors["signature"] = ["Have the person sign in the box, or record verbal consent."]
        elif (
            not signature.startswith(SIGNATURE_PREFIX)
            or len(signature) > SIGNATURE_MAX
            or not re.fullmatch(r"[A-Za-z0-9+/=]+", signature[len(SIGNATURE_PREFIX) :])
        ):
            errors["signature"] = ["The signature could not be read: clear it and sign again."]
    else:
        signature = None
    sms_value = text("sms_to") or "none"
    sms_to = None
    if sms_value != "none":
        sms_to = by_value.get(sms_value)
        if sms_to is None or not sms_to.phone:
            errors["sms_to"] = ["Choose a person with a phone number on file, or no texts."]
    language = text("consent_language") or (given_by.language if given_by else patient.language)
    if language not in LANGUAGES:
        errors["consent_language"] = ["Choose a language from the list."]
    note = text("note")
    if len(note) > NOTE_MAX:
        errors["note"] = [f"At most {NOTE_MAX} characters."]
    # The page sends `scope_shown` with its checkboxes; a form without the choice shares all.
    scope = _values(form, "scope") if "scope_shown" in form else list(CONSENT_SCOPE)
    unknown = [item for item in scope if item not in CONSENT_SCOPE]
    if unknown:
        errors["scope"] = ["Choose from the listed kinds of information."]
    elif not set(REQUIRED_SCOPE) <= set(scope):
        errors["scope"] = [
            "An organisation cannot help without the patient's name and the need: keep those."
        ]
    scope = [item for item in CONSENT_SCOPE if item in scope]
    priority = text("priority") or "routine"
    if priority not in PRIORITIES:
        errors["priority"] = ["Choose a priority from the list."]
    return (
        ConsentForm(
            given_by,
            method,
            signature,
            sms_to,
            language,
            note,
            priority,
            text("contact_prohibited") in {"y", "on", "1", "true"},
            scope,
            by_value["patient"] if text("own_consent") == "verbal" else None,
        ),
        errors,
    )


def _values(form: Mapping[str, object], key: str) -> list[str]:
    getlist = getattr(form, "getlist", None)
    raw = getlist(key) if getlist else form.get(key) or []
    return [str(v) for v in ([raw] if isinstance(raw, str) else raw) if v]


def _picks(
    screening: Screening, form: Mapping[str, object]
) -> tuple[list[tuple[Need, uuid.UUID]], dict]:
    """(need, service id) for every service ticked under a need: field `service-<need id>`."""
    getlist = getattr(form, "getlist", None)
    needs = {str(need.id): need for need in screening.needs}
    picks: list[tuple[Need, uuid.UUID]] = []
    errors: dict[str, list[str]] = {}
    for key in form:
        if not key.startswith("service-"):
            continue
        need = needs.get(key[8:])
        values = getlist(key) if getlist else [form[key]]
        if need is None:
            errors[key] = ["That need is not part of this screening."]
            continue
        for value in dict.fromkeys(v for v in values if v):
            try:
                picks.append((need, uuid.UUID(str(value))))
            except ValueError:
                errors[key] = ["Choose services from the list."]
    return picks, errors


def refer_for_needs(
    actor: Actor, screening_id: uuid.UUID, form: Mapping[str, object]
) -> tuple[Screening, list]:
    """Decide on a finished screening's needs and send a referral for every service picked,
    with the family's consent per recipient organisation. Returns the screening and the
    referrals sent (none when the clinician only decided on needs)."""
    if not actor.can(Permission.SEND_REFERRALS):
        raise Forbidden("Only clinic staff can send referrals.")
    with transaction() as session:
        screening = load_screening(session, actor, screening_id, "referral.create", lock=True)
        patient = screening.patient
        apply_decisions(session, actor, screening, parse_decisions(screening, form))
        picks, errors = _picks(screening, form)
        consent_form, consent_errors = _consent_form(patient, form)
        errors.update(consent_errors)
        if not picks:
            if errors:
                raise InvalidInput("Please correct the fields marked below.", errors)
            return screening, []
        age = patient.age(california_today())
        services: dict[uuid.UUID, Service] = {}
        for need, service_id in picks:
            key = f"service-{need.id}"
            if need.verification != "confirmed":
                errors.setdefault(key, []).append(
                    f"Confirm {need.display.lower()} before referring for it."
                )
                continue
            service = session.get(Service, service_id)
            if service is None:
                errors.setdefault(key, []).append("That service is not in the directory.")
                continue
            problem = service_problem(service, age)
            if problem is None and need.domain not in service.categories:
                problem = f"{service.name} does not address {need.display.lower()}."
            if problem is None and open_referral_exists(session, need, service.id):
                # Most often the same form sent twice (a double click, a reload).
                problem = (
                    f"{service.name} already has an open referral for "
                    f"{need.display.lower()}: see it below."
                )
            if problem:
                errors.setdefault(key, []).append(problem)
            services[service_id] = service
        _check_consent(consent_form, patient, age, picks, services, errors)
        if errors:
            raise InvalidInput("The referrals cannot be sent yet.", errors)

        consents: dict[tuple[uuid.UUID, str], Consent] = {}
        now = utcnow()
        instrument = INSTRUMENTS[screening.instrument]
        referrals = []
        for need, service_id in picks:
            service = services[service_id]
            org_id = service.organization_id
            giver, method = _giver(consent_form, need, age)
            consent = None
            if giver is not None and method is not None:
                key = (org_id, giver.value)
                if key not in consents:
                    consents[key] = _consent(
                        consent_form, actor, patient, screening, org_id, now, giver, method
                    )
                    session.add(consents[key])
                consent = consents[key]
            note = consent_form.note or _default_note(need, instrument.name.en, screening)
            referrals.append(
                _new_referral(
                    session,
                    actor,
                    patient,
                    service,
                    consent=consent,
                    category=need.domain,
                    priority=consent_form.priority,
                    note=note,
                    sensitive=_sensitive(need, service),
                    contact_prohibited=consent_form.contact_prohibited,
                    need=need,
                    sms_allowed=consent_form.sms_to is not None,
                    sms_phone=consent_form.sms_to.phone if consent_form.sms_to else None,
                    sms_language=consent_form.language if consent_form.sms_to else None,
                )
            )
        for consent in consents.values():
            audit.record(
                session,
                actor,
                "consent.create",
                "Consent",
                consent.id,
                patient_id=patient.id,
                detail={"recipient_org_id": str(consent.recipient_org_id)},
            )
    return screening, referrals


@dataclass(frozen=True)
class NothingSent:
    """Why a submit of the needs page sent no referral, and the needs it concerns (form field
    -> messages, as InvalidInput's)."""

    message: str
    fields: dict[str, list[str]]


SAVED = "Your decisions on the needs are saved."


def why_nothing_was_sent(needs: Iterable[Need]) -> NothingSent:
    """What to tell the clinician when the needs page was sent with no service ticked: the
    decisions are kept, no referral went out, and why (a need the family wants help with now
    has no service ticked, or no need is one they want help with now, or none is confirmed)."""
    needs = list(needs)
    wanted = [need for need in needs if need.verification == "confirmed" and need.family_priority]
    if wanted:
        names = " and ".join(need.display.lower() for need in wanted)
        return NothingSent(
            f"No referral was sent: no service is ticked for {names}, which the family wants "
            f"help with now. {SAVED}",
            {
                f"service-{need.id}": [
                    "Tick a service to refer for this need, or mark it “Confirmed, not now”."
                ]
                for need in wanted
            },
        )
    if any(need.verification == "confirmed" for need in needs):
        return NothingSent(
            "No referral was sent: the family wants help now with none of the confirmed "
            f"needs. {SAVED}",
            {},
        )
    return NothingSent(f"No referral was sent: no need is confirmed. {SAVED}", {})


def _giver(form: ConsentForm, need: Need, age: int) -> tuple[Person | None, str | None]:
    """Who consents to the referral for this need, and how: the adolescent themselves for what
    they consent to alone, when the form says they did; the main consent otherwise."""
    if form.own is not None and is_minor_consent(marked=False, domain=need.domain, age=age):
        return form.own, "verbal"
    return form.given_by, form.method


def _check_consent(
    form: ConsentForm,
    patient: Patient,
    age: int,
    picks: list[tuple[Need, uuid.UUID]],
    services: dict[uuid.UUID, Service],
    errors: dict[str, list[str]],
) -> None:
    chosen = [(need, services[sid]) for need, sid in picks if sid in services]
    missing: set[str] = set()
    main_used = False
    for need, service in chosen:
        if _sensitive(need, service) and form.sms_to is not None and form.sms_to.kind == "guardian":
            errors.setdefault("sms_to", []).append(
                f"The referral to {service.name} is confidential: texts never go to a parent or "
                "guardian."
            )
        giver, _ = _giver(form, need, age)
        if giver is None:
            if not service.organization.hipaa_covered:
                missing.add(service.organization.name)
            continue
        main_used = main_used or giver is form.given_by
        minor_consent = is_minor_consent(marked=False, domain=need.domain, age=age)
        problem = consent_problem(age=age, giver=giver.kind, sensitive=minor_consent)
        if problem:
            errors.setdefault("consent_by", []).append(f"{service.name}: {problem}")
    if missing and "consent_by" not in errors:
        names = sorted(missing)
        one = len(names) == 1
        errors["consent_by"] = [
            f"{', '.join(names)} "
            f"{'is not a HIPAA-covered entity' if one else 'are not HIPAA-covered entities'}: "
            f"record the family's consent to share with {'it' if one else 'them'}."
        ]
    if main_used and form.given_by is not None and form.method is None:
        errors["consent_method"] = ["How was consent given: verbally, or signed on screen?"]


def _sensitive(need: Need, service: Service) -> bool:
    return is_sensitive(marked=False, service_sensitive=service.sensitive, domain=need.domain)


def _consent(
    form: ConsentForm,
    actor: Actor,
    patient: Patient,
    screening: Screening,
    org_id: uuid.UUID,
    now: datetime,
    giver: Person,
    method: str,
) -> Consent:
    return Consent(
        id=uuid.uuid4(),
        patient_id=patient.id,
        recipient_org_id=org_id,
        granted_by=giver.kind,
        granted_by_name=giver.name,
        method=method,
        granted_at=now,
        scope=form.scope,
        sms_allowed=form.sms_to is not None,
        sms_phone=form.sms_to.phone if form.sms_to else None,
        language=form.language,
        signature=form.signature if giver is form.given_by else None,
        screening_id=screening.id,
        recorded_by_id=actor.user_id,
    )


def _default_note(need: Need, instrument: str, screening: Screening) -> str:
    when = screening.completed_at.date().isoformat() if screening.completed_at else ""
    wants = " The family wants help with this now." if need.family_priority else ""
    return f"{need.display} found by the {instrument} screening on {when}.{wants}"
