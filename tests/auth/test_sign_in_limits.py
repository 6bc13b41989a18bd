"""Signing in tells nobody which accounts exist: an unknown address, a wrong password and a
disabled account get the same page after the same work, and every address is limited alike,
across processes, with a page that says when to try again."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from referrals.audit import AuditEvent
from referrals.auth import service
from referrals.auth.limits import Limit
from referrals.auth.models import ThrottleCounter, User
from referrals.auth.service import SignInAttempt, SignInLimits, authenticate
from referrals.db import db
from tests.helpers import PASSWORD, WebClient, statements_run
from tests.test_concurrency import _in_threads

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "nobody@test.example"
NOT_RIGHT = "Email or password is not right."
TOO_MANY = "Too many sign-in attempts. Try again in 1 minute."


class CountingHasher(PasswordHasher):
    """argon2id as the app uses it, counting the verifications: the costly work of a sign-in."""

    verifications = 0
    _lock = threading.Lock()  # verifications run in several threads at once

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with CountingHasher._lock:
            CountingHasher.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def argon2() -> Iterator[type[CountingHasher]]:
    previous = service.install_hasher(CountingHasher(memory_cost=1024, time_cost=1))
    CountingHasher.verifications = 0
    try:
        yield CountingHasher
    finally:
        service.install_hasher(previous)


def disable(email: str) -> None:
    session = db.session()
    session.execute(update(User).where(User.email == email).values(active=False))
    session.commit()
    db.session.remove()


def page_without(response, email: str) -> str:
    """The page but for what may differ between two visitors: the CSRF token, the typed address."""
    html = response.get_data(as_text=True)
    html = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', html)
    return html.replace(email, "EMAIL")


def sign_in(client: WebClient, email: str, password: str):
    return client.post("/login", {"email": email, "password": password})


def audited(why: str) -> list[AuditEvent]:
    db.session.remove()
    return list(
        db.session().scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.login", AuditEvent.detail["why"].as_string() == why
            )
        )
    )


# --- the same answer, the same work ------------------------------------------------------------


def test_unknown_wrong_and_disabled_get_the_same_page_after_the_same_work(world, client, argon2):
    disable(world.emails["housing"])
    disable(world.emails["school"])
    client.get("/login")
    sign_in(client, "warm-up@test.example", "x")  # the network's counter exists for every case
    cases = {  # each the first attempt for its address: the same history
        "unknown address": (UNKNOWN, PASSWORD),
        "wrong password": (world.emails["food"], "not the password"),
        "disabled, wrong password": (world.emails["housing"], "not the password"),
        # A disabled account's right password is not confirmed to anyone.
        "disabled, right password": (world.emails["school"], PASSWORD),
    }
    pages, work = {}, {}
    for case, (email, password) in cases.items():
        before = argon2.verifications
        statements = statements_run(
            lambda e=email, p=password, c=case: pages.update({c: (e, sign_in(client, e, p))})
        )
        work[case] = (argon2.verifications - before, statements)
    for email, response in pages.values():
        assert response.status_code == 401
        assert "Retry-After" not in response.headers
        assert NOT_RIGHT in response.get_data(as_text=True)
        assert f'value="{email}"' in response.get_data(as_text=True)
    bodies = {case: page_without(response, email) for case, (email, response) in pages.items()}
    assert len(set(bodies.values())) == 1, bodies.keys()
    # One argon2 verification each, and as many database statements.
    assert set(work.values()) == {(1, work["unknown address"][1])}, work


def test_a_blocked_address_gets_the_same_page_whether_an_account_has_it_or_not(
    world, client, argon2
):
    disable(world.emails["housing"])
    client.get("/login")
    addresses = [world.emails["food"], UNKNOWN, world.emails["housing"]]
    for email in addresses:
        for _ in range(5):
            assert sign_in(client, email, "wrong").status_code == 401
    assert argon2.verifications == 15
    blocked = {}
    work = {}
    for email in addresses:
        before = argon2.verifications
        work[email] = statements_run(
            lambda e=email: blocked.update({e: sign_in(client, e, PASSWORD)})
        )
        work[email] = (argon2.verifications - before, work[email])
    for response in blocked.values():
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert TOO_MANY in response.get_data(as_text=True)
    bodies = {page_without(response, email) for email, response in blocked.items()}
    assert len(bodies) == 1
    # Refused before any verification, for everyone alike.
    assert set(work.values()) == {(0, work[UNKNOWN][1])}, work


def test_the_address_is_counted_however_it_is_typed(world, client):
    client.get("/login")
    email = world.emails["food"]
    for typed in (email, email.upper(), f"  {email} ", email.title(), email):
        assert sign_in(client, typed, "wrong").status_code == 401
    assert sign_in(client, email, PASSWORD).status_code == 429


def test_signing_in_clears_the_address_count(world, client):
    client.get("/login")
    for _ in range(4):
        sign_in(client, world.emails["food"], "wrong")
    assert sign_in(client, world.emails["food"], PASSWORD).status_code == 302
    client.post("/logout")
    client.get("/login")
    for _ in range(4):
        assert sign_in(client, world.emails["food"], "wrong").status_code == 401
    assert sign_in(client, world.emails["food"], PASSWORD).status_code == 302


def test_every_refused_attempt_is_audited_without_the_password(world, client):
    client.get("/login")
    for _ in range(6):
        sign_in(client, UNKNOWN, "hunter2-secret")
    sign_in(client, world.emails["food"], "hunter2-secret")
    throttled, unknown, wrong = audited("throttled"), audited("unknown"), audited("wrong password")
    assert (len(throttled), len(unknown), len(wrong)) == (1, 5, 1)
    for event in [*throttled, *unknown, *wrong]:
        assert event.outcome == "denied"
        assert "hunter2" not in repr(
            (event.actor_name, event.target_id, event.detail, event.org_name)
        )
    assert throttled[0].actor_name == UNKNOWN and throttled[0].ip == "127.0.0.1"
    # The counters hold keyed hashes, never the address.
    keys = db.session().scalars(select(ThrottleCounter.key)).all()
    assert keys and all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)


# --- per network -------------------------------------------------------------------------------

NETWORK_OF_3 = SignInLimits(Limit(5, 86400, block=60, escalate=True), Limit(3, 900), "secret")


def attempt(email: str, password: str, ip: str = "203.0.113.9"):
    return authenticate(SignInAttempt(email, password, ip), NETWORK_OF_3)


def test_a_network_is_limited_across_addresses_but_not_for_sign_ins_that_succeed(world):
    for n in range(2):
        assert attempt(f"guess{n}@test.example", "x").error == NOT_RIGHT
    for _ in range(3):
        assert attempt(world.emails["food"], PASSWORD).user is not None  # not counted
    assert attempt("guess2@test.example", "x").error == NOT_RIGHT
    refused = attempt(world.emails["food"], PASSWORD)
    assert (
        refused.user is None
        and refused.error == "Too many sign-in attempts. Try again in 15 minutes."
    )
    assert 899 <= refused.retry_after <= 900
    assert attempt(world.emails["food"], PASSWORD, ip="198.51.100.7").user is not None


# --- across processes --------------------------------------------------------------------------


def test_concurrent_attempts_never_pass_the_limit(app, world, argon2):
    """Twelve wrong passwords for one address at the same moment: five are checked, the others
    refused unchecked, whatever the interleaving (PostgreSQL row locks, SQLite's write lock)."""
    email = world.emails["food"]
    results = _in_threads(app, lambda n: attempt(email, "wrong", ip=f"192.0.2.{n}"), 12)
    assert not [r for r in results if isinstance(r, Exception)], results
    checked = [r for r in results if r.error == NOT_RIGHT]
    refused = [r for r in results if r.retry_after]
    assert (len(checked), len(refused)) == (5, 7)
    assert argon2.verifications == 5


def test_concurrent_attempts_from_one_network_never_pass_its_limit(app, argon2):
    results = _in_threads(app, lambda n: attempt(f"guess{n}@test.example", "x"), 10)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(1 for r in results if r.error == NOT_RIGHT) == 3
    assert argon2.verifications == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def second_instance(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The app again, in another process, on the same database: the URL it answers at."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.auth.instance",
            database_url,
            str(port),
            str(tmp_path / "key.pem"),
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/login", timeout=5)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # polling for the server to listen, with a deadline
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_limit_holds_across_two_instances_sharing_the_database(world, client, second_instance):
    other = requests.Session()
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', other.get(f"{second_instance}/login").text
    ).group(1)

    def on_the_other(password: str) -> requests.Response:
        return other.post(
            f"{second_instance}/login",
            data={"email": world.emails["food"], "password": password, "csrf_token": token},
            allow_redirects=False,
        )

    client.get("/login")
    answers = []
    for n in range(5):  # alternating: 3 failures here, 2 there
        if n % 2:
            answers.append(on_the_other("wrong").status_code)
        else:
            answers.append(sign_in(client, world.emails["food"], "wrong").status_code)
    assert answers == [401] * 5
    there = on_the_other(PASSWORD)
    here = sign_in(client, world.emails["food"], PASSWORD)
    assert (there.status_code, here.status_code) == (429, 429)
    assert TOO_MANY in there.text and TOO_MANY in here.get_data(as_text=True)
    assert there.headers["Retry-After"] and here.headers["Retry-After"]
    db.session.remove()
    assert db.session().scalar(select(func.count()).select_from(ThrottleCounter)) == 2


def test_two_processes_at_once_never_pass_the_limit(app, world, second_instance):
    """Wrong passwords for one address, at the same moment, six through the other process's
    sign-in page and six through this process's service: five are checked in all."""
    email = world.emails["food"]
    limits = SignInLimits.from_settings(app.config["SETTINGS"])  # the same as the other's
    browsers = []
    for _ in range(6):
        browser = requests.Session()
        page = browser.get(f"{second_instance}/login").text
        browsers.append((browser, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)))

    def one(n: int) -> str:
        if n < 6:
            browser, token = browsers[n]
            answer = browser.post(
                f"{second_instance}/login",
                data={"email": email, "password": "wrong", "csrf_token": token},
                allow_redirects=False,
            )
            return {401: "checked", 429: "refused"}[answer.status_code]
        here = authenticate(SignInAttempt(email, "wrong", f"192.0.2.{n}"), limits)
        return "refused" if here.retry_after else "checked"

    results = _in_threads(app, one, 12)
    assert sorted(map(str, results)) == ["checked"] * 5 + ["refused"] * 7, [str(r) for r in results]
