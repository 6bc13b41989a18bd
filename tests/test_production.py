"""Running as production runs: settings checked at start and on demand, all problems named at
once; health and readiness for the load balancer; JSON logs with a request id; and the README
showing the very script CI's production smoke stage runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update

from referrals import create_app
from referrals.config import ConfigError, Settings
from referrals.db import transaction, utcnow
from referrals.jobs import Worker
from referrals.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[1]
FLASK = Path(sys.executable).with_name("flask")
GUNICORN = Path(sys.executable).with_name("gunicorn")
PRODUCTION = {
    "REFERRALS_ENV": "production",
    "SECRET_KEY": "s" * 48,
    "AUDIT_KEY": "a" * 48,
    "PUBLIC_BASE_URL": "https://referrals.example.org",
    "TRUSTED_PROXIES": "1",
}


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMS_"))}
    for name in (
        "SECRET_KEY",
        "AUDIT_KEY",
        "PUBLIC_BASE_URL",
        "SESSION_COOKIE_SECURE",
        "LOG_FORMAT",
        "PORT",
    ):
        env.pop(name, None)
    env.update(values)
    return env


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for name in ("SESSION_COOKIE_SECURE", "LOG_FORMAT", "PORT", "SMS_GATEWAY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**PRODUCTION, "DATABASE_URL": database_url}.items():
        monkeypatch.setenv(name, value)


# --- settings ---------------------------------------------------------------------------------


def test_production_starts_with_the_secret_key_from_the_environment(production_env):
    settings = Settings.from_env()
    assert settings.env == "production" and settings.secret_key == "s" * 48
    assert settings.session_cookie_secure is True
    app = create_app({"argon2_memory_kib": 1024, "argon2_time_cost": 1, "log_level": "WARNING"})
    assert app.config["SECRET_KEY"] == "s" * 48
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_every_unsafe_production_setting_is_named_at_once(monkeypatch):
    for name, value in {
        "REFERRALS_ENV": "production",
        "SECRET_KEY": "short",
        "SESSION_COOKIE_SECURE": "false",
        "PUBLIC_BASE_URL": "http://referrals.example.org",
        "SMS_GATEWAY": "twilio",
        "LOG_FORMAT": "xml",
        "WORKER_LEASE_SECONDS": "soon",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        Settings.from_env()
    problems = "\n".join(refused.value.problems)
    for expected in (
        "SECRET_KEY is too short",
        "SESSION_COOKIE_SECURE is off",
        "PUBLIC_BASE_URL='http://referrals.example.org'",
        "SMS_GATEWAY=twilio needs TWILIO_ACCOUNT_SID",
        "LOG_FORMAT='xml'",
        "WORKER_LEASE_SECONDS: not a valid value",
    ):
        assert expected in problems
    assert "development" not in str(refused.value)  # never the advice to drop the guards


def test_a_lease_the_heartbeat_cannot_renew_within_a_minute_is_refused(monkeypatch):
    monkeypatch.setenv("REFERRALS_ENV", "development")
    monkeypatch.setenv("WORKER_LEASE_SECONDS", "300")
    with pytest.raises(ConfigError, match="WORKER_LEASE_SECONDS must be from 3 to 120"):
        Settings.from_env()


def test_check_config_reports_without_starting_the_app():
    refused = subprocess.run(
        [str(FLASK), "--app", "app", "check-config"],
        cwd=ROOT,
        env=_env(REFERRALS_ENV="production", DATABASE_URL="sqlite:///:memory:"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "SECRET_KEY is not set" in refused.stdout and "PUBLIC_BASE_URL" in refused.stdout
    assert "SQLite" in refused.stdout  # a warning, listed too
    assert "Traceback" not in refused.stderr

    fine = subprocess.run(
        [str(FLASK), "--app", "app", "check-config"],
        cwd=ROOT,
        env=_env(**PRODUCTION, DATABASE_URL="postgresql://db.internal/referrals"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "The app can start with these settings." in fine.stdout


def test_gunicorn_refuses_to_start_with_unsafe_settings_and_names_them():
    refused = subprocess.run(
        [
            str(GUNICORN),
            "--config",
            "python:referrals.gunicorn_conf",
            "--bind",
            "127.0.0.1:0",
            "app:app",
        ],
        cwd=ROOT,
        env=_env(REFERRALS_ENV="production", DATABASE_URL="sqlite:///:memory:"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "SECRET_KEY is not set" in refused.stderr and "PUBLIC_BASE_URL" in refused.stderr
    assert "Booting worker" not in refused.stderr  # stopped before any worker started


# --- health -----------------------------------------------------------------------------------


def test_healthz_answers_json_without_a_session(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"


def test_readyz_needs_a_worker_heartbeat_younger_than_a_minute(client):
    answer = client.get("/readyz")
    body = answer.get_json()
    assert answer.status_code == 503 and body["status"] == "not ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"]["ok"] is True
    assert body["checks"]["worker"] == {"ok": False, "error": "no worker has started"}
    assert "Set-Cookie" not in answer.headers

    with transaction() as session:
        session.add(Worker(name="host:1", heartbeat_at=utcnow() - timedelta(seconds=5)))
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "ready"
    assert answer.get_json()["checks"]["worker"]["last_heartbeat_seconds"] in range(4, 30)

    with transaction() as session:
        session.execute(update(Worker).values(heartbeat_at=utcnow() - timedelta(minutes=2)))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "in the last minute" in answer.get_json()["checks"]["worker"]["error"]


def test_readyz_says_when_the_database_is_behind_the_migrations(client):
    with transaction() as session:
        session.add(Worker(name="host:1", heartbeat_at=utcnow()))
        head = session.scalar(text("SELECT version_num FROM alembic_version"))
        session.execute(text("UPDATE alembic_version SET version_num = '0015'"))
    try:
        body = client.get("/readyz").get_json()
        assert body["status"] == "not ready"
        assert body["checks"]["migrations"] == {
            "ok": False,
            "at": "0015",
            "head": head,
            "error": "the database is not at the latest migration: run db-upgrade",
        }
    finally:
        with transaction() as session:
            session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})


def test_a_signed_in_browser_asking_readyz_gets_no_session_cookie(client, world):
    client.login(world, "food")
    answer = client.get("/readyz")
    assert "Set-Cookie" not in answer.headers


# --- logs -------------------------------------------------------------------------------------


def test_json_log_lines_are_one_object_each_with_the_request_id_and_no_phone_number(
    app, client, caplog
):
    caplog.set_level(logging.INFO)
    answer = client.get("/login")
    request_id = answer.headers["X-Request-ID"]
    assert len(request_id) == 32
    with app.test_request_context():
        from referrals.logs import REQUEST_ID

        token = REQUEST_ID.set(request_id)
        try:
            logging.getLogger("referrals.test").warning("texting +15105550142 for the family")
        finally:
            REQUEST_ID.reset(token)
    [record] = [r for r in caplog.records if r.name == "referrals.test"]
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == request_id and entry["level"] == "WARNING"
    assert entry["message"] == "texting [number] for the family"


def test_production_access_lines_are_json_with_the_request_id(production_env, caplog):
    app = create_app({"argon2_memory_kib": 1024, "argon2_time_cost": 1, "log_level": "INFO"})
    try:
        assert app.config["SETTINGS"].json_logs is True  # the default in production
        caplog.set_level(logging.INFO, logger="referrals.access")
        answer = app.test_client().get("/healthz?name=Maya", headers={"X-Forwarded-Proto": "https"})
        [record] = [r for r in caplog.records if r.name == "referrals.access"]
        entry = json.loads(JsonFormatter().format(record))
        assert entry["request_id"] == answer.headers["X-Request-ID"]
        assert entry["http"] == {
            "method": "GET",
            "path": "/healthz",
            "status": 200,
            "duration_ms": entry["http"]["duration_ms"],
        }
        assert "Maya" not in json.dumps(entry)
    finally:
        from referrals.logs import configure

        configure("WARNING", False)


def test_a_trusted_proxys_request_id_is_kept_and_a_strange_one_replaced(production_env):
    app = create_app({"argon2_memory_kib": 1024, "argon2_time_cost": 1, "log_level": "WARNING"})
    try:
        kept = app.test_client().get("/healthz", headers={"X-Request-ID": "proxy-abc-12345"})
        assert kept.headers["X-Request-ID"] == "proxy-abc-12345"
        odd = app.test_client().get("/healthz", headers={"X-Request-ID": "<script>" * 20})
        assert (
            odd.headers["X-Request-ID"] != "<script>" * 20
            and len(odd.headers["X-Request-ID"]) == 32
        )
    finally:
        from referrals.logs import configure

        configure("WARNING", False)


# --- the script the README shows --------------------------------------------------------------


def test_the_readme_shows_the_production_script_that_ci_runs():
    script = (ROOT / "docs" / "production.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"```sh\n{script}```" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make smoke" in ci and "tests.smoke.production" in makefile
    driver = (ROOT / "tests" / "smoke" / "production.py").read_text()
    assert 'SCRIPT = ROOT / "docs" / "production.sh"' in driver
    for command in ("check", "migrate", "web", "worker"):
        assert f'str(SCRIPT), "{command}"' in driver


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_serve_stops_its_web_server_and_worker_when_it_is_stopped(
    tmp_path: Path, signum: int
) -> None:
    """`make run`'s server, stopped by `kill` or a closed terminal, leaves nothing running."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _env(
        REFERRALS_ENV="development",
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        SMS_GATEWAY="console",
    )
    subprocess.run(
        [str(FLASK), "--app", "app", "db-upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    serve = subprocess.Popen(
        [str(FLASK), "--app", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        children: list[int] = []
        for _ in range(120):
            children = _children(serve.pid)
            if len(children) == 2 and _answers(f"http://127.0.0.1:{port}/healthz"):
                break
            time.sleep(0.25)
        assert len(children) == 2, "a web server and a worker"
        serve.send_signal(signum)
        assert serve.wait(timeout=20) == 0
        for _ in range(40):
            if not any(_alive(pid) for pid in children):
                break
            time.sleep(0.25)
        assert not any(_alive(pid) for pid in children), "left running"
        assert not _answers(f"http://127.0.0.1:{port}/healthz")
    finally:
        if serve.poll() is None:
            serve.kill()
        for pid in _children(serve.pid):
            os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in found.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (stopped, not yet reaped by anyone) is not running
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
