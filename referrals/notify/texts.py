"""What a family's SMS notice says, per language and step. Pure.

Notices name the organisation and the step at most, never the need or anything clinical
(SDOHCC: SMS carries no PHI). Sensitive referrals name nothing at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from referrals.patients.consent_rules import ADULT_AGE, age_on

STEPS = (
    "requested",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "completed",
    "failed",
    "cancelled",
)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "requested": "{clinic} sent a referral for you to {org}. They will contact you soon.",
        "accepted": "{org} accepted your referral and will contact you.",
        "rejected": "{org} cannot take your referral. {clinic} will help you find another option.",
        "in-progress": "{org} has started working on your referral.",
        "on-hold": "{org} put your referral on hold. They will contact you.",
        "completed": "{org} closed your referral as completed.",
        "failed": "{org} closed your referral. Call {clinic} if you still need help.",
        "cancelled": "Your referral to {org} was cancelled. Call {clinic} with questions.",
        "private": "You have an update from your care team. Please call them.",
        "footer": "Reply STOP to opt out.",
    },
    "es": {
        "requested": "{clinic} le envió una referencia a {org}. Se comunicarán con usted pronto.",
        "accepted": "{org} aceptó su referencia y se comunicará con usted.",
        "rejected": "{org} no puede aceptar su referencia. {clinic} le ayudará a buscar otra opción.",
        "in-progress": "{org} comenzó a trabajar en su referencia.",
        "on-hold": "{org} puso su referencia en espera. Se comunicarán con usted.",
        "completed": "{org} cerró su referencia como completada.",
        "failed": "{org} cerró su referencia. Llame a {clinic} si todavía necesita ayuda.",
        "cancelled": "Su referencia a {org} fue cancelada. Llame a {clinic} si tiene preguntas.",
        "private": "Tiene una novedad de su equipo de salud. Por favor, llámelos.",
        "footer": "Responda STOP para no recibir mensajes.",
    },
}


@dataclass(frozen=True)
class Contact:
    kind: str  # patient | guardian
    phone: str
    language: str


@dataclass(frozen=True)
class Skip:
    reason: str


def choose_recipient(
    *,
    birth_date: date,
    today: date,
    patient_phone: str | None,
    patient_language: str,
    guardians: list[tuple[str | None, str]],  # (phone, language), in order of preference
    sensitive: bool,
    contact_prohibited: bool,
    opted_in: bool,
    texts_allowed: bool = True,
    chosen_phone: str | None = None,
    chosen_language: str | None = None,
) -> Contact | Skip:
    """Whom a notice goes to, or why it goes to no one.

    A minor's notices go to a guardian, except for sensitive (minor-consent) referrals, which
    only ever reach the adolescent (Cal. Family Code 6920-6929, Health & Safety Code 123110).
    When the family chose the number texts go to (and their language), they go there; when
    they declined texts, none go."""
    if contact_prohibited:
        return Skip("The referral says the family must not be contacted.")
    if not opted_in:
        return Skip("The family opted out of text messages.")
    if not texts_allowed:
        return Skip("The family asked for no text messages about this referral.")
    guardian_phones = {phone for phone, _ in guardians if phone}
    if chosen_phone:
        kind = "guardian" if chosen_phone in guardian_phones else "patient"
        if sensitive and kind == "guardian":
            return Skip("Confidential referral: the chosen number is a guardian's.")
        language = chosen_language or next(
            (lang for phone, lang in guardians if phone == chosen_phone), patient_language
        )
        return Contact(kind, chosen_phone, language)
    if sensitive:
        # A shared family phone is the guardian's phone: the notice would disclose.
        if patient_phone and patient_phone not in {phone for phone, _ in guardians}:
            return Contact("patient", patient_phone, patient_language)
        return Skip("Confidential referral and the patient has no phone of their own.")
    if age_on(birth_date, today) < ADULT_AGE:
        for phone, language in guardians:
            if phone:
                return Contact("guardian", phone, language)
    if patient_phone:
        return Contact("patient", patient_phone, patient_language)
    return Skip("No phone number on file.")


def text_language(language: str) -> str:
    """The language a notice is actually written in: the family's, or English until we have it."""
    return language if language in TEXTS else "en"


def notice_text(step: str, language: str, *, org: str, clinic: str, sensitive: bool) -> str:
    """The notice for a step, in the family's language (English when we have no translation)."""
    texts = TEXTS[text_language(language)]
    body = texts["private"] if sensitive else texts[step].format(org=org, clinic=clinic)
    return f"{body} {texts['footer']}"


def mask_phone(phone: str | None) -> str:
    """+14155550123 -> +1••••••••23: enough for staff to tell numbers apart, not to dial."""
    if not phone:
        return ""
    return phone[:2] + "•" * max(0, len(phone) - 4) + phone[-2:]
