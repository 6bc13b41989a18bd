"""The outbox: enqueue in the caller's transaction, claim, retry with backoff, dead-letter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from referrals import jobs
from referrals.admin.service import jobs_overview, retry_job
from referrals.db import db, transaction, utcnow
from referrals.errors import Forbidden
from referrals.jobs import DEAD, DONE, QUEUED, Job, backoff, enqueue, run_due_jobs

LEASE = timedelta(seconds=30)

CALLS: list[dict] = []


@jobs.handler("test.flaky")
def _flaky(_session, payload: dict) -> None:
    CALLS.append(payload)
    if len(CALLS) <= payload.get("fail_times", 0):
        raise ConnectionError("provider unavailable")


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def _job() -> Job:
    db.session.remove()
    return db.session().scalar(select(Job))


def _make_due(job_id) -> None:
    with transaction() as session:
        session.get(Job, job_id).run_after = utcnow() - timedelta(seconds=1)


def test_enqueue_is_deduplicated_by_key():
    with transaction() as session:
        first = enqueue(session, "test.flaky", {"n": 1}, "same-key")
        second = enqueue(session, "test.flaky", {"n": 2}, "same-key")
    assert first.id == second.id
    assert run_due_jobs() == {DONE: 1}
    assert CALLS == [{"n": 1}]


def test_a_failing_job_is_retried_later_with_backoff_then_succeeds():
    with transaction() as session:
        enqueue(session, "test.flaky", {"fail_times": 1}, "k1")
    assert run_due_jobs() == {QUEUED: 1}
    job = _job()
    assert job.attempts == 1 and "ConnectionError: provider unavailable" in job.last_error
    assert job.run_after > utcnow()  # not due again at once
    assert run_due_jobs() == {}
    _make_due(job.id)
    assert run_due_jobs() == {DONE: 1}
    assert _job().status == DONE and len(CALLS) == 2


def test_a_job_that_keeps_failing_goes_dead_and_an_admin_can_retry_it(world):
    with transaction() as session:
        enqueue(session, "test.flaky", {"fail_times": 99}, "k2", max_attempts=3)
    for _ in range(3):
        _make_due(_job().id)
        run_due_jobs()
    job = _job()
    assert job.status == DEAD and job.attempts == 3 and job.finished_at is not None
    counts, dead = jobs_overview(world.actor("admin"))
    assert counts == {DEAD: 1} and [d.id for d in dead] == [job.id]

    with pytest.raises(Forbidden):
        retry_job(world.actor("clinician"), job.id)
    retry_job(world.actor("admin"), job.id)
    job = _job()
    assert (job.status, job.attempts) == (QUEUED, 0)


def test_unknown_job_kind_is_dead_at_once():
    with transaction() as session:
        enqueue(session, "no.such.kind", {}, "k3")
    assert run_due_jobs() == {DEAD: 1}
    assert "no handler" in _job().last_error


def test_a_job_left_running_by_a_crashed_worker_is_taken_up_after_its_lease():
    with transaction() as session:
        enqueue(session, "test.flaky", {}, "k4")
    job_id = jobs.claim_next(db.session(), "crashed-worker", LEASE)
    db.session.remove()
    assert run_due_jobs() == {}  # still leased to the crashed worker
    with transaction() as session:
        session.get(Job, job_id).locked_until = utcnow() - timedelta(seconds=1)
    assert run_due_jobs() == {DONE: 1}
    assert _job().attempts == 2


def test_a_worker_leases_only_the_job_it_runs_and_charges_no_other():
    """A worker that dies holds up one job, not a batch; jobs that never started are never
    charged an attempt."""
    with transaction() as session:
        for n in range(5):
            enqueue(session, "test.flaky", {"n": n}, f"batch-{n}")
    claimed = jobs.claim_next(db.session(), "dies-now", LEASE)
    db.session.remove()
    rows = db.session().scalars(select(Job).order_by(Job.created_at)).all()
    running = [j for j in rows if j.status == jobs.RUNNING]
    assert [j.id for j in running] == [claimed]
    assert sorted(j.attempts for j in rows) == [0, 0, 0, 0, 1]
    db.session.remove()
    # Another worker drains the rest at once; the dead worker's job waits for its lease only.
    assert run_due_jobs() == {DONE: 4}
    assert sorted(c["n"] for c in CALLS) == sorted(j.payload["n"] for j in rows if j.id != claimed)


def test_the_heartbeat_renews_the_lease_of_the_running_job_and_marks_the_worker_alive():
    from referrals.jobs import Worker, beat

    with transaction() as session:
        enqueue(session, "test.flaky", {}, "beats")
        session.add(Worker(name="w1", heartbeat_at=utcnow() - timedelta(minutes=5)))
    job_id = jobs.claim_next(db.session(), "w1", timedelta(seconds=3))
    db.session.remove()
    with transaction() as session:
        session.get(Job, job_id).locked_until = utcnow() - timedelta(seconds=1)
    beat("w1", timedelta(seconds=60))
    db.session.remove()
    session = db.session()
    assert session.get(Job, job_id).locked_until > utcnow() + timedelta(seconds=50)
    assert session.get(Worker, "w1").heartbeat_at > utcnow() - timedelta(seconds=5)
    db.session.remove()
    assert run_due_jobs() == {}  # alive: not taken up


def test_a_handler_that_lost_its_job_to_another_worker_stops_before_its_one_time_step():
    steps: list[str] = []

    @jobs.handler("test.once")
    def _once(session, _payload):
        session.commit()  # handlers commit their progress before slow steps
        other = db.session.session_factory()  # another worker takes the job over meanwhile
        try:
            other.execute(update(Job).values(locked_by="another-worker"))
            other.commit()
        finally:
            other.close()
        jobs.hold_lease(session)
        steps.append("handed over")

    with transaction() as session:
        enqueue(session, "test.once", {}, "once")
    job_id = jobs.claim_next(db.session(), "slow", LEASE)
    db.session.remove()
    assert jobs.run_job(job_id, "slow", LEASE) == "lost"
    assert steps == []
    job = _job()
    assert (job.status, job.locked_by) == (jobs.RUNNING, "another-worker")


def test_a_worker_stops_when_told_after_its_job_and_says_it_stopped():
    import threading

    from referrals.jobs import Worker, run_worker, worker_name

    stop = threading.Event()

    @jobs.handler("test.stop")
    def _stop(_session, _payload):
        stop.set()  # SIGTERM arrives while this job runs

    with transaction() as session:
        enqueue(session, "test.stop", {}, "stop-1")
        enqueue(session, "test.stop", {}, "stop-2")
    run_worker(0.01, stop, lease=timedelta(seconds=3))
    db.session.remove()
    statuses = sorted(
        j.status for j in db.session().scalars(select(Job).where(Job.kind == "test.stop"))
    )
    assert statuses == [DONE, QUEUED]  # the running job finished; the next one waits
    worker = db.session().get(Worker, worker_name())
    assert worker.stopped_at is not None


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt in range(1, 15):
        delay = backoff(attempt).total_seconds()
        ceiling = min(3600, 10 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_postgres_workers_skip_each_others_claimed_rows(app):
    if not db.is_postgres:
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite runs one worker")
    with transaction() as session:
        for n in range(4):
            enqueue(session, "test.flaky", {"n": n}, f"k-{n}")
    first = db.session()
    # Hold the first two rows locked in an open transaction, as a busy worker would.
    held = list(first.scalars(select(Job.id).order_by(Job.run_after).limit(2).with_for_update()))
    other = db.session.session_factory()
    try:
        claimed = [jobs.claim_next(other, "worker-b", LEASE) for _ in range(3)]
    finally:
        other.close()
    first.rollback()
    assert len(held) == 2
    assert claimed[2] is None and not set(held) & set(claimed[:2])


def test_a_failure_after_the_job_was_taken_over_leaves_the_new_owner_alone():
    @jobs.handler("test.taken-then-fails")
    def _fails(session, _payload):
        session.commit()
        other = db.session.session_factory()  # another worker takes the job over meanwhile
        try:
            other.execute(update(Job).values(locked_by="new-owner"))
            other.commit()
        finally:
            other.close()
        raise ConnectionError("provider unavailable")

    with transaction() as session:
        enqueue(session, "test.taken-then-fails", {}, "taken")
    job_id = jobs.claim_next(db.session(), "old-owner", LEASE)
    db.session.remove()
    assert jobs.run_job(job_id, "old-owner", LEASE) == "lost"
    job = _job()
    assert (job.status, job.locked_by, job.last_error) == (jobs.RUNNING, "new-owner", "")


def test_the_same_key_enqueued_by_two_transactions_at_once_makes_one_job(app):
    if not db.is_postgres:
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    import threading

    barrier = threading.Barrier(2)
    made: list = []
    errors: list = []

    def start() -> None:
        session = db.session.session_factory()
        try:
            barrier.wait()
            made.append(enqueue(session, "test.flaky", {}, "two-at-once").id)
            session.commit()
        except Exception as exc:  # what this test looks for
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(made) == 2 and made[0] == made[1]


def test_a_worker_whose_start_hook_fails_still_runs_jobs():
    import threading

    from referrals.jobs import START_HOOKS, run_worker

    stop = threading.Event()

    def broken(_session) -> None:
        raise ConnectionError("database away for a moment")

    @jobs.handler("test.after-broken-hook")
    def _ran(_session, _payload):
        stop.set()

    with transaction() as session:
        enqueue(session, "test.after-broken-hook", {}, "after-hook")
    START_HOOKS.append(broken)
    try:
        run_worker(0.01, stop, lease=timedelta(seconds=3))
    finally:
        START_HOOKS.remove(broken)
    assert _job().status == DONE


def test_two_workers_in_one_pid_namespace_have_different_names():
    import subprocess
    import sys

    names = {
        subprocess.run(
            [sys.executable, "-c", "from referrals.jobs import worker_name; print(worker_name())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(names) == 2
