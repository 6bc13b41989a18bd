"""Flask commands for HSDS import and export."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    """Add `import-hsds` and `export-hsds` to the app's command line."""
