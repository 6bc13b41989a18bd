"""A recipient records what it did for a referral: `POST /fhir/Procedure` (SDOHCC-Procedure).

We keep no Procedure table: a referral's Procedure is its Task's outcome (output_code,
output_display, outcome_note), served by `mapping.procedure_to_fhir` under the Task's id. So
recording one writes those columns on the Task, in one transaction, audited, without moving the
Task: completing it stays a Task update whose output names this Procedure.

Same code again is a retry and changes nothing; a different code on a completed Task is a
conflict. Another organisation's referral is not told apart from one that does not exist."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from referrals import audit
from referrals.auth.actor import Actor
from referrals.auth.roles import Permission
from referrals.db import transaction, utcnow
from referrals.errors import Conflict, Forbidden, InvalidInput, NotFound
from referrals.fhir import mapping
from referrals.fhir.tasks import FhirProblem
from referrals.loop.lifecycle import Status
from referrals.loop.models import Referral, Task
from referrals.loop.schemas import NOTE_MAX

SNOMED = "http://snomed.info/sct"
ACTION = "procedure.create"
_UUID = r"[0-9a-fA-F-]{36}"
_SERVICE_REQUEST = re.compile(rf"(?:(?P<base>.+)/)?ServiceRequest/(?P<id>{_UUID})")
_PROCEDURE = re.compile(rf"(?:.+/)?Procedure/(?P<id>{_UUID})")
# Where a recipient may record what it did: working the referral, or a retry once completed.
RECORDABLE = {Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD, Status.COMPLETED}


@dataclass(frozen=True)
class ProcedureForm:
    referral_id: uuid.UUID
    codes: tuple[str, ...]  # the SNOMED CT codes sent, in order
    note: str
    subject: str | None  # the Patient id the Procedure names, if any


def procedure_form(body: dict[str, Any], base: str) -> ProcedureForm:
    """The parts of an incoming SDOHCC-Procedure we record, or a FhirProblem. Pure: the
    resource's structure was checked already (the R4B models)."""
    if body.get("status") != "completed":
        raise FhirProblem(
            422,
            "business-rule",
            f"Record a Procedure once it is done: status must be “completed”, "
            f"not “{body.get('status')}”.",
            "Procedure.status",
        )
    codes = tuple(
        c["code"]
        for c in (body.get("code") or {}).get("coding") or []
        if isinstance(c, dict) and c.get("system") == SNOMED and c.get("code")
    )
    if not codes:
        raise FhirProblem(
            422,
            "required",
            "Procedure.code needs a SNOMED CT coding of what was provided.",
            "Procedure.code",
        )
    referral_ids = []
    for ref in body.get("basedOn") or []:
        match = _SERVICE_REQUEST.fullmatch(str((ref or {}).get("reference") or ""))
        if match and match["base"] in {None, base.rstrip("/")}:
            referral_ids.append(uuid.UUID(match["id"]))
    if len(referral_ids) != 1:
        raise FhirProblem(
            422,
            "required",
            "Procedure.basedOn must name exactly one of our ServiceRequests "
            "(ServiceRequest/<id>, relative or under this server's base).",
            "Procedure.basedOn",
        )
    notes = [n.get("text") or "" for n in body.get("note") or [] if isinstance(n, dict)]
    note = "\n".join(n for n in notes if n).strip()
    if len(note) > NOTE_MAX:
        raise FhirProblem(
            422, "too-long", f"Procedure.note is over {NOTE_MAX} characters.", "Procedure.note"
        )
    subject = str((body.get("subject") or {}).get("reference") or "").rstrip("/")
    return ProcedureForm(
        referral_ids[0], codes, note, subject.rsplit("/", 1)[-1] if subject else None
    )


def record_procedure(actor: Actor, form: ProcedureForm, base: str) -> tuple[dict[str, Any], bool]:
    """Record the Procedure on the referral's Task: (the Procedure as we serve it, whether it
    was created). NotFound unless the actor's organisation owns the Task; InvalidInput for a
    code the service does not offer; Conflict for a different code once completed."""
    with transaction() as session:
        referral = session.get(Referral, form.referral_id)
        task: Task | None = referral.task if referral is not None else None
        if task is None or task.owner_org_id != actor.org_id:
            audit.deny(session, actor, ACTION, "Referral", form.referral_id)
            raise NotFound(
                f"ServiceRequest/{form.referral_id} does not exist, or is not yours to work."
            )
        if not actor.can(Permission.WORK_REFERRALS):
            audit.deny(session, actor, ACTION, "Referral", referral.id)
            raise Forbidden("Only the organisation working the referral records what it did.")
        if form.subject is not None and form.subject != str(referral.patient_id):
            raise InvalidInput(
                f"Procedure.subject must be the referral's patient, Patient/{referral.patient_id}."
            )
        offered = {p["code"]: p["display"] for p in referral.service.procedure_codes}
        code = next((c for c in form.codes if c in offered), None)
        if code is None:
            allowed = ", ".join(f"{c} ({d})" for c, d in offered.items()) or "none"
            raise InvalidInput(
                f"Procedure.code {', '.join(form.codes)} is not an outcome of this referral's "
                f"service; allowed SNOMED CT codes: {allowed}."
            )
        status = Status(task.status)
        if task.output_code == code:
            return mapping.procedure_to_fhir(task, base), False  # a retry: nothing to change
        if status is Status.COMPLETED:
            raise Conflict(
                f"This referral was completed with {task.output_display} recorded; "
                "that cannot change."
            )
        if status not in RECORDABLE:
            raise Conflict(
                f"This referral is {status.value}: record a Procedure while working it "
                "(accepted, in-progress or on-hold)."
            )
        created = task.output_code is None
        task.output_code, task.output_display = code, offered[code]
        task.outcome_note = form.note
        task.updated_at = utcnow()  # the Task now has an output: pollers see it changed
        session.flush()
        audit.record(
            session,
            actor,
            ACTION,
            "Procedure",
            task.id,
            patient_id=referral.patient_id,
            detail={"referral": str(referral.id), "replaced": not created},
        )
        return mapping.procedure_to_fhir(task, base), created


def procedure_code_for(task_id: uuid.UUID) -> Callable[[str], str | None]:
    """For `tasks.update_form`: the code recorded by the Procedure a Task update's output
    references, if it is this Task's Procedure (same id) and one was recorded."""

    def resolve(reference: str) -> str | None:
        match = _PROCEDURE.fullmatch(reference.rstrip("/"))
        if not match or uuid.UUID(match["id"]) != task_id:
            return None
        from referrals.db import db

        task = db.session().get(Task, task_id)
        return task.output_code if task is not None else None

    return resolve
