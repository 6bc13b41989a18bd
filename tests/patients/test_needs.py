"""The domain -> Condition code table."""

from __future__ import annotations

import re

import pytest

from referrals.patients.instruments import INSTRUMENTS
from referrals.patients.needs import ICD_10_CM, NEED_CODES, need_codes
from referrals.terminology import SDOH_CATEGORIES, SNOMED

pytestmark = pytest.mark.pure

ICD_10_CM_CODE = re.compile(r"^Z\d{2}(\.\d{1,3})?$")
SCTID = re.compile(r"^\d{6,18}$")

NEED_TABLE = [
    # (domain, SNOMED CT finding, ICD-10-CM)
    ("food-insecurity", "733423003", "Z59.41"),
    ("housing-instability", "1156191002", "Z59.811"),
    ("homelessness", "32911000", "Z59.00"),
    ("inadequate-housing", None, "Z59.10"),
    ("transportation-insecurity", "160695008", "Z59.82"),
    ("utility-insecurity", None, "Z59.12"),
    ("intimate-partner-violence", "706893006", None),
    ("employment-status", "73438004", "Z56.0"),
    ("social-connection", "422650009", None),
    ("material-hardship", None, None),
]


@pytest.mark.parametrize(("domain", "snomed", "icd"), NEED_TABLE)
def test_each_domain_maps_to_its_confirmed_condition_codes(
    domain: str, snomed: str | None, icd: str | None
) -> None:
    need = need_codes(domain)

    assert (need.snomed.code if need.snomed else None) == snomed
    assert (need.icd10cm.code if need.icd10cm else None) == icd
    assert need.display


def test_the_table_covers_exactly_the_rows_we_confirmed() -> None:
    assert set(NEED_CODES) == {domain for domain, _, _ in NEED_TABLE}


@pytest.mark.parametrize("domain", list(NEED_CODES))
def test_codes_are_well_formed_and_in_the_right_system(domain: str) -> None:
    need = NEED_CODES[domain]

    assert domain in SDOH_CATEGORIES
    if need.snomed:
        assert need.snomed.system == SNOMED
        assert SCTID.match(need.snomed.code)
    if need.icd10cm:
        assert need.icd10cm.system == ICD_10_CM
        assert ICD_10_CM_CODE.match(need.icd10cm.code)
    assert need.codings == tuple(c for c in (need.snomed, need.icd10cm) if c)


def test_every_domain_an_instrument_screens_for_has_a_need_row() -> None:
    screened = {domain for i in INSTRUMENTS.values() for domain in i.domains}

    assert screened <= set(NEED_CODES)


def test_a_category_without_confirmed_codes_gets_its_label_only() -> None:
    need = need_codes("stress")

    assert need.display == "Stress"
    assert need.codings == ()


def test_an_unknown_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="'hunger'"):
        need_codes("hunger")
