"""Family texts under fire: two worker processes on PostgreSQL drain hundreds of notices, many
of them identical texts to one parent's number, through a Twilio that fails about 30% of calls
in every transient way (a 500 before or after taking the text, a 429, an answer slower than
our timeout; look-ups too), while workers are killed with SIGKILL at random moments and
started again. Afterwards, from Twilio's own record: every notice was taken exactly once, and
our row holds that text's id."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from referrals.db import db, transaction, utcnow
from referrals.jobs import DEAD, Job
from referrals.notify.models import Message, SmsNumber
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import World, make_patient, move, send
from tests.notify.conftest import SERVICE_SID

FAMILIES = 120  # numbers, two children each: 240 referrals, each pair the same words
ACCEPTED = 70  # referrals also accepted: their second texts
KILLS = 24
SEED = 20261207
ROOT = Path(__file__).resolve().parents[2]


def _worker(database_url: str, fake: FakeTwilio, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "REFERRALS_ENV": "development",
        "SECRET_KEY": "crash-test-" + "k" * 32,
        "DATABASE_URL": database_url,
        "SMS_GATEWAY": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_TIMEOUT_SECONDS": "0.5",
        "PUBLIC_BASE_URL": "https://referrals.example.org",
        "SMS_QUIET_START": "00:00",
        "SMS_QUIET_END": "00:00",
        "SMS_RATE_PER_SECOND": "1000",
        "WORKER_POLL_SECONDS": "0.1",
        "WORKER_LEASE_SECONDS": "3",
        "JOB_RETRY_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
    }
    flask = Path(sys.executable).with_name("flask")
    with log.open("a") as out:
        return subprocess.Popen(
            [str(flask), "--app", "app", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _families(world: World) -> int:
    """Brothers and sisters at one parent's number, referred to the food bank; some accepted.
    Each number already heard from us, so identical notices carry identical words."""
    with transaction() as session:
        for n in range(FAMILIES):
            session.add(
                SmsNumber(
                    phone=f"+1510555{n:04d}", opted_out=False, keyword="", introduced_at=utcnow()
                )
            )
    referrals = []
    for n in range(FAMILIES):
        for child in ("Maya", "Leo"):
            patient = make_patient(
                world, given_name=child, family_name=f"Family{n}", guardian_phone=f"+1510555{n:04d}"
            )
            referrals.append(send(world, patient))
    for referral in random.Random(SEED).sample(referrals, ACCEPTED):
        move(world, "food", referral, "accept")
    db.session.remove()
    return len(referrals) + ACCEPTED


def _settled() -> tuple[int, int]:
    """(notice jobs not finished, messages not settled)."""
    db.session.remove()
    session = db.session()
    jobs_left = session.scalar(
        select(func.count()).where(Job.kind == "sms.notice", Job.status.in_(["queued", "running"]))
    )
    messages_left = session.scalar(
        select(func.count()).where(Message.status.in_(["queued", "sending"]))
    )
    db.session.remove()
    return jobs_left, messages_left


def test_every_notice_reaches_twilio_once_under_its_own_id_whatever_dies(
    world: World, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if not db.is_postgres:
        pytest.skip("several workers share the outbox on PostgreSQL; SQLite runs one worker")
    notices = _families(world)
    with transaction() as session:  # kills charge attempts too: a notice is never given up here
        session.execute(update(Job).values(max_attempts=40))
    rng = random.Random(SEED)
    with FakeTwilio(slow_seconds=1.0) as fake:
        fake.chaos(0.3, seed=SEED)
        log = tmp_path / "workers.log"
        workers = [_worker(database_url, fake, log) for _ in range(2)]
        kills = 0
        try:
            # A few kills at the worst moment: just after Twilio took a text.
            def kill_one(_message: dict) -> None:
                nonlocal kills
                if kills < 4:
                    victim = rng.choice(workers)
                    if victim.poll() is None:
                        kills += 1
                        os.kill(victim.pid, signal.SIGKILL)

            fake.on_create = kill_one
            while kills < KILLS:
                time.sleep(rng.uniform(0.2, 1.2))
                if kills >= 4:
                    fake.on_create = None
                for i, worker in enumerate(workers):
                    if worker.poll() is not None:
                        workers[i] = _worker(database_url, fake, log)
                victim = rng.randrange(len(workers))
                os.kill(workers[victim].pid, signal.SIGKILL)
                workers[victim].wait()
                kills += 1
                workers[victim] = _worker(database_url, fake, log)
                if _settled() == (0, 0):
                    break
            last_kill = time.monotonic()
            fake.on_create = None
            deadline = last_kill + 300
            while _settled() != (0, 0):
                assert time.monotonic() < deadline, f"not drained: {_settled()}"
                for i, worker in enumerate(workers):
                    if worker.poll() is not None:  # killed by the hook after the last loop
                        workers[i] = _worker(database_url, fake, log)
                time.sleep(0.25)
            drain = time.monotonic() - last_kill
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=30) for worker in workers]
        taken = fake.messages
        requests = Counter(r["method"] for r in fake.requests)
        errors = fake.errors
    assert codes == [0, 0], log.read_text()[-3000:]
    assert not errors
    assert kills >= 20

    db.session.remove()
    session = db.session()
    rows = list(session.scalars(select(Message)))
    assert len(rows) == notices >= 300
    dead = session.scalar(select(func.count()).where(Job.status == DEAD))
    assert dead == 0
    by_callback: dict[str, list[dict]] = {}
    for message in taken:
        key = message["form"]["StatusCallback"].rsplit("message=", 1)[-1]
        by_callback.setdefault(key, []).append(message)
    once = 0
    for row in rows:
        copies = by_callback.get(str(row.id), [])
        assert len(copies) == 1, f"message {row.id} reached Twilio {len(copies)} times"
        assert row.status == "sent" and row.provider_id == copies[0]["sid"]
        assert copies[0]["to"] == row.to_phone and copies[0]["body"] == row.body
        once += 1
    assert len(taken) == len(rows)
    pairs = Counter((row.to_phone, row.body) for row in rows)
    identical_pairs = sum(count // 2 for count in pairs.values())
    assert identical_pairs >= 50
    with capsys.disabled():
        print(
            f"\ncrash test: {notices} notices ({identical_pairs} pairs of identical texts to one "
            f"number), {kills} SIGKILLs, {once} taken by Twilio exactly once under their own id, "
            f"{requests['POST']} hand-overs and {requests['GET']} look-ups for them, drained "
            f"{drain:.1f} s after the last kill"
        )
