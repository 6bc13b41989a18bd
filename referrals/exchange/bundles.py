"""What we send a peer about a referral, as FHIR: a transaction Bundle that creates it there
(conditional creates on our identifiers, so a retry finds what the first try made), and the
Task as the peer holds it for later updates. Pure: records in, JSON out.

References to what the peer holds become its own ids (an organisation that works there is
`Organization/<its id>`); references to what stays here are absolute URLs on our server. The
recipient sees what the referral page shows it and nothing more (fhir.disclosure)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from referrals.fhir import disclosure, mapping

Json = dict[str, Any]
RemoteOrg = Callable[[uuid.UUID], str | None]  # our organisation id -> its id on the peer


def our_identifier(base: str, resource_type: str, key: uuid.UUID) -> Json:
    return {"system": f"{base.rstrip('/')}/sid/{resource_type.lower()}", "value": str(key)}


def _sent_meta(meta: Json) -> Json:
    """Our meta as a peer gets it: the profile, and the security labels (a confidential
    referral stays restricted there); not our versions and times, which are the peer's."""
    sent: Json = {"profile": meta.get("profile", [])}
    if meta.get("security"):
        sent["security"] = meta["security"]
    return sent


def _rewrite(value: Any, replace: Callable[[str], str | None]) -> Any:
    if isinstance(value, list):
        return [_rewrite(item, replace) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: _rewrite(item, replace) for key, item in value.items()}
    if isinstance(value.get("reference"), str):
        new = replace(value["reference"])
        if new is not None:
            out["reference"] = new
            out.pop("type", None) if new.startswith("urn:") else None
    return out


def _entry(resource: Json, full_url: str, base: str, key: uuid.UUID) -> Json:
    """A conditional create of one of our records, named by our identifier for it."""
    resource_type = resource["resourceType"]
    ours = our_identifier(base, resource_type, key)
    resource = {k: v for k, v in resource.items() if k not in {"id", "text"}}
    resource["meta"] = _sent_meta(resource.get("meta") or {})
    identifiers = [i for i in resource.get("identifier") or [] if i != ours]
    resource["identifier"] = [ours, *identifiers]
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource_type,
            "ifNoneExist": f"identifier={ours['system']}|{ours['value']}",
        },
    }


def referral_bundle(referral: Any, base: str, remote_org: RemoteOrg) -> Json:
    """The transaction that creates the referral on a peer: Patient, Condition (the need),
    Consent, ServiceRequest and Task, as the recipient may see them."""
    base = base.rstrip("/")
    urns = {
        "Patient": (referral.patient_id, f"urn:uuid:{uuid.uuid4()}"),
        "ServiceRequest": (referral.id, f"urn:uuid:{uuid.uuid4()}"),
        "Task": (referral.task.id, f"urn:uuid:{uuid.uuid4()}"),
    }
    if referral.need_id:
        urns["Condition"] = (referral.need_id, f"urn:uuid:{uuid.uuid4()}")
    if referral.consent_id:
        urns["Consent"] = (referral.consent_id, f"urn:uuid:{uuid.uuid4()}")
    local = {f"{base}/{kind}/{key}": urn for kind, (key, urn) in urns.items()}
    recipient = referral.performer_org_id

    def replace(reference: str) -> str | None:
        if reference in local:
            return local[reference]
        kind, _, key = reference.removeprefix(base + "/").partition("/")
        if kind == "Organization" and reference.startswith(base):
            remote = remote_org(uuid.UUID(key))
            return f"Organization/{remote}" if remote else None
        return None

    patient = disclosure.patient_for(
        mapping.patient_to_fhir(referral.patient, base), referral.patient, recipient, [referral]
    )
    request = disclosure.service_request_for(
        mapping.service_request_to_fhir(referral, base), referral, recipient
    )
    request["requester"] = {**request["requester"], "display": referral.referred_by}
    if remote_org(recipient):  # the peer finds the service by its organisation and code
        request["performer"] = [
            p
            for p in request["performer"]
            if not p["reference"].startswith(f"{base}/HealthcareService/")
        ]
    resources: list[tuple[str, Json]] = [("Patient", patient)]
    if referral.need is not None:
        condition = mapping.condition_to_fhir(referral.need, base)
        condition.pop("evidence", None)  # the screening answers stay with the clinic
        resources.append(("Condition", condition))
    if referral.consent is not None:
        resources.append(("Consent", mapping.consent_to_fhir(referral.consent, base)))
    resources.append(("ServiceRequest", request))
    resources.append(("Task", mapping.task_to_fhir(referral.task, base)))
    entries = []
    for kind, resource in resources:
        key, urn = urns[kind]
        entries.append(_entry(_rewrite(resource, replace), urn, base, key))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def task_for_peer(referral: Any, base: str, link: Any, remote_org: RemoteOrg) -> Json:
    """Our Task as the peer holds it (its ids), for a versioned update there."""
    base = base.rstrip("/")
    theirs = {
        f"{base}/ServiceRequest/{referral.id}": f"ServiceRequest/{link.remote_request_id}",
        f"{base}/Patient/{referral.patient_id}": f"Patient/{link.remote_patient_id}",
    }

    def replace(reference: str) -> str | None:
        if reference in theirs:
            return theirs[reference]
        kind, _, key = reference.removeprefix(base + "/").partition("/")
        if kind == "Organization" and reference.startswith(base):
            remote = remote_org(uuid.UUID(key))
            return f"Organization/{remote}" if remote else None
        return None

    task = _rewrite(mapping.task_to_fhir(referral.task, base), replace)
    task["id"] = link.remote_task_id
    task["meta"] = _sent_meta(task["meta"])
    ours = our_identifier(base, "Task", referral.task.id)
    task["identifier"] = [ours, *[i for i in task.get("identifier") or [] if i != ours]]
    # An outcome recorded here is a Procedure on our server: name what was done instead.
    for output in task.get("output") or []:
        reference = output.pop("valueReference", None)
        if reference is not None and referral.task.output_code:
            output["valueCodeableConcept"] = mapping.concept(
                mapping.coding(
                    mapping.SNOMED, referral.task.output_code, referral.task.output_display
                )
            )
    return task


def located(answer: Json) -> list[tuple[str, str, str | None, str]]:
    """(type, id, version, status) of each entry of a transaction-response, in order."""
    found = []
    for entry in answer.get("entry") or []:
        response = entry.get("response") or {}
        status = str(response.get("status") or "")
        parts = str(response.get("location") or "").split("/")
        if "_history" in parts:
            at = parts.index("_history")
            found.append((parts[at - 2], parts[at - 1], parts[at + 1], status))
        elif len(parts) >= 2:
            found.append((parts[-2], parts[-1], None, status))
        else:
            found.append(("", "", None, status))
    return found
