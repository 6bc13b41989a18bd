"""Flask commands for the directory."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    """Add the directory's commands (gen-directory) to the app's command line."""
