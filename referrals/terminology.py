"""Codes and their labels, defined once: the pages and the FHIR mapping both read them from here."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

# The network works on California time: dates people type and times pages show.
CALIFORNIA = ZoneInfo("America/Los_Angeles")


def california_today() -> date:
    return datetime.now(CALIFORNIA).date()


SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
SNOMED = "http://snomed.info/sct"
SOCIAL_SERVICE_CATEGORY = ("410606002", "Social service procedure")

# SDOHCC-ValueSetSDOHCategory (Gravity SDOH Clinical Care 2.3.0)
SDOH_CATEGORIES: dict[str, str] = {
    "food-insecurity": "Food insecurity",
    "housing-instability": "Housing instability",
    "homelessness": "Homelessness",
    "inadequate-housing": "Inadequate housing",
    "transportation-insecurity": "Transportation insecurity",
    "financial-insecurity": "Financial insecurity",
    "material-hardship": "Material hardship",
    "educational-attainment": "Educational attainment",
    "employment-status": "Employment status",
    "veteran-status": "Veteran status",
    "stress": "Stress",
    "social-connection": "Social connection",
    "intimate-partner-violence": "Intimate partner violence",
    "elder-abuse": "Elder abuse",
    "personal-health-literacy": "Personal health literacy",
    "health-insurance-coverage-status": "Health insurance coverage status",
    "medical-cost-burden": "Medical cost burden",
    "digital-literacy": "Digital literacy",
    "digital-access": "Digital access",
    "utility-insecurity": "Utility insecurity",
    "incarceration-status": "Incarceration status",
    "language-access": "Language access",
    "sdoh-category-unspecified": "SDOH category unspecified",
}

# Languages families in California most often ask for; BCP-47 code -> name in English and
# in the language itself, so a family can find its own.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("English", "English"),
    "es": ("Spanish", "Español"),
    "zh": ("Chinese", "中文"),
    "vi": ("Vietnamese", "Tiếng Việt"),
    "tl": ("Tagalog", "Tagalog"),
    "ko": ("Korean", "한국어"),
    "hy": ("Armenian", "Հայերեն"),
    "ru": ("Russian", "Русский"),
    "fa": ("Farsi", "فارسی"),
    "ar": ("Arabic", "العربية"),
}

PRIORITIES: dict[str, str] = {
    "routine": "Routine",
    "urgent": "Urgent",
    "asap": "As soon as possible",
}

GENDERS: dict[str, str] = {
    "female": "Female",
    "male": "Male",
    "other": "Other",
    "unknown": "Unknown",
}

GUARDIAN_RELATIONSHIPS: dict[str, str] = {
    "mother": "Mother",
    "father": "Father",
    "parent": "Parent",
    "grandparent": "Grandparent",
    "legal-guardian": "Legal guardian",
    "foster-parent": "Foster parent",
    "other": "Other caregiver",
}

CONSENT_METHODS: dict[str, str] = {
    "verbal": "Verbal, witnessed by staff",
    "written": "Signed paper form",
    "electronic": "Signed on screen",
}

# How a consent may have been recorded, as shown: the form's ways, and a consent the referring
# clinic's system says it holds (sent over the API with the referral).
CONSENT_METHOD_LABELS: dict[str, str] = {
    **CONSENT_METHODS,
    "on-file": "On file at the referring clinic",
}

# What a consent lets the clinic disclose to the recipient (SDOHCC-Consent provision), as the
# family is told: the minimum a recipient needs to help, never the screening answers.
CONSENT_SCOPE: dict[str, str] = {
    "demographics": "name, date of birth and preferred language",
    "contact": "phone number",
    "need": "the need being referred",
    "note": "the clinician's note to the organisation",
}

CONSENT_GIVERS: dict[str, str] = {
    "patient": "Patient",
    "guardian": "Parent or guardian",
}


def category_label(code: str) -> str:
    return SDOH_CATEGORIES.get(code, code)


def language_label(code: str) -> str:
    english, native = LANGUAGES.get(code, (code, code))
    return english if english == native else f"{english} ({native})"
