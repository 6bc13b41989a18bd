"""Two instances, one loop: a clinic on instance A refers a family to a pantry that works on
instance B (its own system, its own database). A's worker sends the referral to B as a FHIR
transaction with A's SMART Backend Services token; B's staff accept and complete it in B's
pages; A polls B and its clinician sees "Completed" with what was done. Real processes, real
HTTP, real tokens, no shared database."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from referrals.terminology import california_today
from tests.helpers import years_ago

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REFERRALS_ENV": "development",
            "DATABASE_URL": f"sqlite:///{tmp / f'{name}.db'}",
            "SECRET_KEY": f"two-instances-{name}",
            "PUBLIC_BASE_URL": self.url,
            "EXCHANGE_KEY_FILE": str(tmp / f"{name}-key.pem"),
            "EXCHANGE_POLL_SECONDS": "1",
            "WORKER_POLL_SECONDS": "0.2",
            "SMS_QUIET_START": "00:00",
            # The families' texts are paced per sender (1 a second by default) by the same
            # worker: not what these tests are about.
            "SMS_RATE_PER_SECOND": "1000",
            "SMS_QUIET_END": "00:00",
            "ARGON2_MEMORY_KIB": "1024",
            "ARGON2_TIME_COST": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.env.pop("TEST_DATABASE_URL", None)
        self.procs: list[subprocess.Popen] = []
        self.mode = ""
        self.log = tmp / f"{name}.log"

    def setup(self, step: str, given: dict | None = None) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "tests.exchange.instance_setup", step, json.dumps(given or {})],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def job_kinds(self) -> dict[str, int]:
        """How many jobs of each kind this instance's outbox holds."""
        import sqlite3

        path = self.env["DATABASE_URL"].removeprefix("sqlite:///")
        with sqlite3.connect(path) as connection:
            rows = connection.execute("SELECT kind, count(*) FROM jobs GROUP BY kind").fetchall()
        return dict(rows)

    def command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> None:
        flask = [sys.executable, "-m", "flask", "--app", "app"]
        out = self.log.open("a")
        self.procs = [
            subprocess.Popen(
                [*flask, "run", "--port", str(self.port), "--no-reload", "--with-threads"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [*flask, "worker"], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            ),
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/fhir/metadata", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"instance {self.name} did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Browser:
    """A person signed in on an instance's pages (cookie and CSRF token kept)."""

    def __init__(self, instance: Instance, email: str) -> None:
        self.base = instance.url
        self.http = requests.Session()
        self.token = ""
        self.get("/login")
        answer = self.post("/login", {"email": email, "password": PASSWORD})
        assert answer.status_code == 200 and "Sign out" in answer.text, answer.text[:500]

    def get(self, path: str) -> requests.Response:
        answer = self.http.get(self.base + path, timeout=10)
        found = CSRF.search(answer.text)
        if found:
            self.token = found.group(1)
        return answer

    def post(self, path: str, form: dict[str, str]) -> requests.Response:
        answer = self.http.post(
            self.base + path, data={"csrf_token": self.token, **form}, timeout=10
        )
        found = CSRF.search(answer.text)
        if found:
            self.token = found.group(1)
        return answer


def eventually(
    check: Callable[[], object], what: str, timeout: float = 30, logs: tuple = ()
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    told = "\n".join(f"--- {i.name}: {i.log.read_text()[-3000:]}" for i in logs)
    raise AssertionError(f"not seen within {timeout} s: {what}\n{told}")


PEER = "Bay Community Pantry's system"


def two_instances(
    tmp_path: Path, mode: str, **env: str
) -> Iterator[tuple[Instance, Instance, dict]]:
    """A and B set up and running; A follows B's Tasks by `mode` (poll or subscribe)."""
    a, b = Instance("a", tmp_path), Instance("b", tmp_path)
    a.env.update(env)
    b.env.update(env)
    # Both on 127.0.0.1: each may notify the other only because the settings name it.
    a.env["SUBSCRIPTION_ALLOWED_ENDPOINTS"] = b.url
    b.env["SUBSCRIPTION_ALLOWED_ENDPOINTS"] = a.url
    a.mode = mode
    on_b = b.setup("b")
    on_a = a.setup("a")
    registered = b.setup("register-a", {"jwks": on_a["jwks"]})
    a.setup(
        "peer-a",
        {
            "b_url": f"{b.url}/fhir",
            "client_id": registered["client_id"],
            "cbo_id": on_b["cbo_id"],
            "mode": mode,
        },
    )
    try:
        b.start()
        a.start()
        if mode == "subscribe":
            done = a.command("exchange", "subscribe", "--peer", PEER)
            assert done.returncode == 0, done.stderr
        yield a, b, {**on_a, **on_b}
    finally:
        a.stop()
        b.stop()


@pytest.fixture(params=["poll", "subscribe"])
def instances(request, tmp_path: Path) -> Iterator[tuple[Instance, Instance, dict]]:
    yield from two_instances(tmp_path, request.param)


def test_a_referral_from_a_is_worked_on_b_and_closed_on_a(instances) -> None:
    a, b, ids = instances
    doctor = Browser(a, "doctor@sunrise.example")
    page = doctor.post(
        "/patients/new",
        {
            "given_name": "Nina",
            "family_name": "Okoro",
            "birth_date": years_ago(7),
            "language": "en",
            "guardian_name": "Grace Okoro",
            "guardian_relationship": "mother",
            "guardian_phone": "+15105550166",
        },
    )
    patient_id = re.search(r"/patients/([0-9a-f-]{36})", page.url).group(1)
    doctor.get(f"/patients/{patient_id}/referrals/new")
    sent = doctor.post(
        f"/patients/{patient_id}/referrals",
        {
            "service_id": ids["service_id"],
            "note": "Food runs out before payday.",
            "consent_given_by": "guardian",
            "consent_given_by_name": "Grace Okoro",
            "consent_method": "verbal",
            "consent_date": california_today().isoformat(),
        },
    )
    assert "Referral sent to Bay Community Pantry" in sent.text, sent.text[:1000]
    referral_on_a = sent.url.rsplit("/", 1)[-1]

    # B's staff see it in their inbox: pushed by A's worker as a FHIR transaction.
    staff = Browser(b, "staff@pantry.example")
    inbox = eventually(
        lambda: (lambda html: "Nina Okoro" in html and html)(staff.get("/inbox").text),
        "the referral in B's inbox",
        logs=(a, b),
    )
    referral_on_b = re.search(r'href="/referrals/([0-9a-f-]{36})"', inbox).group(1)
    detail = staff.get(f"/referrals/{referral_on_b}").text
    assert "Dr. Rivera, Sunrise Pediatrics" in detail
    assert "Food runs out before payday." in detail

    # B's staff accept, then complete it with what was provided.
    accepted = staff.post(
        f"/referrals/{referral_on_b}/status", {"action": "accept", "version": "1"}
    )
    assert accepted.ok and "Accepted" in accepted.text
    done = staff.post(
        f"/referrals/{referral_on_b}/status",
        {"action": "complete", "version": "2", "output_code": "710925007"},
    )
    assert done.ok and "Completed" in done.text, done.text[:1000]

    # A follows B's Task by polling and shows the outcome to the clinician.
    def closed_on_a() -> str | None:
        html = doctor.get(f"/referrals/{referral_on_a}").text
        return html if "Completed" in html and "Provision of food" in html else None

    html = eventually(closed_on_a, "the completed referral on A", logs=(a, b))
    assert "Bay Community Pantry on Bay Community Pantry" in html  # who did it, on which system
    kinds = a.job_kinds()
    if a.mode == "subscribe":  # told by B's notifications, never by polling
        # (one read may already find the Task completed: it reads the latest state)
        assert kinds.get("exchange.fetch", 0) >= 1 and "exchange.poll" not in kinds
    else:
        assert kinds.get("exchange.poll", 0) >= 1 and "exchange.fetch" not in kinds
