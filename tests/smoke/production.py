"""The production smoke test: what the README's Production section says, run as an operator
runs it, then one referral round trip over real HTTP.

On a fresh PostgreSQL database: `docs/production.sh check` and `migrate`; the directory and two
people added with the documented commands; `docs/production.sh web` (gunicorn, 2 processes) and
two `docs/production.sh worker`; `REFERRALS_ENV=production`, a `SECRET_KEY`,
`TRUSTED_PROXIES=1`, and every request carrying the `X-Forwarded-Proto: https` a TLS proxy
adds. A clinician signs in, registers a family and sends a referral; the pantry's staff accept
and complete it; the clinician sees it completed; a worker hands each of the family's three
texts to Twilio (a local stand-in speaking its API) exactly once. Then `/readyz` is green, the
logs are JSON lines without the family's number, and every process stops cleanly on SIGTERM.

    .venv/bin/python -m tests.smoke.production [--admin-url postgresql://...]

Exits 0 when everything held, 1 with what did not."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import requests
from psycopg import sql

from tests.fakes.twilio_api import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "production.sh"
DIRECTORY = Path(__file__).parent / "directory"
PASSWORD = "smoke-" + secrets.token_hex(12)
CLINICIAN = "doctor@harbor.example"
STAFF = "staff@bayside.example"
GUARDIAN_PHONE = "+15105550177"
SERVICE_ID = "6f1d2e3b-5a4c-4d7e-9f80-1b2c3d4e5f60"
PUBLIC = "https://referrals.smoke.example"
# What a TLS-terminating proxy adds to each request it passes on.
PROXY = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "referrals.smoke.example",
    "X-Forwarded-For": "203.0.113.9",
}
CALIFORNIA = ZoneInfo("America/Los_Angeles")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Failed(Exception):
    pass


def check(condition: object, what: str) -> None:
    if not condition:
        raise Failed(what)


def eventually(probe: Callable[[], object], what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    raise Failed(f"{what}: not within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator:
    """Runs the documented commands with production settings, and keeps their logs."""

    def __init__(self, database_url: str, fake: FakeTwilio, logs: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "REFERRALS_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "AUDIT_KEY": secrets.token_hex(32),
            "AUDIT_CHECKPOINT_FILE": str(logs / "audit-checkpoints.jsonl"),
            "DATABASE_URL": database_url,
            "TRUSTED_PROXIES": "1",
            "PUBLIC_BASE_URL": PUBLIC,
            "SMS_GATEWAY": "twilio",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_MESSAGING_SERVICE_SID": "MG" + "5" * 32,
            "TWILIO_API_BASE_URL": fake.url,
            "SMS_QUIET_START": "00:00",  # the round trip may run at any hour
            "SMS_QUIET_END": "00:00",
            "EXCHANGE_KEY_FILE": str(logs / "exchange_key.pem"),
            "WEB_WORKERS": "2",
            "BIND": f"127.0.0.1:{self.port}",
        }
        for name in ("LOG_FORMAT", "SESSION_COOKIE_SECURE", "TEST_DATABASE_URL"):
            self.env.pop(name, None)
        self.processes: dict[str, subprocess.Popen] = {}

    def run(self, *args: str) -> str:
        done = subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        shown = " ".join(
            "••••" if prev == "--password" else a
            for prev, a in zip(("", *args), args, strict=False)
        )
        print(f"$ {shown}  -> exit {done.returncode}")
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise Failed(f"{' '.join(args)} exited {done.returncode}:\n{output[-3000:]}")
        return output

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        print(f"$ {' '.join(args)} &  ({name}, pid {self.processes[name].pid})")

    def stop_all(self) -> dict[str, int | None]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes

    def log_lines(self, name: str) -> list[str]:
        return (self.logs / f"{name}.log").read_text(errors="replace").splitlines()


class Person:
    """Someone using the pages through the TLS proxy: the proxy's headers on every request,
    and the browser's cookies, which it sends back because it speaks HTTPS to the proxy (so a
    cookie is kept here only when it is marked Secure)."""

    def __init__(self, operator: Operator, email: str) -> None:
        self.base = operator.base
        self.http = requests.Session()
        self.http.headers.update(PROXY)
        self.cookies: dict[str, str] = {}
        self.token = self.page = ""
        page = self.get("/login")
        check(page.status_code == 200, f"GET /login answered {page.status_code}")
        check(page.headers.get("X-Request-ID"), "no X-Request-ID on the sign-in page")
        check(
            "max-age" in page.headers.get("Strict-Transport-Security", ""),
            "no HSTS behind the proxy: is TRUSTED_PROXIES read?",
        )
        answer = self.post("/login", {"email": email, "password": PASSWORD})
        check(answer.status_code == 200 and "Sign out" in answer.text, f"{email} cannot sign in")

    def get(self, path: str) -> requests.Response:
        return self._send("GET", path, None)

    def post(self, path: str, form: dict[str, str]) -> requests.Response:
        return self._send("POST", path, {"csrf_token": self.token, **form})

    def _send(self, method: str, path: str, form: dict[str, str] | None) -> requests.Response:
        url = self.base + path
        for _ in range(5):  # redirects followed by hand: cookies change on the way
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
            if self.page:  # the browser says which page of ours a form came from
                headers["Referer"] = self.page
            answer = self.http.request(
                method,
                url,
                data=form,
                headers=headers,
                allow_redirects=False,
                timeout=30,
            )
            check(answer.status_code < 500, f"{method} {url}: {answer.status_code}")
            for cookie in answer.cookies:
                check(cookie.secure, f"the cookie {cookie.name} is not marked Secure")
                self.cookies[cookie.name] = cookie.value or ""
            if answer.status_code not in (301, 302, 303, 307, 308):
                break
            url = requests.compat.urljoin(url, answer.headers["Location"])
            method, form = ("GET", None) if answer.status_code != 307 else (method, form)
        found = CSRF.search(answer.text)
        if found:
            self.token = found.group(1)
        self.page = PUBLIC + requests.compat.urlsplit(url).path
        return answer


def years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


def round_trip(operator: Operator, fake: FakeTwilio) -> str:
    doctor = Person(operator, CLINICIAN)
    page = doctor.post(
        "/patients/new",
        {
            "given_name": "Rosa",
            "family_name": "Smoketest",
            "birth_date": years_ago(8),
            "language": "es",
            "guardian_name": "Marta Smoketest",
            "guardian_relationship": "mother",
            "guardian_phone": GUARDIAN_PHONE,
            "guardian_language": "es",
        },
    )
    found = re.search(r"/patients/([0-9a-f-]{36})", page.url)
    check(found, f"the patient was not registered: {page.text[:500]}")
    patient_id = found.group(1)
    doctor.get(f"/patients/{patient_id}/referrals/new")
    sent = doctor.post(
        f"/patients/{patient_id}/referrals",
        {
            "service_id": SERVICE_ID,
            "note": "Food runs out before the end of the month.",
            "consent_given_by": "guardian",
            "consent_given_by_name": "Marta Smoketest",
            "consent_method": "verbal",
            "consent_date": datetime.now(CALIFORNIA).date().isoformat(),  # the clinic's today
        },
    )
    check(
        "Referral sent to Bayside Community Pantry" in sent.text,
        f"the referral was not sent: {sent.status_code} {_messages(sent.text)}",
    )
    referral_id = sent.url.rsplit("/", 1)[-1]
    print(f"  referral {referral_id} sent by the clinician")

    staff = Person(operator, STAFF)
    inbox = staff.get("/inbox")
    check("Rosa" in inbox.text and referral_id in inbox.text, "the referral is not in the inbox")
    filtered = staff.get("/inbox?status=requested")
    check(filtered.status_code == 200 and referral_id in filtered.text, "the inbox filter fails")
    for version, action, extra in (
        ("1", "accept", {}),
        ("2", "start", {}),
        ("3", "complete", {"output_code": "710925007"}),
    ):
        moved = staff.post(
            f"/referrals/{referral_id}/status", {"action": action, "version": version, **extra}
        )
        check(moved.status_code == 200, f"{action}: {moved.status_code} {moved.text[:300]}")
    print("  accepted, started and completed by the pantry's staff")
    detail = doctor.get(f"/referrals/{referral_id}")
    check(
        "Completed" in detail.text and "Provision of food" in detail.text,
        "the clinician does not see the referral completed",
    )

    def texts() -> list[dict]:
        mine = [m for m in fake.messages if m["to"] == GUARDIAN_PHONE]
        return mine if len(mine) >= 3 else []

    delivered = eventually(texts, "the family's three texts handed to Twilio by a worker")
    time.sleep(2)  # anything handed over twice would show now
    mine = [m for m in fake.messages if m["to"] == GUARDIAN_PHONE]
    check(len(mine) == 3, f"{len(mine)} texts to the family, not 3")
    callbacks = {m["form"]["StatusCallback"] for m in mine}
    check(
        len(callbacks) == 3
        and all(
            c.startswith("https://referrals.smoke.example/sms/status?message=") for c in callbacks
        ),
        "each text should ask for its own delivery status at the public address",
    )
    print(f"  {len(delivered)} texts to the family, each handed to Twilio once")
    return referral_id


def _messages(html: str) -> list[str]:
    """What a page says went wrong: its error and field messages, without markup."""
    found = re.findall(
        r'class="(?:flash[^"]*|error[^"]*|field-error[^"]*)"[^>]*>(.*?)</', html, re.S
    )
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m)).strip() for m in found][:10]


def readiness(operator: Operator) -> dict:
    def ready() -> dict | None:
        answer = requests.get(operator.base + "/readyz", headers=PROXY, timeout=10)
        check("Set-Cookie" not in answer.headers, "/readyz sets a cookie")
        return answer.json() if answer.status_code == 200 else None

    body = eventually(ready, "/readyz green")
    health = requests.get(operator.base + "/healthz", headers=PROXY, timeout=10)
    check(health.status_code == 200 and health.json() == {"status": "ok"}, "/healthz")
    return body  # type: ignore[return-value]


def check_logs(operator: Operator) -> int:
    lines = (
        operator.log_lines("web") + operator.log_lines("worker-1") + operator.log_lines("worker-2")
    )
    digits = GUARDIAN_PHONE.lstrip("+")
    entries = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise Failed(f"a log line is not JSON: {line[:200]}") from None
        check(isinstance(entry, dict) and "message" in entry, f"odd log line: {line[:200]}")
        check(digits not in line and "Smoketest" not in line, f"PHI in a log line: {line[:200]}")
        entries += 1
    requests_logged = [
        json.loads(line)
        for line in operator.log_lines("web")
        if line.strip() and '"referrals.access"' in line
    ]
    check(requests_logged, "no request lines in the web log")
    check(all(e.get("request_id") for e in requests_logged), "a request line without its id")
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="A PostgreSQL connection allowed to create and drop databases.",
    )
    args = parser.parse_args()
    name = f"referrals_smoke_{uuid.uuid4().hex[:10]}"
    database_url = f"{args.admin_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    logs = Path(tempfile.mkdtemp(prefix="referrals-smoke-"))
    started = time.monotonic()
    operator: Operator | None = None
    try:
        with FakeTwilio() as fake:
            operator = Operator(database_url, fake, logs)
            print(operator.run(str(SCRIPT), "check"))
            operator.run(str(SCRIPT), "migrate")
            operator.run("flask", "--app", "app", "import-hsds", str(DIRECTORY))
            for email, name_, org, role in (
                (CLINICIAN, "Dr. Ana Ruiz", "Harbor Family Clinic", "clinician"),
                (STAFF, "Sam Lee", "Bayside Community Pantry", "cbo_staff"),
            ):
                operator.run(
                    "flask", "--app", "app", "create-user", "--email", email, "--name", name_,
                    "--org", org, "--role", role, "--password", PASSWORD,
                )  # fmt: skip
            operator.start("web", str(SCRIPT), "web")
            operator.start("worker-1", str(SCRIPT), "worker")
            operator.start("worker-2", str(SCRIPT), "worker")
            eventually(lambda: _answers(operator.base + "/healthz"), "the web server answering", 60)
            round_trip(operator, fake)
            body = readiness(operator)
            print(f"  /readyz: {json.dumps(body['checks'])}")
            codes = operator.stop_all()
            print(f"  stopped: {codes}")
            check(
                all(code == 0 for code in codes.values()),
                f"a process did not stop cleanly: {codes}",
            )
            entries = check_logs(operator)
            print(f"  {entries} log lines, each one JSON object, none with the family's number")
            operator.run("flask", "--app", "app", "audit-checkpoint")
            print(
                operator.run(
                    "flask",
                    "--app",
                    "app",
                    "audit-verify",
                    "--checkpoint",
                    operator.env["AUDIT_CHECKPOINT_FILE"],
                )
            )
    except Failed as problem:
        print(f"\nPRODUCTION SMOKE FAILED: {problem}", file=sys.stderr)
        if operator is not None:
            operator.stop_all()
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log.name} (last lines)", file=sys.stderr)
                print(
                    "\n".join(log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr
                )
        return 1
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    print(f"Production smoke passed in {time.monotonic() - started:.0f} s.")
    return 0


def _answers(url: str) -> bool:
    try:
        return requests.get(url, headers=PROXY, timeout=2).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())
