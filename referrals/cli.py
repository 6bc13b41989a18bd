"""Flask commands: check-config, db-upgrade, seed-demo, create-user, worker, serve,
audit-verify, audit-checkpoint."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import timedelta

import click
from flask import Flask, current_app

from referrals.auth.actor import Actor
from referrals.errors import InvalidInput


@click.command("check-config")
def check_config() -> None:
    """Check the settings in the environment, naming every missing or unsafe one at once;
    exit 1 if the app would refuse to start with them. Runs without starting the app."""
    from referrals.config import Settings

    settings = Settings.read()
    errors, warnings = settings.problems()
    click.echo(f"Settings for REFERRALS_ENV={settings.env}:")
    for title, items in (("Must be mended (the app will not start)", errors), ("Check", warnings)):
        if items:
            click.echo(f"{title}:")
            for item in items:
                click.echo(f"  - {item}")
    if errors:
        sys.exit(1)
    click.echo("The app can start with these settings.")


def register_commands(app: Flask) -> None:
    from referrals.directory.commands import register_commands as directory_commands
    from referrals.directory.hsds.commands import register_commands as hsds_commands
    from referrals.exchange.cli import register as exchange_commands
    from referrals.fhir.cli import register as api_client_commands

    directory_commands(app)
    hsds_commands(app)
    api_client_commands(app)
    exchange_commands(app)

    @app.cli.command("db-upgrade")
    @click.option("--revision", default="head", show_default=True, help="Target revision.")
    def db_upgrade(revision: str) -> None:
        """Apply the Alembic migrations to DATABASE_URL."""
        from referrals.migrate import upgrade

        upgrade(current_app.config["SETTINGS"].database_url, revision)
        click.echo("Database is up to date.")

    @app.cli.command("db-revision")
    @click.option("-m", "--message", required=True, help="What the migration changes.")
    def db_revision(message: str) -> None:
        """Autogenerate a migration from the models (read and edit it before committing)."""
        from referrals.migrate import revision

        revision(current_app.config["SETTINGS"].database_url, message)

    @app.cli.command("seed-demo")
    @click.option("--if-empty", is_flag=True, help="Do nothing when organisations exist already.")
    def seed_demo(if_empty: bool) -> None:
        """Add synthetic demo organisations, people, services, patients and referrals."""
        from referrals.seed import DEMO_PASSWORD, DEMO_USERS, seed

        created = seed(if_empty=if_empty)
        if created:
            click.echo("Demo data added.")
        else:
            click.echo("Demo data already present.")
        click.echo(f"Demo sign-ins (password for all: {DEMO_PASSWORD}):")
        for email, _name, org, role in DEMO_USERS:
            click.echo(f"  {email:<32} {role:<14} {org}")

    @app.cli.command("create-user")
    @click.option("--email", required=True)
    @click.option("--name", required=True)
    @click.option("--org", "org_name", required=True, help="Exact name of the organisation.")
    @click.option(
        "--role",
        required=True,
        help="clinician, cbo_staff, school_staff, org_admin or network_admin.",
    )
    @click.password_option(help="At least 12 characters; asked for when not given.")
    def create_user(email: str, name: str, org_name: str, role: str, password: str) -> None:
        """Add a person who signs in and acts for an organisation."""
        from referrals.auth.service import create_user as create

        try:
            user = create(
                Actor.system("command line"),
                email=email,
                name=name,
                password=password,
                org_name=org_name,
                role=role,
            )
        except InvalidInput as err:
            for field, messages in err.fields.items():
                click.echo(f"{field}: {' '.join(messages)}", err=True)
            sys.exit(2)
        click.echo(f"Created {user.email}.")

    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
    def worker(once: bool) -> None:
        """Deliver outbox jobs (SMS notices, exchange pushes) with retries."""
        from referrals import jobs

        settings = current_app.config["SETTINGS"]
        if once:
            jobs.run_start_hooks()
            counts = jobs.run_due_jobs(lease=timedelta(seconds=settings.worker_lease_seconds))
            click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "No jobs due.")
            return
        stopping = threading.Event()

        def stop(_signum: int, _frame: object) -> None:
            stopping.set()  # the job running now is finished first

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        jobs.run_worker(
            settings.worker_poll_seconds,
            stopping,
            lease=timedelta(seconds=settings.worker_lease_seconds),
        )

    @app.cli.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option(
        "--port",
        type=int,
        envvar="PORT",
        default=5000,
        show_default=True,
        help="Also read from PORT.",
    )
    def serve(host: str, port: int) -> None:
        """Run the web server and one worker together (a laptop or a demo); Ctrl-C stops both,
        as does a SIGTERM or SIGHUP (a closed terminal, `kill`): neither is left running."""
        import os
        import signal
        import subprocess
        import time

        def stop(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGHUP, stop)

        flask = [sys.executable, "-m", "flask", "--app", "app"]
        env = dict(os.environ)
        procs = [
            subprocess.Popen([*flask, "worker"], env=env),
            subprocess.Popen(
                [
                    *flask,
                    "run",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--no-reload",
                    "--with-threads",
                ],
                env=env,
            ),
        ]
        click.echo(f"Serving on http://{host}:{port} with a worker. Ctrl-C stops both.")
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        code = max((p.returncode or 0) for p in procs)
        sys.exit(0 if code in (0, -2, -15) else code)

    @app.cli.command("audit-verify")
    @click.option(
        "--checkpoint",
        "checkpoint_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="A file of checkpoints (AUDIT_CHECKPOINT_FILE, or the checkpoint log lines); "
        "may be given more than once.",
    )
    def audit_verify(checkpoint_files: tuple[str, ...]) -> None:
        """Check the audit trail's keyed hash chain, and that it still holds what each
        checkpoint vouches for; exit 1 naming the first problem."""
        from referrals import audit
        from referrals.db import db

        key = current_app.config["SETTINGS"].audit_key
        checkpoints: list[audit.Checkpoint] = []
        for path in checkpoint_files:
            with open(path, encoding="utf-8") as lines:
                found, problem = audit.read_checkpoints(lines, key)
            if problem is not None:
                click.echo(f"The checkpoints in {path} cannot be trusted: {problem}.", err=True)
                sys.exit(1)
            checkpoints += found
        report = audit.check_trail(db.session(), key, checkpoints=checkpoints)
        if report.problem is not None:
            problem = report.problem
            click.echo(
                f"The audit trail is broken at entry {problem.entry_id}: it {problem.reason}.",
                err=True,
            )
            sys.exit(1)
        if report.entries:
            click.echo(
                f"The audit trail is intact: {report.entries} entries, the last is entry "
                f"{report.last_id}, keyed with AUDIT_KEY id {audit.keys(key).key_id}."
            )
        else:
            click.echo("The audit trail is intact: it is empty.")
        if report.seal_id is not None:
            click.echo(
                f"The {report.sha256_entries} entries before entry {report.seal_id} were "
                "hashed before the keyed chain and are sealed by it; an edit of their "
                "organisation name, or new ids in the same order, would not show."
            )
        if checkpoints:
            newest = max(checkpoints, key=lambda c: (c.last_id, c.at))
            click.echo(
                f"{len(checkpoints)} checkpoint(s) hold; the newest vouches for "
                f"{newest.entries} entries up to entry {newest.last_id} ({newest.at})."
            )
        else:
            click.echo(
                "No checkpoint given: entries removed from the end of the trail would not "
                "show (use --checkpoint FILE)."
            )

    @app.cli.command("audit-checkpoint")
    def audit_checkpoint() -> None:
        """Write a signed checkpoint of the audit trail's head now: printed, logged, and
        appended to AUDIT_CHECKPOINT_FILE when set."""
        from referrals import audit
        from referrals.db import db

        session = db.session()
        checkpoint = audit.write_checkpoint(session)
        session.commit()
        click.echo(checkpoint.line())
        path = current_app.config["SETTINGS"].audit_checkpoint_file
        if path:
            click.echo(f"Appended to {path}.", err=True)
        else:
            click.echo("Logged only: AUDIT_CHECKPOINT_FILE is not set.", err=True)
