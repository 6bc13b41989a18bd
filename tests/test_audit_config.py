"""AUDIT_KEY and the checkpoint settings: required and checked in production, a key kept in
instance/ on a laptop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from referrals import audit
from referrals.config import Settings, _kept_secret

pytestmark = pytest.mark.pure


@pytest.fixture(autouse=True)
def _no_audit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_KEY", "AUDIT_CHECKPOINT_MINUTES", "AUDIT_CHECKPOINT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REFERRALS_ENV", "production")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://referrals.example.org")


def test_production_refuses_to_start_without_an_audit_key():
    with pytest.raises(RuntimeError, match=r"AUDIT_KEY must be set in production"):
        Settings.from_env({"secret_key": "s" * 32})


def test_production_takes_the_audit_key_and_checkpoint_settings_from_the_environment(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("AUDIT_KEY", "k" * 40)
    monkeypatch.setenv("AUDIT_CHECKPOINT_MINUTES", "5")
    monkeypatch.setenv("AUDIT_CHECKPOINT_FILE", str(tmp_path / "checkpoints.jsonl"))
    settings = Settings.from_env({"secret_key": "s" * 32})
    assert (
        settings.audit_key,
        settings.audit_checkpoint_minutes,
        settings.audit_checkpoint_file,
    ) == ("k" * 40, 5.0, str(tmp_path / "checkpoints.jsonl"))


def test_every_audit_setting_problem_is_named_at_once():
    settings = Settings(
        env="production",
        audit_key="",
        audit_checkpoint_minutes=-1,
        audit_checkpoint_file="/no/such/folder/checkpoints.jsonl",
    )
    problems = audit.config_problems(settings)
    assert [p.split(" ")[0] for p in problems] == [
        "AUDIT_KEY",
        "AUDIT_CHECKPOINT_MINUTES",
        "AUDIT_CHECKPOINT_FILE=/no/such/folder/checkpoints.jsonl:",
    ]
    assert problems[2].endswith("its folder /no/such/folder does not exist.")


def test_a_short_audit_key_is_refused():
    settings = Settings(env="development", audit_key="too short")
    assert audit.config_problems(settings) == [
        "AUDIT_KEY is too short: use at least 32 random characters "
        "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')."
    ]
    assert audit.config_problems(Settings(env="development", audit_key="k" * 32)) == []


def test_outside_production_the_key_is_made_once_and_shared(tmp_path: Path):
    path = tmp_path / "instance" / "audit_key"
    found: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:  # several processes of a laptop starting at once
        barrier.wait()
        found.append(_kept_secret(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(found) == 8 and len(set(found)) == 1 and len(found[0]) == 64
    assert _kept_secret(path) == found[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["audit_key"]
