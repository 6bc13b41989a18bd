"""Flask commands for the directory: `gen-directory` (a synthetic California directory) and
`reindex-directory` (rewrite the search rows from the HSDS tables)."""

from __future__ import annotations

import time

import click
from flask import Flask


def register_commands(app: Flask) -> None:
    """Add the directory's commands (gen-directory, reindex-directory) to the command line."""

    @app.cli.command("gen-directory")
    @click.option(
        "--services",
        "count",
        type=click.IntRange(1, 1_000_000),
        required=True,
        help="How many services to add.",
    )
    @click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same data.")
    def gen_directory(count: int, seed: int) -> None:
        """Add a synthetic, realistic California directory (all 58 counties, every SDOH domain,
        several languages, schedules, capacities) for demos and benchmarks."""
        from referrals.db import db
        from referrals.directory.generate import generate_directory

        start = time.perf_counter()
        with click.progressbar(length=count, label="Services") as bar:
            made = generate_directory(db.session(), count, seed=seed, progress=bar.update)
        elapsed = time.perf_counter() - start
        click.echo(
            f"Added {made.services} services of {made.organizations} organisations in "
            f"{len(made.counties)} counties, {len(made.categories)} needs, in {elapsed:.1f} s."
        )

    @app.cli.command("reindex-directory")
    def reindex_directory() -> None:
        """Rewrite the search rows of every service (after upgrading, or a bulk change)."""
        from referrals.db import transaction
        from referrals.directory.search import rebuild_search_rows

        with transaction() as session:
            count = rebuild_search_rows(session)
        click.echo(f"Search rows rewritten for {count} services.")
