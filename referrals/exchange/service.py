"""Use cases of the exchange: configure peers, push our referrals' changes to the peers that
must know (an outbox job per change), and follow the Tasks peers hold by polling, mirroring
their moves here through the same lifecycle, audit and family notices as the pages.

A peer serves organisations of our directory. For one that works on the peer (`remote_id`),
we send our referrals to it there and mirror back what its staff do; for one that works
here, the peer (the health information exchange) is told of each change."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from referrals import audit, jobs
from referrals.auth.actor import Actor
from referrals.auth.models import Organization
from referrals.auth.roles import Role
from referrals.db import transaction, utcnow
from referrals.errors import Forbidden, InvalidInput, NotFound
from referrals.exchange import bundles
from referrals.exchange.client import Peer, PeerClient, PeerConflict, PeerError
from referrals.exchange.models import ExchangeLink, ExchangePeer, PeerOrganization
from referrals.loop import service as loop
from referrals.loop.lifecycle import Side, Status, normalize_status, path
from referrals.loop.models import Referral, ReferralEvent
from referrals.text_values import utc_moment

log = logging.getLogger(__name__)

PUSH_JOB = "exchange.push"

# The peer whose change is being mirrored here: it is not told of it again.
_mirroring: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "exchange_mirroring", default=None
)


def base_url() -> str:
    return current_app.config["SETTINGS"].public_base_url.rstrip("/") + "/fhir"


def snapshot(peer: ExchangePeer) -> Peer:
    return Peer(peer.id, peer.name, peer.base_url, peer.token_url, peer.client_id, peer.scope)


# --- configuring peers ------------------------------------------------------------------------


def _require_admin(actor: Actor) -> None:
    if not actor.is_system and actor.role is not Role.NETWORK_ADMIN:
        raise Forbidden("Only network administrators configure the exchange.")


DEFAULT_SCOPE = "system/*.read system/*.write"
_TEXT_FIELDS = {"name": 200, "base_url": 500, "client_id": 200, "token_url": 500, "scope": 500}
_SWITCHES = ("push", "poll", "active")
# A FHIR id (R4 datatypes: id): what the peer calls the organisation, Organization/<id> there.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def _peer_values(fields: dict[str, Any], problems: dict[str, list[str]]) -> dict[str, Any]:
    """The peer's settings given, cleaned; what is wrong with them goes into `problems`."""
    values: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _SWITCHES:
            if not isinstance(value, bool):
                problems.setdefault(key, []).append("Yes or no (true or false).")
            values[key] = value
            continue
        if key not in _TEXT_FIELDS:
            raise InvalidInput(f"A peer has no setting {key!r}.", {key: ["Not a peer setting."]})
        text = value.strip() if isinstance(value, str) else ""
        if key == "base_url":
            text = text.rstrip("/")
        values[key] = text
        if len(text) > _TEXT_FIELDS[key]:
            problems.setdefault(key, []).append(f"At most {_TEXT_FIELDS[key]} characters.")
    for key, label in (("name", "A name"), ("client_id", "The client id"), ("scope", "A scope")):
        if key in values and not values[key]:
            problems.setdefault(key, []).append(f"{label} is needed.")
    if "base_url" in values and not _is_http_url(values["base_url"]):
        problems.setdefault("base_url", []).append(
            "The peer's FHIR base is an http(s) URL, e.g. https://hie.example/fhir."
        )
    if values.get("token_url") and not _is_http_url(values["token_url"]):
        problems.setdefault("token_url", []).append(
            "An http(s) URL, or empty to discover it from the peer."
        )
    return values


def _served(
    session: Session, organizations: dict[str, str | None], problems: dict[str, list[str]]
) -> list[tuple[Organization, str | None]]:
    """The directory's organisations named ({its name or id: its id on the peer, or None});
    names that are not in the directory, or not once, go into `problems`."""
    served: list[tuple[Organization, str | None]] = []
    wrong = problems.setdefault("organizations", [])
    for key, remote in organizations.items():
        key = str(key).strip()
        try:
            found = [session.get(Organization, uuid.UUID(key))]
        except ValueError:
            found = list(session.scalars(select(Organization).where(Organization.name == key)))
        found = [org for org in found if org is not None]
        if isinstance(remote, str):
            remote = remote.strip() or None
        if not found:
            wrong.append(f"{key} is not in the directory.")
        elif len(found) > 1:
            wrong.append(f"{len(found)} organisations are called {key}: name it by its id.")
        elif remote is not None and not (isinstance(remote, str) and _FHIR_ID.fullmatch(remote)):
            wrong.append(
                f"{found[0].name}: its Organization id there is letters, digits, '-' and '.' "
                "(at most 64)."
            )
        else:
            served.append((found[0], remote))
    if not wrong:
        del problems["organizations"]
    return served


def _check_name_free(
    session: Session, name: str, problems: dict[str, list[str]], peer_id: uuid.UUID | None = None
) -> None:
    query = select(ExchangePeer.id).where(ExchangePeer.name == name)
    if peer_id is not None:
        query = query.where(ExchangePeer.id != peer_id)
    if name and session.scalar(query):
        problems.setdefault("name", []).append("Another peer has that name.")


def _refuse(problems: dict[str, list[str]]) -> None:
    if problems:
        raise InvalidInput("The peer's settings are not right: see each field.", problems)


def _create_peer(
    session: Session,
    actor: Actor,
    fields: dict[str, Any],
    organizations: dict[str, str | None],
) -> ExchangePeer:
    """A new peer in the caller's transaction (all its settings and organisations checked)."""
    problems: dict[str, list[str]] = {}
    values = _peer_values(
        {"token_url": "", "scope": DEFAULT_SCOPE, "push": True, "poll": False, **fields}, problems
    )
    for key in ("name", "base_url", "client_id"):
        if key not in values:
            problems.setdefault(key, []).append("Needed.")
    _check_name_free(session, values.get("name", ""), problems)
    served = _served(session, organizations, problems)
    _refuse(problems)
    peer = ExchangePeer(**values)
    for org, remote_id in served:
        peer.organizations.append(PeerOrganization(organization=org, remote_id=remote_id))
    session.add(peer)
    session.flush()
    audit.record(session, actor, "exchange.peer.create", "ExchangePeer", peer.id)
    if peer.poll and values.get("active", True):
        schedule_poll(session, peer.id)
    return peer


def add_peer(
    actor: Actor,
    *,
    name: str,
    base_url: str,
    client_id: str,
    token_url: str = "",
    scope: str = DEFAULT_SCOPE,
    push: bool = True,
    poll: bool = False,
    active: bool = True,
    organizations: dict[str, str | None] | None = None,
) -> ExchangePeer:
    """A peer and the organisations it serves ({our organisation's name or id: its id there, or
    None when it works here})."""
    _require_admin(actor)
    fields = dict(name=name, base_url=base_url, client_id=client_id, token_url=token_url)
    fields |= dict(scope=scope, push=push, poll=poll, active=active)
    with transaction() as session:
        return _create_peer(session, actor, fields, organizations or {})


# --- pushing ----------------------------------------------------------------------------------


def _peers_for(session: Session, referral: Referral) -> list[ExchangePeer]:
    orgs = {referral.requester_org_id, referral.performer_org_id}
    return list(
        session.scalars(
            select(ExchangePeer)
            .join(PeerOrganization)
            .where(
                ExchangePeer.active,
                ExchangePeer.push,
                PeerOrganization.organization_id.in_(orgs),
            )
            .distinct()
        )
    )


def on_referral_change(session: Session, event: ReferralEvent) -> None:
    """In the change's own transaction: a push job for each peer that must know of it (not the
    peer the change came from)."""
    referral = session.get(Referral, event.referral_id)
    if referral is None:
        return
    for peer in _peers_for(session, referral):
        if peer.id == _mirroring.get():
            continue
        jobs.enqueue(
            session,
            PUSH_JOB,
            {"peer_id": str(peer.id), "referral_id": str(referral.id)},
            f"{PUSH_JOB}:{peer.id}:{event.id}",
            max_attempts=current_app.config["SETTINGS"].exchange_max_attempts,
        )


def _remote_org(peer: ExchangePeer):
    remote = {o.organization_id: o.remote_id for o in peer.organizations if o.remote_id}
    return lambda org_id: remote.get(org_id)


def _link(session: Session, peer_id: uuid.UUID, referral_id: uuid.UUID) -> ExchangeLink:
    link = session.scalar(
        select(ExchangeLink).where(
            ExchangeLink.peer_id == peer_id, ExchangeLink.referral_id == referral_id
        )
    )
    if link is None:
        link = ExchangeLink(peer_id=peer_id, referral_id=referral_id)
        session.add(link)
        session.flush()
    return link


@jobs.handler(PUSH_JOB)
def push_job(session: Session, payload: dict) -> None:
    push(session, uuid.UUID(payload["peer_id"]), uuid.UUID(payload["referral_id"]))


def push(session: Session, peer_id: uuid.UUID, referral_id: uuid.UUID) -> None:
    """Bring the peer's copy of the referral up to date: create it there (a transaction), then
    update its Task with the version we last saw. A 412 means the peer's copy moved: when the
    referral's recipient works there, its move is mirrored here first; then ours is sent on
    top of the version just read. Nothing is held open while the peer works; the outcome is
    kept on the referral's link."""
    peer = session.get(ExchangePeer, peer_id)
    referral = session.get(Referral, referral_id)
    if peer is None or referral is None or not peer.active or not peer.push:
        return
    link = _link(session, peer.id, referral.id)
    version = referral.task.version
    if link.pushed_version is not None and link.pushed_version >= version:
        session.commit()
        return  # a later job already sent this (jobs may run out of order)
    creating = link.remote_task_id is None
    client = PeerClient(snapshot(peer))
    body, remote_version = _body_for(session, peer_id, referral_id, creating)
    session.commit()
    try:
        if creating:
            answer = client.transaction(body)
            outcome = _created(answer)
            matched = any(
                kind == "Task" and not status.startswith("201")
                for kind, _key, _version, status in bundles.located(answer)
            )
            if matched and version > 1:
                # It was there already (an earlier try got through before a crash): what it
                # holds is the state then; send ours on top of it.
                _save_link(session, peer_id, referral_id, outcome, None)
                session.commit()
                body, _ = _body_for(session, peer_id, referral_id, False)
                session.commit()
                outcome |= _update(client, peer_id, referral_id, body, outcome["remote_version"])
        else:
            outcome = _update(client, peer_id, referral_id, body, remote_version)
    except PeerError as err:
        _record_error(peer_id, referral_id, str(err))
        if not err.retryable:
            raise jobs.PermanentJobError(str(err)) from None
        raise
    _save_link(session, peer_id, referral_id, outcome, version)


def _body_for(
    session: Session, peer_id: uuid.UUID, referral_id: uuid.UUID, creating: bool
) -> tuple[dict[str, Any], str | None]:
    """What to send: the whole referral the first time, then its Task; with the peer's Task
    version we last saw."""
    peer = session.get(ExchangePeer, peer_id)
    referral = session.get(Referral, referral_id)
    session.refresh(referral.task)
    remote_org = _remote_org(peer)
    if creating:
        return bundles.referral_bundle(referral, base_url(), remote_org), None
    link = _link(session, peer_id, referral_id)
    return bundles.task_for_peer(referral, base_url(), link, remote_org), link.remote_version


def _update(
    client: PeerClient,
    peer_id: uuid.UUID,
    referral_id: uuid.UUID,
    body: dict[str, Any],
    remote_version: str | None,
) -> dict[str, Any]:
    try:
        updated = client.update(body, remote_version)
    except PeerConflict:
        current = client.read("Task", body["id"])
        if mirror(peer_id, current, client):  # the recipient moved there: that comes first
            with transaction() as session:
                body, _ = _body_for(session, peer_id, referral_id, False)
        updated = client.update(body, current["meta"]["versionId"])
    return {"remote_version": (updated or {}).get("meta", {}).get("versionId")}


def _created(answer: dict[str, Any]) -> dict[str, Any]:
    found = {kind: (key, v) for kind, key, v, _status in bundles.located(answer)}
    return {
        "remote_patient_id": found.get("Patient", (None, None))[0],
        "remote_request_id": found.get("ServiceRequest", (None, None))[0],
        "remote_task_id": found.get("Task", (None, None))[0],
        "remote_version": found.get("Task", (None, None))[1],
    }


def _save_link(
    session: Session,
    peer_id: uuid.UUID,
    referral_id: uuid.UUID,
    outcome: dict[str, Any],
    version: int | None,
) -> None:
    link = _link(session, peer_id, referral_id)
    for key, value in outcome.items():
        if value is not None:
            setattr(link, key, value)
    if version is not None:
        link.pushed_version = max(version, link.pushed_version or 0)
        link.pushed_at = utcnow()
        link.last_error = ""
        link.last_error_at = None


def _record_error(peer_id: uuid.UUID, referral_id: uuid.UUID, error: str) -> None:
    with transaction() as session:
        link = _link(session, peer_id, referral_id)
        link.last_error = error[:2000]
        link.last_error_at = utcnow()


# --- following the peer's Tasks ----------------------------------------------------------------


def peer_actor(org: Organization, peer: ExchangePeer) -> Actor:
    """Who a move mirrored from the peer is made by: the organisation that made it there."""
    return Actor(
        user_id=None,
        user_name=f"{org.name} on {peer.name}"[:200],
        org_id=org.id,
        org_name=org.name,
        org_kind=org.org_kind,
        role=Role.CBO_STAFF,
    )


@contextmanager
def _from_peer(peer_id: uuid.UUID) -> Iterator[None]:
    token = _mirroring.set(peer_id)
    try:
        yield
    finally:
        _mirroring.reset(token)


def poll(peer_id: uuid.UUID) -> dict[str, int]:
    """One pass over the Tasks the peer changed since the last pass: each one of ours that
    moved there moves here. Returns counts (seen, mirrored, failed)."""
    with transaction() as session:
        peer = session.get(ExchangePeer, peer_id)
        if peer is None:
            raise NotFound("No such peer.")
        client = PeerClient(snapshot(peer))
        cursor = peer.poll_cursor
    counts = {"seen": 0, "mirrored": 0, "failed": 0}
    params = {"_count": "100", "_sort": "_lastUpdated"}
    if cursor:
        # ge, not gt: a Task changed in the same instant as the last one seen is not skipped
        # (reading one twice changes nothing: versions decide).
        params["_lastUpdated"] = f"ge{cursor}"
    try:
        remote_tasks = list(client.search("Task", params))
    except PeerError as err:
        with transaction() as session:
            peer = session.get(ExchangePeer, peer_id)
            peer.last_error = str(err)[:2000]
            peer.last_polled_at = utcnow()
        raise
    newest: datetime | None = _instant(cursor)
    oldest_failed: datetime | None = None
    for task in remote_tasks:
        counts["seen"] += 1
        updated = _instant((task.get("meta") or {}).get("lastUpdated"))
        try:
            if mirror(peer_id, task, client):
                counts["mirrored"] += 1
        except Exception as err:  # one bad Task does not stop the pass; it is read again
            counts["failed"] += 1
            log.warning(
                "exchange: Task %s of peer %s not mirrored: %s",
                task.get("id"),
                peer_id,
                jobs.describe_error(err),
            )
            if updated is not None:
                oldest_failed = min(oldest_failed or updated, updated)
            continue
        if updated is not None:
            newest = max(newest or updated, updated)
    with transaction() as session:
        peer = session.get(ExchangePeer, peer_id)
        # The next pass starts at the oldest Task that failed (read again), else the newest.
        mark = oldest_failed if oldest_failed is not None else newest
        if mark is not None:
            peer.poll_cursor = mark.isoformat().replace("+00:00", "Z")
        peer.last_polled_at = utcnow()
        peer.last_error = ""
    return counts


def _instant(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return utc_moment(moment)


def _link_for_task(
    session: Session, peer_id: uuid.UUID, task: dict[str, Any]
) -> ExchangeLink | None:
    """Our link to the peer's Task: by its id, or (a notification that outran the push's
    answer, or a push whose answer was lost) by our identifier on it, then remembered."""
    link = session.scalar(
        select(ExchangeLink).where(
            ExchangeLink.peer_id == peer_id, ExchangeLink.remote_task_id == task.get("id")
        )
    )
    if link is not None:
        return link
    ours = f"{base_url()}/sid/task"
    for identifier in task.get("identifier") or []:
        if not isinstance(identifier, dict) or identifier.get("system") != ours:
            continue
        try:
            task_id = uuid.UUID(str(identifier.get("value")))
        except ValueError:
            return None
        from referrals.loop.models import Task as OurTask

        referral_id = session.scalar(select(OurTask.referral_id).where(OurTask.id == task_id))
        if referral_id is None:
            return None
        link = _link(session, peer_id, referral_id)
        if link.remote_task_id not in {None, task.get("id")}:
            return None  # ours is linked to another Task there
        link.remote_task_id = str(task.get("id"))
        focus = str((task.get("focus") or {}).get("reference") or "")
        if focus.rpartition("/")[0].endswith("ServiceRequest"):
            link.remote_request_id = link.remote_request_id or focus.rpartition("/")[2]
        return link
    return None


def mirror(peer_id: uuid.UUID, task: dict[str, Any], client: PeerClient | None = None) -> bool:
    """Make our copy of a referral follow the peer's Task (a newer version than we saw): the
    moves between our status and theirs, by their organisation. Only for a referral whose
    recipient works on that peer: a peer that is only told of a referral cannot move it here.
    False if not ours to follow, or not newer."""
    from referrals.fhir.tasks import update_form

    with transaction() as session:
        link = _link_for_task(session, peer_id, task)
        if link is None:
            return False
        remote_version = str((task.get("meta") or {}).get("versionId") or "")
        if link.remote_version and remote_version and _older(remote_version, link.remote_version):
            return False
        if remote_version and remote_version == link.remote_version:
            return False
        referral = session.get(Referral, link.referral_id)
        peer = link.peer
        works_there = _remote_org(peer)(referral.performer_org_id)
        if not works_there:
            return False
        org = session.get(Organization, referral.performer_org_id)
        actor = peer_actor(org, peer)
        referral_id, base = referral.id, base_url()
        # Did the peer hold our state before this change? Then it holds it after, too.
        in_step = link.pushed_version is not None and link.pushed_version >= referral.task.version
        client = client or PeerClient(snapshot(peer))
    goal = normalize_status(task.get("status") or "")
    incoming = {k: v for k, v in task.items() if k not in {"focus", "for", "owner", "id"}}
    with _from_peer(peer_id):
        current = _our_task(referral_id, base)
        start = Status(current["status"])
        moves = path(Side.RECIPIENT, start, goal)
        for n, action in enumerate(moves):
            current = _our_task(referral_id, base)
            last = n == len(moves) - 1
            step = incoming if last else {"status": _after(action)}
            form = update_form(step, current, _procedure_code(client))
            loop.change_referral(actor, referral_id, form)
        if not moves and goal == start and (incoming.get("note") or incoming.get("businessStatus")):
            try:
                form = update_form(incoming, current, _procedure_code(client))
            except Exception:  # nothing we can take from it (the same note again)
                form = {}
            if form.get("action") and (form.get("note") or form.get("business_status")):
                loop.change_referral(actor, referral_id, form)
    with transaction() as session:
        link = _link_for_task(session, peer_id, task)
        link.remote_version = remote_version or link.remote_version
        link.pulled_at = utcnow()
        if in_step:  # no push back of what came from there; a change of ours still goes
            link.pushed_version = session.get(Referral, referral_id).task.version
    return True


def _older(version: str, than: str) -> bool:
    try:
        return int(version) < int(than)
    except ValueError:
        return False


def _after(action) -> str:
    from referrals.loop.lifecycle import RULES

    target = RULES[action].target
    return target.value if target else ""


def _our_task(referral_id: uuid.UUID, base: str) -> dict[str, Any]:
    from referrals.fhir.mapping import task_to_fhir

    with transaction() as session:
        referral = session.get(Referral, referral_id)
        return task_to_fhir(referral.task, base)


def _procedure_code(client: PeerClient):
    """What a Procedure on the peer says was done (its SNOMED CT code)."""
    from referrals.terminology import SNOMED

    def code(reference: str) -> str | None:
        parts = reference.rstrip("/").split("/")
        if len(parts) < 2 or parts[-2] != "Procedure":
            return None
        try:
            procedure = client.read("Procedure", parts[-1])
        except PeerError:
            return None
        for coding in (procedure.get("code") or {}).get("coding") or []:
            if coding.get("system") == SNOMED:
                return coding.get("code")
        return None

    return code


# --- what admins see -------------------------------------------------------------------------


def sync_states(actor: Actor, limit: int = 100) -> list[ExchangeLink]:
    _require_admin(actor)
    with transaction() as session:
        return list(
            session.scalars(
                select(ExchangeLink)
                .order_by(
                    ExchangeLink.last_error_at.desc().nulls_last(),
                    ExchangeLink.pushed_at.desc().nulls_last(),
                )
                .limit(limit)
            )
        )


def peers(actor: Actor) -> list[ExchangePeer]:
    _require_admin(actor)
    with transaction() as session:
        return list(session.scalars(select(ExchangePeer).order_by(ExchangePeer.name)))


def dead_pushes(actor: Actor) -> list[jobs.Job]:
    _require_admin(actor)
    with transaction() as session:
        return list(
            session.scalars(
                select(jobs.Job)
                .where(jobs.Job.kind == PUSH_JOB, jobs.Job.status == jobs.DEAD)
                .order_by(jobs.Job.finished_at.desc())
                .limit(100)
            )
        )


def retry_push(actor: Actor, job_id: uuid.UUID) -> None:
    """Give a dead push another round of attempts."""
    _require_admin(actor)
    with transaction() as session:
        job = session.get(jobs.Job, job_id)
        if job is None or job.kind != PUSH_JOB or job.status != jobs.DEAD:
            raise NotFound("No such failed push.")
        job.status, job.attempts, job.run_after = jobs.QUEUED, 0, utcnow()
        job.finished_at = None
        audit.record(session, actor, "exchange.push.retry", "Job", job.id)


def register() -> None:
    """Listen to referral changes (called once by the app factory)."""
    if on_referral_change not in loop.CHANGE_LISTENERS:
        loop.CHANGE_LISTENERS.append(on_referral_change)


# --- polling on a schedule --------------------------------------------------------------------

POLL_JOB = "exchange.poll"


def schedule_poll(session: Session, peer_id: uuid.UUID, *, delay: float = 0.0) -> None:
    """The peer's next polling pass, `delay` seconds from now (one per time slot)."""
    from datetime import timedelta

    when = utcnow() + timedelta(seconds=delay)
    interval = max(1.0, current_app.config["SETTINGS"].exchange_poll_seconds)
    slot = int(when.timestamp() // interval)
    job = jobs.enqueue(session, POLL_JOB, {"peer_id": str(peer_id)}, f"{POLL_JOB}:{peer_id}:{slot}")
    if job.status == jobs.QUEUED and job.attempts == 0:
        job.run_after = max(job.run_after, when)


def _poll_again(session: Session, payload: dict, _error: str = "") -> None:
    peer = session.get(ExchangePeer, uuid.UUID(payload["peer_id"]))
    if peer is not None and peer.active and peer.poll:
        schedule_poll(session, peer.id, delay=current_app.config["SETTINGS"].exchange_poll_seconds)


def catch_up(session: Session, peer_id: uuid.UUID, reason: str) -> None:
    """A polling pass now, whether the peer is polled or not (notifications were missed)."""
    jobs.enqueue(
        session,
        POLL_JOB,
        {"peer_id": str(peer_id), "catch_up": True},
        f"{POLL_JOB}:{peer_id}:catch-up:{reason}",
    )


@jobs.handler(POLL_JOB, on_dead=_poll_again)
def poll_job(session: Session, payload: dict) -> None:
    """One polling pass, then the next one scheduled (also when this one is given up); a
    catch-up pass runs once, for a peer that is subscribed to rather than polled."""
    session.commit()
    peer = session.get(ExchangePeer, uuid.UUID(payload["peer_id"]))
    if peer is None or not peer.active or not (peer.poll or payload.get("catch_up")):
        return
    session.commit()
    poll(peer.id)
    if not payload.get("catch_up"):
        _poll_again(session, payload)


# --- the admins' Exchange page ----------------------------------------------------------------


@dataclass(frozen=True)
class PushRow:
    """A push as the Exchange page lists it: which referral, to which peer, how it ended.
    Ids and statuses only: nothing about the patient."""

    job_id: uuid.UUID
    status: str  # the job's: dead, or queued again
    finished_at: datetime | None
    attempts: int
    error: str
    referral_id: uuid.UUID | None
    referral_status: str
    peer_name: str


@dataclass(frozen=True)
class SyncRow:
    """One referral's copy on one peer, as the Exchange page lists it."""

    referral_id: uuid.UUID
    referral_status: str
    peer_name: str
    remote_task_id: str | None
    remote_version: str | None
    pushed_at: datetime | None
    pulled_at: datetime | None
    error: str
    error_at: datetime | None


def _task_statuses(session: Session, referral_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    from referrals.loop.models import Task

    if not referral_ids:
        return {}
    query = select(Task.referral_id, Task.status).where(Task.referral_id.in_(referral_ids))
    return {referral_id: status for referral_id, status in session.execute(query)}


def _payload_id(payload: dict, key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(payload.get(key)))
    except ValueError:
        return None


def _push_rows(session: Session, push_jobs: list[jobs.Job]) -> list[PushRow]:
    referral_ids = {i for j in push_jobs if (i := _payload_id(j.payload, "referral_id"))}
    peer_ids = {i for j in push_jobs if (i := _payload_id(j.payload, "peer_id"))}
    statuses = _task_statuses(session, referral_ids)
    query = select(ExchangePeer.id, ExchangePeer.name).where(ExchangePeer.id.in_(peer_ids))
    names = {peer_id: name for peer_id, name in session.execute(query)}
    rows = []
    for job in push_jobs:
        referral_id = _payload_id(job.payload, "referral_id")
        peer_id = _payload_id(job.payload, "peer_id")
        rows.append(
            PushRow(
                job_id=job.id,
                status=job.status,
                finished_at=job.finished_at,
                attempts=job.attempts,
                error=job.last_error,
                referral_id=referral_id,
                referral_status=statuses.get(referral_id, "") if referral_id else "",
                peer_name=names.get(peer_id, "a removed peer") if peer_id else "",
            )
        )
    return rows


def failed_pushes(actor: Actor) -> list[PushRow]:
    """Dead pushes, newest first, with the referral and the peer each was for."""
    dead = dead_pushes(actor)
    with transaction() as session:
        return _push_rows(session, dead)


def push_row(actor: Actor, job_id: uuid.UUID) -> PushRow:
    """One push, whatever its state (the row an admin just retried)."""
    _require_admin(actor)
    with transaction() as session:
        job = session.get(jobs.Job, job_id)
        if job is None or job.kind != PUSH_JOB:
            raise NotFound("No such push.")
        return _push_rows(session, [job])[0]


def sync_overview(actor: Actor, limit: int = 100) -> list[SyncRow]:
    """Each referral's sync state on each peer, newest problems first, then newest pushes."""
    from referrals.redact import redact

    links = sync_states(actor, limit)
    with transaction() as session:
        statuses = _task_statuses(session, {link.referral_id for link in links})
    return [
        SyncRow(
            referral_id=link.referral_id,
            referral_status=statuses.get(link.referral_id, ""),
            peer_name=link.peer.name,
            remote_task_id=link.remote_task_id,
            remote_version=link.remote_version,
            pushed_at=link.pushed_at,
            pulled_at=link.pulled_at,
            # What the peer said can quote what we sent: numbers are taken out, as in job errors.
            error=redact(link.last_error),
            error_at=link.last_error_at,
        )
        for link in links
    ]


# --- changing peers: the admin page and a file of peers -------------------------------------


def _peer(session: Session, peer_id: uuid.UUID) -> ExchangePeer:
    peer = session.get(ExchangePeer, peer_id)
    if peer is None:
        raise NotFound("No such peer.")
    return peer


def _change_peer(
    session: Session, actor: Actor, peer: ExchangePeer, fields: dict[str, Any]
) -> bool:
    """Apply checked settings in the caller's transaction; turning polling on (or a polled
    peer back on) schedules a pass. True if anything changed."""
    problems: dict[str, list[str]] = {}
    values = _peer_values(fields, problems)
    if "name" in values:
        _check_name_free(session, values["name"], problems, peer.id)
    _refuse(problems)
    changed = sorted(key for key, value in values.items() if getattr(peer, key) != value)
    for key in changed:
        setattr(peer, key, values[key])
    if not changed:
        return False
    session.flush()
    audit.record(
        session, actor, "exchange.peer.update", "ExchangePeer", peer.id, detail={"fields": changed}
    )
    if peer.poll and peer.active and {"poll", "active"} & set(changed):
        schedule_poll(session, peer.id)
    return True


def _serve(
    session: Session, actor: Actor, peer: ExchangePeer, organizations: dict[str, str | None]
) -> bool:
    """Make the peer serve exactly these organisations, in the caller's transaction. True if
    anything changed."""
    problems: dict[str, list[str]] = {}
    served = _served(session, organizations, problems)
    _refuse(problems)
    wanted = {org.id: (org, remote_id) for org, remote_id in served}
    current = {link.organization_id: link for link in peer.organizations}
    removed = [org_id for org_id in current if org_id not in wanted]
    added = [org_id for org_id in wanted if org_id not in current]
    moved = [
        org_id
        for org_id, (_, remote_id) in wanted.items()
        if org_id in current and current[org_id].remote_id != remote_id
    ]
    for org_id in removed:
        peer.organizations.remove(current[org_id])
    for org_id in moved:
        current[org_id].remote_id = wanted[org_id][1]
    for org_id in added:
        org, remote_id = wanted[org_id]
        peer.organizations.append(PeerOrganization(organization=org, remote_id=remote_id))
    if not (removed or added or moved):
        return False
    session.flush()
    detail = {
        "added": [str(i) for i in added],
        "removed": [str(i) for i in removed],
        "changed": [str(i) for i in moved],
    }
    audit.record(
        session, actor, "exchange.peer.organizations", "ExchangePeer", peer.id, detail=detail
    )
    return True


def update_peer(
    actor: Actor,
    peer_id: uuid.UUID,
    *,
    organizations: dict[str, str | None] | None = None,
    **fields: Any,
) -> ExchangePeer:
    """Change a peer's settings (name, base_url, client_id, token_url, scope, push, poll,
    active), and with `organizations` the ones it serves, all or nothing."""
    _require_admin(actor)
    with transaction() as session:
        peer = _peer(session, peer_id)
        problems: dict[str, list[str]] = {}  # every field's problem at once
        values = _peer_values(fields, problems)
        if "name" in values:
            _check_name_free(session, values["name"], problems, peer.id)
        if organizations is not None:
            _served(session, organizations, problems)
        _refuse(problems)
        _change_peer(session, actor, peer, fields)
        if organizations is not None:
            _serve(session, actor, peer, organizations)
    return peer


def set_organizations(
    actor: Actor, peer_id: uuid.UUID, organizations: dict[str, str | None]
) -> ExchangePeer:
    """The organisations the peer serves, from now on exactly these ({our organisation's name
    or id: its id there, or None when it works here})."""
    _require_admin(actor)
    with transaction() as session:
        peer = _peer(session, peer_id)
        _serve(session, actor, peer, organizations)
    return peer


def remove_organization(actor: Actor, peer_id: uuid.UUID, organization_id: uuid.UUID) -> None:
    """The peer no longer serves this organisation: its referrals stop going there."""
    _require_admin(actor)
    with transaction() as session:
        peer = _peer(session, peer_id)
        link = next((o for o in peer.organizations if o.organization_id == organization_id), None)
        if link is None:
            raise NotFound("The peer does not serve that organisation.")
        peer.organizations.remove(link)
        session.flush()
        audit.record(
            session,
            actor,
            "exchange.peer.organizations",
            "ExchangePeer",
            peer.id,
            detail={"removed": [str(organization_id)]},
        )


def find_peer(actor: Actor, peer_id: uuid.UUID) -> ExchangePeer:
    _require_admin(actor)
    with transaction() as session:
        return _peer(session, peer_id)


def directory_organizations(actor: Actor) -> list[Organization]:
    """The organisations a peer may serve: the directory's, by name."""
    _require_admin(actor)
    with transaction() as session:
        return list(session.scalars(select(Organization).order_by(Organization.name)))


PEER_FILE_KEYS = {*_TEXT_FIELDS, *_SWITCHES, "organizations"}


def load_peers(actor: Actor, entries: Any) -> list[str]:
    """Create or update peers by name from a list of settings (what `EXCHANGE_PEERS` holds),
    in one transaction: any entry wrong and nothing is written. Says what it did, per peer."""
    _require_admin(actor)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidInput("A peers file is a JSON list of objects, one per peer.")
    problems: dict[str, list[str]] = {}
    for n, entry in enumerate(entries, 1):
        label = f"peer {n} ({entry.get('name') or 'no name'})"
        for key in sorted(set(entry) - PEER_FILE_KEYS):
            problems.setdefault(label, []).append(f"{key!r} is not a peer setting.")
        if not isinstance(entry.get("organizations", {}), dict):
            problems.setdefault(label, []).append(
                "organizations is an object: {our organisation's name or id: its id there or null}."
            )
    names = [e.get("name") for e in entries]
    for name in sorted({n for n in names if names.count(n) > 1}, key=str):
        problems.setdefault("name", []).append(f"{name} is in the file more than once.")
    _refuse(problems)
    done: list[str] = []
    with transaction() as session:
        for n, entry in enumerate(entries, 1):
            fields = {k: v for k, v in entry.items() if k != "organizations"}
            organizations = entry.get("organizations")  # absent: left as they are
            name = str(entry.get("name") or "").strip()
            try:
                existing = session.scalar(select(ExchangePeer).where(ExchangePeer.name == name))
                if existing is None:
                    _create_peer(session, actor, fields, organizations or {})
                    done.append(f"Added {name}.")
                else:
                    changed = _change_peer(session, actor, existing, fields)
                    if organizations is not None:
                        changed = _serve(session, actor, existing, organizations) or changed
                    done.append(f"Updated {name}." if changed else f"{name}: unchanged.")
            except InvalidInput as err:
                where = f"peer {n} ({name or 'no name'})"
                raise InvalidInput(f"{where}: {err.message}", err.fields) from None
    return done
