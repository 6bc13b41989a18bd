"""The audit trail: every view and change, chained with a key over every column, so that
tampering shows; signed checkpoints of its head show the newest entries removed."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select, update

from referrals import audit
from referrals.audit import AuditEvent, Problem, check_trail, take_checkpoint, verify_chain
from referrals.auth.actor import Actor
from referrals.db import db, transaction
from referrals.loop.service import open_referral
from tests.helpers import make_patient, move, send

TABLE = AuditEvent.__table__
PERSON = Actor(
    uuid.UUID(int=1), "Clinician", uuid.UUID(int=2), "Sunrise Pediatrics", None, None, "127.0.0.1"
)


def entries() -> list[AuditEvent]:
    db.session.remove()
    return list(db.session().scalars(select(AuditEvent).order_by(AuditEvent.id)))


def rows() -> list[dict[str, Any]]:
    db.session.remove()
    return [dict(r) for r in db.session().execute(select(TABLE).order_by(TABLE.c.id)).mappings()]


def write(count: int = 6) -> None:
    """`count` entries with every column filled in."""
    with transaction() as session:
        for n in range(count):
            audit.record(
                session,
                PERSON,
                "referral.view",
                "Referral",
                uuid.uuid4(),
                patient_id=uuid.uuid4(),
                detail={"rows": n},
            )


def key() -> str:
    return current_app.config["SETTINGS"].audit_key


def check(checkpoints: list[audit.Checkpoint] | None = None) -> Problem | None:
    db.session.remove()
    problem = check_trail(db.session(), key(), checkpoints=checkpoints or ()).problem
    db.session.remove()
    return problem


def checkpoint() -> audit.Checkpoint:
    db.session.remove()
    taken = take_checkpoint(db.session(), key())
    db.session.remove()
    return taken


def tamper(entry_id: int, **values: object) -> None:
    with transaction() as session:
        session.execute(TABLE.update().where(TABLE.c.id == entry_id).values(**values))


def renumber(moves: dict[int, int]) -> None:
    """Give entries new ids (through negative ones, so no two rows ever share an id)."""
    with transaction() as session:
        for old in moves:
            session.execute(TABLE.update().where(TABLE.c.id == old).values(id=-old))
        for old, new in moves.items():
            session.execute(TABLE.update().where(TABLE.c.id == -old).values(id=new))


def old_sha256(values: dict[str, Any]) -> str:
    """How entries were hashed before the keyed chain: what anyone can recompute."""
    return audit._sha256_hash(values)


def rehash_from(entry_id: int, rehash: Callable[[dict[str, Any]], None]) -> None:
    """What someone without AUDIT_KEY can do after an edit: make every hash from `entry_id` on
    again, each linked to the one before (`rehash` sets the entry's scheme and hash)."""
    prev = ""
    with transaction() as session:
        for row in (
            dict(r) for r in session.execute(select(TABLE).order_by(TABLE.c.id)).mappings()
        ):
            if row["id"] >= entry_id:
                row["prev_hash"] = prev
                rehash(row)
                session.execute(
                    TABLE.update()
                    .where(TABLE.c.id == row["id"])
                    .values(scheme=row["scheme"], prev_hash=row["prev_hash"], hash=row["hash"])
                )
            prev = row["hash"]


def the_old_way(row: dict[str, Any]) -> None:
    row["scheme"] = audit.SHA256
    row["hash"] = old_sha256(row)


def plain_sha256(row: dict[str, Any]) -> None:
    row["hash"] = hashlib.sha256(audit.message(row)).hexdigest()


def another_key(row: dict[str, Any]) -> None:
    row["hash"] = audit.keyed_hash(row, audit.keys("another key, 32 characters or more").chain)


# --- what is recorded ---------------------------------------------------------------------


def test_views_and_changes_are_recorded_with_actor_org_target_patient_and_ip(world):
    patient = make_patient(world)
    referral = send(world, patient)
    open_referral(world.actor("food"), referral.id)
    move(world, "food", referral, "accept")

    trail = [
        (e.action, e.actor_name, e.org_name, e.target_id, e.patient_id, e.ip, e.outcome)
        for e in entries()
        if e.target_type in ("Patient", "Referral")
    ]
    assert trail[-3:] == [
        (
            "referral.create",
            "Clinician",
            "Sunrise Pediatrics",
            str(referral.id),
            patient.id,
            "127.0.0.1",
            "success",
        ),
        (
            "referral.view",
            "Food",
            "Community Food Bank",
            str(referral.id),
            patient.id,
            "127.0.0.1",
            "success",
        ),
        (
            "referral.accept",
            "Food",
            "Community Food Bank",
            str(referral.id),
            patient.id,
            "127.0.0.1",
            "success",
        ),
    ]


def test_entries_are_numbered_one_after_another_and_keyed(world):
    send(world, make_patient(world))
    trail = entries()
    assert [e.id for e in trail] == list(range(1, len(trail) + 1))
    assert {e.scheme for e in trail} == {audit.HMAC_SHA256}
    assert trail[0].prev_hash == "" and trail[1].prev_hash == trail[0].hash
    assert check() is None and verify_chain(db.session()) is None


def test_audit_details_carry_no_patient_names_or_phones(world):
    patient = make_patient(world, given_name="Zebulon", phone="+15105550177")
    send(world, patient)
    for e in entries():
        text = f"{e.detail} {e.target_id} {e.actor_name}"
        assert "Zebulon" not in text and "5550177" not in text


# --- every column is hashed ---------------------------------------------------------------

# A value other than the one `write` gives, for every column of the table: a column added
# later fails test_every_column_has_a_tampering_test until it is given one here.
TAMPERED: dict[str, Callable[[dict[str, Any]], object]] = {
    "id": lambda row: 1000,
    "scheme": lambda row: audit.SHA256,
    "at": lambda row: row["at"] + timedelta(seconds=1),
    "actor_user_id": lambda row: uuid.uuid4(),
    "actor_name": lambda row: "Someone else",
    "org_id": lambda row: uuid.uuid4(),
    "org_name": lambda row: "Another organisation",
    "action": lambda row: "referral.create",
    "target_type": lambda row: "Patient",
    "target_id": lambda row: str(uuid.uuid4()),
    "patient_id": lambda row: uuid.uuid4(),
    "ip": lambda row: "203.0.113.9",
    "outcome": lambda row: "denied",
    "detail": lambda row: {"rows": 99},
    "prev_hash": lambda row: "0" * 64,
    "hash": lambda row: "0" * 64,
}
NULLABLE = [c.name for c in TABLE.columns if c.nullable]


def test_every_column_but_the_hash_is_in_what_the_key_hashes():
    assert set(audit.HASHED_COLUMNS) == {c.name for c in TABLE.columns} - {"hash"}
    write(1)
    [row] = rows()
    assert set(json.loads(audit.message(row))) == set(audit.HASHED_COLUMNS)


def test_every_column_has_a_tampering_test():
    assert set(TAMPERED) == {c.name for c in TABLE.columns}


@pytest.mark.parametrize("column", list(TAMPERED))
def test_an_edit_of_any_column_shows(column):
    write()
    victim = rows()[2]
    assert check() is None
    tamper(victim["id"], **{column: TAMPERED[column](victim)})
    problem = check()
    # A new id leaves a gap where the entry was: the entry after it names the missing one.
    assert problem is not None
    assert problem.entry_id == (victim["id"] + 1 if column == "id" else victim["id"])
    if column == "id":
        assert problem.reason.endswith(f"entry {victim['id']} is missing")


@pytest.mark.parametrize("column", NULLABLE)
def test_clearing_any_column_shows(column):
    write()
    victim = rows()[2]
    tamper(victim["id"], **{column: None})
    assert check() == Problem(
        victim["id"],
        "does not match its keyed hash: it was altered, or written without AUDIT_KEY "
        "(or AUDIT_KEY is not the key the trail was written with)",
    )


def test_an_edit_of_the_organisation_name_shows():
    write()
    tamper(3, org_name="Harbor Family Clinic")
    assert check().entry_id == 3
    assert verify_chain(db.session()) == 3


def test_an_edit_of_a_name_shows_on_the_page_and_the_command(world):
    send(world, make_patient(world))
    victim = entries()[3]
    db.session().execute(
        update(AuditEvent).where(AuditEvent.id == victim.id).values(actor_name="Someone else")
    )
    db.session().commit()
    assert verify_chain(db.session()) == victim.id
    assert check().reason.startswith("does not match its keyed hash: it was altered")


# --- removed, added, reordered, re-hashed ---------------------------------------------------


def test_a_removed_middle_entry_shows_and_is_named(world):
    send(world, make_patient(world))
    victim = entries()[2]
    with transaction() as session:
        session.execute(TABLE.delete().where(TABLE.c.id == victim.id))
    assert check() == Problem(
        victim.id + 1, f"does not follow entry {victim.id - 1}: entry {victim.id} is missing"
    )
    assert verify_chain(db.session()) == victim.id + 1


def test_removed_newest_entries_show_against_a_checkpoint_only():
    write()
    vouched = checkpoint()
    with transaction() as session:
        session.execute(TABLE.delete().where(TABLE.c.id > 4))
    # Nothing in the database says there were more: this is what checkpoints are for.
    assert check() is None
    assert check([vouched]) == Problem(
        6,
        f"is missing: the checkpoint of {vouched.at} vouched for 6 entries up to it, "
        "and the trail ends at entry 4",
    )


def test_removed_newest_entries_show_against_a_checkpoint_after_new_ones_took_their_ids():
    write()
    vouched = checkpoint()
    with transaction() as session:
        session.execute(TABLE.delete().where(TABLE.c.id > 4))
    write(3)
    assert check() is None
    assert check([vouched]) == Problem(
        6,
        f"is not the entry the checkpoint of {vouched.at} vouched for: the trail was rewritten "
        "up to here",
    )


def test_an_emptied_trail_shows_against_a_checkpoint_only():
    write()
    vouched = checkpoint()
    with transaction() as session:
        session.execute(TABLE.delete())
    assert check() is None
    assert check([vouched]) == Problem(
        6,
        f"is missing: the checkpoint of {vouched.at} vouched for 6 entries up to it, "
        "and the trail ends at nothing: it is empty",
    )


def test_the_trail_holds_against_the_checkpoints_it_has_passed():
    write(3)
    first = checkpoint()
    write(3)
    assert check([first, checkpoint()]) is None


def test_a_forged_entry_added_at_the_end_shows():
    write()
    last = rows()[-1]
    forged = {**last, "id": last["id"] + 1, "prev_hash": last["hash"], "actor_name": "Nobody"}
    plain_sha256(forged)
    with transaction() as session:
        session.execute(TABLE.insert().values(**forged))
    assert check().entry_id == forged["id"]


def test_a_forged_entry_added_the_old_way_shows():
    write()
    last = rows()[-1]
    forged = {**last, "id": last["id"] + 1, "prev_hash": last["hash"], "actor_name": "Nobody"}
    the_old_way(forged)
    with transaction() as session:
        session.execute(TABLE.insert().values(**forged))
    assert check() == Problem(
        forged["id"],
        "is hashed the old, unkeyed way although keyed entries come before it: "
        "it was forged or re-hashed",
    )


def test_a_forged_entry_slipped_into_the_middle_shows():
    write()
    before = rows()[2]
    renumber({n: n + 1 for n in range(4, 7)})
    forged = {**before, "id": 4, "prev_hash": before["hash"], "outcome": "denied"}
    plain_sha256(forged)
    with transaction() as session:
        session.execute(TABLE.insert().values(**forged))
    assert check().entry_id == 4


@pytest.mark.parametrize("rehash", [the_old_way, plain_sha256, another_key])
def test_an_edit_with_every_later_hash_made_again_shows(rehash):
    write()
    tamper(3, actor_name="Someone else")
    rehash_from(3, rehash)
    problem = check()
    assert problem is not None and problem.entry_id == 3


def test_the_whole_trail_made_again_the_old_way_shows():
    write()
    tamper(3, actor_name="Someone else")
    rehash_from(1, the_old_way)
    assert check() == Problem(
        6,
        "ends entries hashed the old, unkeyed way that no keyed seal follows: they were "
        "rewritten the old way, or the upgrade to the keyed chain did not seal them",
    )
    write(1)  # the next entry is keyed and links on: it does not seal them
    assert check() == Problem(7, "follows entries hashed the old way but is not the upgrade's seal")


def test_two_entries_swapped_show():
    write()
    renumber({3: 4, 4: 3})
    assert check().entry_id == 3


def test_two_entries_swapped_with_the_hashes_made_again_show():
    write()
    renumber({3: 4, 4: 3})
    rehash_from(3, the_old_way)
    assert check().entry_id == 3


def test_entries_renumbered_in_the_same_order_show():
    write()
    renumber({n: n + 10 for n in range(1, 7)})
    assert check().entry_id == 11


def test_another_audit_key_does_not_verify_the_trail():
    write(2)
    db.session.remove()
    problem = check_trail(db.session(), "another key, 32 characters or more").problem
    assert problem is not None and problem.entry_id == 1
    assert "AUDIT_KEY is not the key the trail was written with" in problem.reason


def test_the_page_checks_only_the_newest_entries():
    write()
    tamper(2, org_name="Another organisation")
    assert verify_chain(db.session(), last=4) is None
    assert verify_chain(db.session(), last=5) == 2
    tamper(5, org_name="Another organisation")
    assert verify_chain(db.session(), last=2) == 5
