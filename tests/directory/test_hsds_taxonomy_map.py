"""Taxonomy terms to SDOH domains: the default map and how terms are matched."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from referrals.db import db, transaction
from referrals.directory.models import TaxonomySdohMap
from referrals.directory.taxonomy_map import DEFAULT_ROWS, SdohMapper, seed_taxonomy_map

DEFAULTS = SdohMapper(
    TaxonomySdohMap(taxonomy=t, term_code=code, term_name=name, sdoh_category=category)
    for t, code, name, category in DEFAULT_ROWS
)


@pytest.mark.pure
@pytest.mark.parametrize(
    ("code", "name", "category"),
    [
        ("BD-1800.2000", None, "food-insecurity"),  # food pantries
        ("BD-1800.2000-620", None, "food-insecurity"),  # below a mapped code
        ("bd-1800.2000", None, "food-insecurity"),  # case does not matter
        ("BH-1800", None, "housing-instability"),
        ("BH-1800.8500-150", None, "homelessness"),  # the nearest mapped code wins
        ("BT-4500", None, "transportation-insecurity"),
        ("BV-8900", None, "utility-insecurity"),
        (None, "Emergency Food", "food-insecurity"),
        (None, "transit", "transportation-insecurity"),
        (None, "Utilities", "utility-insecurity"),
        (None, "Housing", "housing-instability"),
        ("ZZ-9999", "Unheard of", None),
        ("B", None, None),
    ],
)
def test_terms_map_to_sdoh_domains(code, name, category):
    assert DEFAULTS.category(code, name) == category


@pytest.mark.pure
def test_categories_are_distinct_and_in_the_sdoh_order():
    terms = [("BV-8900", None), (None, "Food"), ("BD-1800.2000", None), (None, "Nothing")]
    assert DEFAULTS.categories(terms) == ["food-insecurity", "utility-insecurity"]


def test_seeding_fills_an_empty_map_once(app):
    with transaction() as session:
        assert seed_taxonomy_map(session) == len(DEFAULT_ROWS)
    with transaction() as session:
        assert seed_taxonomy_map(session) == 0
    assert db.session().scalar(select(func.count(TaxonomySdohMap.id))) == len(DEFAULT_ROWS)


def test_seed_demo_seeds_the_map(app):
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    count = db.session().scalar(select(func.count(TaxonomySdohMap.id)))
    assert count == len(DEFAULT_ROWS)
