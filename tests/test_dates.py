"""Dates have one spelling, YYYY-MM-DD in ASCII digits, and one reading (issue 13, points 10 and 16).

``package.parse_date`` reads a single cell; typed columns (which the rules, the duplicate
gate, charts, builds and ``civharm.load()`` read) give the same day or NaT; the structure
check reports a date that stock frictionless reads but that is spelled otherwise.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from civharm import structure
from civharm.package import Resource, load_package, parse_date
from conftest import VALID_MINIMAL, build_package, set_cell

SPELLINGS = {
    "2024-03-14": dt.date(2024, 3, 14),
    "2024-02-29": dt.date(2024, 2, 29),
    "0001-01-01": dt.date(1, 1, 1),
    "9999-12-31": dt.date(9999, 12, 31),
    "2024-3-14": None,        # not zero-padded: strptime reads it
    "2024-03-4": None,
    "٢٠٢٤-03-14": None,       # Arabic-Indic digits: strptime reads them
    "２０２４-03-14": None,    # fullwidth digits: strptime reads them
    "2024-03-1٤": None,
    "2024-02-30": None,
    "2023-02-29": None,
    "0000-01-01": None,
    "2024-03-14\n": None,
    " 2024-03-14": None,
    "20240314": None,
    "2024-W11-4": None,
    "2024-03-14T00:00": None,
    "": None,
}


@pytest.mark.parametrize("cell", SPELLINGS)
def test_parse_date_reads_only_yyyy_mm_dd_in_ascii_digits(cell):
    assert parse_date(cell) == SPELLINGS[cell]


def typed(cells: list[str]) -> list:
    resource = Resource("t", "t.csv", {"fields": [{"name": "day", "type": "date"}]}, None, b"",
                        frame=pd.DataFrame({"day": pd.array(cells, dtype="string")}))
    return [None if pd.isna(value) else value.date() for value in resource.typed["day"]]


@pytest.mark.parametrize("cell", SPELLINGS)
def test_a_typed_column_reads_each_cell_as_parse_date_does(cell):
    """Alone (Arrow's one-pass cast, when it can read the column) and beside a bad cell (one by one)."""
    assert typed(["2024-01-02", cell]) == [dt.date(2024, 1, 2), SPELLINGS[cell]]
    assert typed([cell, "2024-3-1"]) == [SPELLINGS[cell], None]


@pytest.mark.parametrize("cell, rule_id", [
    ("2024-3-14", "structure/date-format"),
    ("٢٠٢٤-03-14", "structure/date-format"),
    ("２０２４-03-14", "structure/date-format"),
    ("26.11.2026", "frictionless/type-error"),  # frictionless rejects it: one finding, not two
    ("2024-02-30", "frictionless/type-error"),
])
def test_each_misspelt_date_has_one_finding(cell, rule_id, tmp_path):
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    set_cell(root / "data" / "sources.csv", 2, "last_updated", cell)
    found = [(f.file, f.line, f.field, f.rule_id) for f in structure.check(load_package(root))]
    assert found == [("data/sources.csv", 2, "last_updated", rule_id)]


def test_a_misspelt_date_is_reported_on_the_frictionless_path_too(tmp_path):
    """A file frictionless itself must read (a BOM) still gets the date check."""
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    set_cell(root / "data" / "sources.csv", 2, "last_updated", "2024-3-14")
    path = root / "data" / "sources.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    found = [(f.file, f.line, f.field, f.rule_id) for f in structure.check(load_package(root))]
    assert ("data/sources.csv", 2, "last_updated", "structure/date-format") in found
