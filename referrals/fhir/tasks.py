"""A Task a partner PUTs, turned into the one lifecycle move (or progress note) it asks for, as
the same form the pages send to `loop.service.change_referral`. Pure: the incoming resource and
the current status in, a form or a FhirProblem out.

What a Task update may change: `status` (with `statusReason` where the move needs a reason, and
an `output` of type resulting-activity to complete), `businessStatus` and a `note`. Anything
else a partner sends back unchanged is ignored; a different `focus`, `for` or `owner` is refused.
Partners may send `received`: it means `requested`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from referrals.loop.lifecycle import Action
from referrals.loop.reasons import OTHER, find_reason

STATUS_REASON_SYSTEM = "urn:referrals:status-reason"
BUSINESS_STATUS_SYSTEM = "urn:referrals:business-status"

# (from, to) Task statuses -> the move that makes it
MOVES: dict[str, Action] = {
    "accepted": Action.ACCEPT,
    "rejected": Action.DECLINE,
    "in-progress": Action.START,
    "on-hold": Action.HOLD,
    "completed": Action.COMPLETE,
    "failed": Action.FAIL,
    "cancelled": Action.CANCEL,
    "entered-in-error": Action.ENTER_IN_ERROR,
}


@dataclass
class FhirProblem(Exception):
    status: int
    code: str
    diagnostics: str
    expression: str | None = None


def _codes(concept: Any, system: str) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [
        c.get("code")
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("system") == system and c.get("code")
    ]


def _reference_id(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    return value["reference"].rstrip("/").rsplit("/", 1)[-1]


def update_form(
    incoming: dict[str, Any],
    current: dict[str, Any],
    procedure_code: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """The change_referral form for an incoming Task, given the current Task as we serve it.
    `procedure_code` resolves an output's reference to a recorded Procedure to its code."""
    for element in ("focus", "for", "owner"):
        if element in incoming and _reference_id(incoming[element]) != _reference_id(
            current.get(element)
        ):
            raise FhirProblem(
                422,
                "business-rule",
                f"Task.{element} cannot change: it names the referral and who works it.",
                f"Task.{element}",
            )
    status = incoming.get("status")
    if status == "received":
        status = "requested"
    version = current["meta"]["versionId"]
    notes = [n.get("text", "") for n in incoming.get("note") or [] if isinstance(n, dict)]
    known_notes = {n.get("text", "") for n in current.get("note") or []}
    known_note = "\n".join(n.get("text", "") for n in current.get("note") or [])
    note = "\n".join(n for n in notes if n and n not in known_notes)[:2000]
    business = _codes(incoming.get("businessStatus"), BUSINESS_STATUS_SYSTEM)
    if status == current["status"]:
        if business or note:
            form = {"action": Action.NOTE.value, "version": version, "note": note}
            if business and business[0] != _first(current.get("businessStatus")):
                form["business_status"] = business[0]
            return form
        raise FhirProblem(
            422,
            "business-rule",
            "Nothing to change: a Task update moves its status, or adds a businessStatus or note.",
            "Task.status",
        )
    action = MOVES.get(status or "")
    if action is None:
        raise FhirProblem(
            422,
            "business-rule",
            f"A Task cannot be moved to “{status}” from “{current['status']}”.",
            "Task.status",
        )
    form = {"action": action.value, "version": version, "note": note}
    reason = incoming.get("statusReason")
    if isinstance(reason, dict):
        codes = [c for c in _codes(reason, STATUS_REASON_SYSTEM) if find_reason(action, c)]
        text = reason.get("text") or ""
        form["reason"] = codes[0] if codes else OTHER
        form["reason_detail"] = "" if codes else str(text)[:1000]
        if not codes and not text:
            raise FhirProblem(
                422,
                "required",
                "Task.statusReason needs a text, or one of our status-reason codes.",
                "Task.statusReason",
            )
    if action is Action.COMPLETE:
        output = _resulting_activity(incoming, procedure_code)
        if output is None:
            raise FhirProblem(
                422,
                "required",
                "Completing a Task needs an output of type resulting-activity: the SNOMED CT "
                "code of what was provided, or a reference to the Procedure recorded for it.",
                "Task.output",
            )
        form["output_code"] = output
        if current.get("output"):  # a Procedure was recorded: keep its note (our Task.note)
            form["outcome_note"] = known_note[:2000]
    return form


def _first(concept: Any) -> str | None:
    codes = _codes(concept, BUSINESS_STATUS_SYSTEM)
    return codes[0] if codes else None


def _resulting_activity(
    incoming: dict[str, Any], procedure_code: Callable[[str], str | None] | None = None
) -> str | None:
    """The SNOMED CT code of what was provided: an output of type resulting-activity with a
    valueCodeableConcept, or a valueReference to a recorded Procedure (as the IG's examples
    do), resolved by `procedure_code` (reference in, recorded code or None out)."""
    for output in incoming.get("output") or []:
        if not isinstance(output, dict):
            continue
        kinds = [c.get("code") for c in (output.get("type") or {}).get("coding") or []]
        if "resulting-activity" not in kinds:
            continue
        concept = output.get("valueCodeableConcept")
        codes = _codes(concept, "http://snomed.info/sct")
        if codes:
            return codes[0]
        reference = (output.get("valueReference") or {}).get("reference")
        if (
            procedure_code is not None
            and isinstance(reference, str)
            and "Procedure/" in reference
            and (code := procedure_code(reference))
        ):
            return code
    return None
