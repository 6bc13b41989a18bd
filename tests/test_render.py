"""Rendering a page or a fragment: whatever the template's variables are called, they reach the
template, and the HTTP status is the one asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from jinja2 import ChoiceLoader, DictLoader

from referrals.web import render

# Names of render's own parameters and of the renderers' beneath it.
NAMES = ("template", "block", "status", "template_name", "block_name", "environment")
PROBE = (
    "<main>{% block part %}"
    + "".join(f"{name}={{{{ {name} }}}};" for name in (*NAMES, "template_name_or_list"))
    + "{% endblock %}</main>"
)


@pytest.fixture
def probe(app: Flask) -> Iterator[None]:
    """A template of the tests' own, beside the app's."""
    original = app.jinja_env.loader
    app.jinja_env.loader = ChoiceLoader([DictLoader({"probe.html": PROBE}), original])
    app.jinja_env.cache.clear()
    try:
        yield
    finally:
        app.jinja_env.loader = original
        app.jinja_env.cache.clear()


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
def test_every_context_name_reaches_the_template_and_the_status_is_kept(app, probe, htmx):
    context = {name: f"<{name}>" for name in (*NAMES, "template_name_or_list")}
    headers = {"HX-Request": "true"} if htmx else {}
    with app.test_request_context("/", headers=headers):
        response = render("probe.html", "part", 409, **context)
    html = response.get_data(as_text=True)
    assert response.status == "409 CONFLICT"
    for name in context:
        assert f"{name}=&lt;{name}&gt;;" in html  # escaped like any other variable
    assert ("<main>" in html) is not htmx  # the whole page, or only the block


def test_the_status_defaults_to_200(app, probe):
    with app.test_request_context("/"):
        response = render("probe.html", status="requested")
    assert response.status == "200 OK"
    assert "status=requested;" in response.get_data(as_text=True)
