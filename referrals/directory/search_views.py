"""Directory search pages: the search page, whole or (for HTMX) just its results. Thin: parse
the form, call the search, render."""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask_login import login_required

from referrals.directory.search import (
    DEFAULT_RADIUS_MILES,
    MAX_RADIUS_MILES,
    MIN_RADIUS_MILES,
    SEARCH_FIELDS,
    run_search,
)
from referrals.terminology import SDOH_CATEGORIES
from referrals.web import render

bp = Blueprint("directory", __name__, url_prefix="/directory")


@bp.get("")
@login_required
def search() -> Response:
    """The directory search: the whole page, or its results for search-as-you-type."""
    form = {name: request.args[name] for name in SEARCH_FIELDS if request.args.get(name)}
    outcome = run_search(form)
    return render(
        "directory/search.html",
        "results" if request.htmx.target == "results" else None,
        422 if outcome.errors else 200,
        form=form,
        page=outcome.page,
        errors=outcome.errors,
        error=outcome.message,
        categories=SDOH_CATEGORIES,
        radius_default=DEFAULT_RADIUS_MILES,
        radius_range=(MIN_RADIUS_MILES, MAX_RADIUS_MILES),
    )
