"""Two people, or two workers, at the same moment: PostgreSQL's real concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from referrals import audit
from referrals.audit import AuditEvent, verify_chain
from referrals.auth.actor import Actor
from referrals.db import db, transaction
from referrals.errors import Conflict
from referrals.loop.lifecycle import Refusal
from referrals.loop.models import ReferralEvent
from referrals.loop.service import change_referral
from tests.helpers import make_patient, send


def _in_threads(app, work, count: int) -> list[object]:
    """Run `work(n)` in `count` threads at once, each in its own app context and session."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(n: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[n] = work(n)
            except Exception as exc:  # collected for the assertions
                results[n] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_audit_writers_keep_one_unbroken_chain(app):
    def write(n: int) -> None:
        for i in range(15):
            with transaction() as session:
                audit.record(session, Actor.system(f"writer {n}"), "test.write", "Test", i)

    _in_threads(app, write, 6)
    db.session.remove()
    assert db.session().scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc())) == 90
    assert verify_chain(db.session()) is None


def test_two_people_answering_at_once_one_wins_the_other_is_told(app, world):
    if not db.is_postgres:
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    referral = send(world, make_patient(world))
    actors = [world.actor("food"), world.actor("food_admin")]
    forms = [
        {"action": "accept", "version": "1"},
        {"action": "decline", "version": "1", "reason": "at-capacity"},
    ]
    results = _in_threads(app, lambda n: change_referral(actors[n], referral.id, forms[n]), 2)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], Conflict | Refusal), results
    db.session.remove()
    events = db.session().scalars(select(ReferralEvent.action)).all()
    assert sorted(events) in (["accept", "send"], ["decline", "send"])


def test_the_same_referral_bundle_sent_four_times_at_once_makes_one_referral(app, world):
    from referrals.loop.models import Referral
    from referrals.patients.models import Patient
    from tests.fhir.test_transaction import post, referral_bundle, token

    bearer = token(app, world)
    bundle = referral_bundle(world)
    responses = _in_threads(app, lambda n: post(app, bundle, bearer), 4)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 4, [r.get_json() for r in responses]
    answers = [[e["response"]["status"] for e in r.get_json()["entry"]] for r in responses]
    assert sorted(answers) == [["200 OK"] * 5] * 3 + [["201 Created"] * 5]
    locations = {r.get_json()["entry"][3]["response"]["location"] for r in responses}
    assert len(locations) == 1
    db.session.remove()
    assert len(db.session().scalars(select(Referral.id)).all()) == 1
    assert len(db.session().scalars(select(Patient.id)).all()) == 1
