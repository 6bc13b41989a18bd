"""CSV files the product writes open in a spreadsheet without running anything, and give back
exactly what was written (OWASP's CSV injection rule)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals import csv_cells

pytestmark = pytest.mark.pure

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
# Text that starts the ways that matter more often than chance would.
TEXT = st.one_of(
    st.text(),
    st.builds(
        lambda start, rest: start + rest,
        st.sampled_from([*DANGEROUS, "'", "''", "'=", " =", '"']),
        st.text(),
    ),
)


def read_back(written: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(written, newline="")))


@given(TEXT)
def test_any_text_comes_back_from_its_protected_form(text):
    protected = csv_cells.protect(text)
    assert not protected.startswith(DANGEROUS)
    assert csv_cells.unprotect(protected) == text


@given(
    st.lists(
        st.lists(
            st.one_of(TEXT, st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
            min_size=1,
            max_size=6,
        ),
        max_size=6,
    )
)
def test_written_cells_never_start_like_a_formula_and_read_back_to_what_was_given(rows):
    out = io.StringIO()
    csv_cells.write_rows(out, rows)
    back = read_back(out.getvalue())
    assert len(back) == len(rows)
    for given_row, read_row in zip(rows, back, strict=True):
        for value, cell in zip(given_row, read_row, strict=True):
            if isinstance(value, str):
                assert not cell.startswith(DANGEROUS), cell
                assert csv_cells.unprotect(cell) == value
            else:  # a number is written as one: not a formula, and a number when read
                assert (int if isinstance(value, int) else float)(cell) == value


def test_every_cell_is_quoted_and_the_examples_owasp_gives_are_neutral():
    out = io.StringIO()
    csv_cells.write_rows(
        out, [["=1+1", "+1 510 555 0100", "-2+3+cmd|' /C calc'!A0", "@SUM(1)", "'quoted", 5]]
    )
    assert out.getvalue() == (
        '"\'=1+1","\'+1 510 555 0100","\'-2+3+cmd|\' /C calc\'!A0","\'@SUM(1)","\'\'quoted","5"\n'
    )


def test_every_csv_the_product_writes_goes_through_one_function():
    """No other code makes a CSV writer or serves text/csv by itself."""
    root = Path(__file__).resolve().parent.parent / "referrals"
    writers = re.compile(r"csv\.writer|DictWriter|text/csv")
    found = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if writers.search(path.read_text(encoding="utf-8"))
    ]
    # csv_cells writes; the exporter only names the media type in datapackage.json.
    assert sorted(found) == ["csv_cells.py", "directory/hsds/exporter.py"]
    exporter = (root / "directory/hsds/exporter.py").read_text(encoding="utf-8")
    assert "csv.writer" not in exporter and "csv_cells.write_rows" in exporter
