"""The public, read-only HSDS 3.1 API under /hsds."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("hsds", __name__, url_prefix="/hsds")
