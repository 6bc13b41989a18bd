"""Flask commands for HSDS import and export."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import click
from flask import Flask

PROGRESS_FROM = 500  # records: smaller imports finish before a bar would help


def register_commands(app: Flask) -> None:
    """Add `import-hsds` and `export-hsds` to the app's command line."""

    @app.cli.command("import-hsds")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
    @click.option(
        "--strict",
        is_flag=True,
        help="Treat warnings (coordinates out of range, dangling parent links, US ZIP codes "
        "that do not exist or lie outside California) as errors.",
    )
    @click.option(
        "--prune",
        is_flag=True,
        help="The input is a full snapshot of its organizations: their services it does not "
        "list are removed (made inactive when referrals point at them).",
    )
    def import_hsds_command(path: Path, dry_run: bool, strict: bool, prune: bool) -> None:
        """Import Open Referral HSDS 3.x: a JSON file or folder of them (services, or files
        named organizations/taxonomies/taxonomy_terms), or a tabular data package (folder or
        .zip with datapackage.json). Everything is checked first; any error writes nothing."""
        from referrals.directory.hsds.importer import import_hsds

        with ExitStack() as stack:
            bars: list = []

            def progress(step: int, total: int) -> None:
                if not bars and total >= PROGRESS_FROM:
                    bar = click.progressbar(length=total, label="Importing", file=sys.stderr)
                    bars.append(stack.enter_context(bar))
                if bars:
                    bars[0].update(step)

            report = import_hsds(
                path, dry_run=dry_run, strict=strict, prune=prune, progress=progress
            )
        for line in report.lines():
            click.echo(line, err=not report.ok)
        if not report.ok:
            sys.exit(1)

    @app.cli.command("export-hsds")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["json", "tabular"]),
        default="json",
        show_default=True,
        help="json: a folder of services.json, organizations.json, taxonomies.json and "
        "taxonomy_terms.json; tabular: a data package (a folder, or a .zip when PATH ends "
        "in .zip).",
    )
    def export_hsds_command(path: Path, fmt: str) -> None:
        """Export the whole directory as HSDS 3.1."""
        from referrals.directory.hsds.exporter import export_json, export_tabular

        counts = export_json(path) if fmt == "json" else export_tabular(path)
        summary = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
        click.echo(f"Exported {summary or 'nothing'} to {path}.")
