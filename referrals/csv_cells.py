"""Every CSV file the product writes goes through `write_rows`: no cell it writes can run as a
formula when the file is opened in a spreadsheet, and `unprotect` gives back exactly the text
that was written.

OWASP's rule against CSV injection: a text cell that starts with `=`, `+`, `-`, `@`, a tab or
a carriage return gets a single quote in front, and every cell is quoted. So that the prefix
can be taken off again without guessing, a text cell that already starts with a quote gets one
too: `unprotect` removes exactly one leading quote, from the files that declare the rule
(`declare` marks a data package's datapackage.json; our importer reads it back). Numbers are
written as numbers: a number is not a formula, and a data package declares its numeric
columns as such."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from typing import TextIO

PREFIX = "'"
# What a spreadsheet reads as the start of a formula (OWASP, CSV Injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The datapackage.json property saying that text cells carry the prefix.
DECLARATION = "x_referrals_csv_text_prefix"

Cell = str | int | float | None


def protect(text: str) -> str:
    """The text as a cell no spreadsheet runs: a quote in front where it starts like a formula
    (or with a quote itself)."""
    return PREFIX + text if text.startswith((*FORMULA_STARTS, PREFIX)) else text


def unprotect(cell: str) -> str:
    """The text `protect` was given: one leading quote taken off."""
    return cell[len(PREFIX) :] if cell.startswith(PREFIX) else cell


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # a bool is an int to Python, and a word to a spreadsheet
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no place in a CSV file")
        return repr(value)
    return protect(value)


def write_rows(out: TextIO, rows: Iterable[Sequence[Cell]]) -> None:
    """Write rows of cells, every cell quoted, text protected, numbers as they are."""
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(value) for value in row])


def declare(manifest: dict) -> dict:
    """A data package's datapackage.json, saying that its text cells carry the prefix."""
    return {**manifest, DECLARATION: PREFIX}


def declared(manifest: dict) -> bool:
    """Whether a data package says its text cells carry the prefix."""
    return manifest.get(DECLARATION) == PREFIX
