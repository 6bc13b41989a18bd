"""The printable summary a family takes home: what was sent where, who will contact them, the
organisations' phones, addresses and hours, in the family's language. Pure: texts and layout
rules only. Spanish texts are ours and await review by a native speaker."""

from __future__ import annotations

from collections.abc import Iterable

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your referrals",
        "intro": "{clinic} sent these referrals for {patient} on your behalf.",
        "service": "Service",
        "phone": "Phone",
        "address": "Address",
        "hours": "Hours",
        "no_hours": "Call for hours",
        "will_contact": "{org} will contact you. If you do not hear from them within a few "
        "days, call them or call {clinic}.",
        "call_them": "Please call {org} yourself.",
        "questions": "Questions? Call {clinic}{phone}.",
        "closed": "Closed",
        "days": "Mon,Tue,Wed,Thu,Fri,Sat,Sun",
        "none": "No open referrals to print.",
    },
    # translation: needs review
    "es": {
        "title": "Sus referencias",
        "intro": "{clinic} envió estas referencias para {patient} en su nombre.",
        "service": "Servicio",
        "phone": "Teléfono",
        "address": "Dirección",
        "hours": "Horario",
        "no_hours": "Llame para saber el horario",
        "will_contact": "{org} se comunicará con usted. Si no sabe de ellos en unos días, "
        "llámelos o llame a {clinic}.",
        "call_them": "Por favor, llame usted a {org}.",
        "questions": "¿Preguntas? Llame a {clinic}{phone}.",
        "closed": "Cerrado",
        "days": "lun,mar,mié,jue,vie,sáb,dom",
        "none": "No hay referencias abiertas para imprimir.",
    },
}


def summary_language(language: str) -> str:
    return language if language in TEXTS else "en"


def _clock(minutes: int) -> str:
    hour, minute = divmod(minutes % 1440, 60)
    return f"{hour % 12 or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def week_lines(intervals: Iterable[tuple[int, int, int]], language: str) -> list[str]:
    """Opening hours day by day ("Mon 9:00 AM–5:00 PM"), in the summary's language; empty
    when the service published none."""
    intervals = list(intervals)
    if not intervals:
        return []
    texts = TEXTS[summary_language(language)]
    names = texts["days"].split(",")
    lines = []
    for day, name in enumerate(names):
        spans = sorted((o, c) for d, o, c in intervals if d == day)
        hours = ", ".join(f"{_clock(o)}–{_clock(c)}" for o, c in spans) or texts["closed"]
        lines.append(f"{name} {hours}")
    return lines
