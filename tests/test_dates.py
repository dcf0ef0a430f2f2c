"""Dates have one spelling, YYYY-MM-DD in ASCII digits, one reading and one range (issue 13, points 10 and 16).

``package.parse_date`` reads a single cell; typed columns (which the rules, the duplicate
gate, charts, builds and ``civharm.load()`` read) give the same day or NaT; the structure
check reports a date that stock frictionless reads but that is spelled otherwise, or that
names a day outside ``EARLIEST_DAY`` to ``LATEST_DAY`` (which no pandas datetime code sees).
"""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from click.testing import CliRunner

from civharm import structure
from civharm.cli import main
from civharm.package import MAX_SPAN_DAYS, Resource, load_package, parse_date
from conftest import TODAY, VALID_MINIMAL, build_package, set_cell

SPELLINGS = {
    "2024-03-14": dt.date(2024, 3, 14),
    "2024-02-29": dt.date(2024, 2, 29),
    "1900-01-01": dt.date(1900, 1, 1),  # EARLIEST_DAY
    "2099-12-31": dt.date(2099, 12, 31),  # LATEST_DAY
    "1899-12-31": None,       # real days, outside the days a date here may name
    "2100-01-01": None,
    "0001-01-01": None,
    "0224-03-14": None,
    "9999-12-31": None,
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


OUTSIDE = {
    "0001-01-01": "'0001-01-01' is before 1900-01-01, the earliest day a date here may name (a mistyped year?)",
    "0224-03-14": "'0224-03-14' is before 1900-01-01, the earliest day a date here may name (a mistyped year?)",
    "1899-12-31": "'1899-12-31' is before 1900-01-01, the earliest day a date here may name (a mistyped year?)",
    "2100-01-01": "'2100-01-01' is after 2099-12-31, the latest day a date here may name (a mistyped year?)",
    "9999-12-31": "'9999-12-31' is after 2099-12-31, the latest day a date here may name (a mistyped year?)",
}


@pytest.mark.parametrize("cell", OUTSIDE)
def test_a_date_outside_the_days_a_date_may_name_has_one_finding_at_its_cell(cell, tmp_path):
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    set_cell(root / "data" / "sources.csv", 2, "last_updated", cell)
    found = [(f.file, f.line, f.field, f.rule_id, f.message) for f in structure.check(load_package(root))]
    assert found == [("data/sources.csv", 2, "last_updated", "structure/date-out-of-range", OUTSIDE[cell])]


@pytest.mark.parametrize("cell", ["0000-01-01", "1800-02-30"])
def test_a_date_frictionless_rejects_outside_the_range_has_its_type_error_only(cell, tmp_path):
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    set_cell(root / "data" / "sources.csv", 2, "last_updated", cell)
    found = [(f.file, f.line, f.field, f.rule_id) for f in structure.check(load_package(root))]
    assert found == [("data/sources.csv", 2, "last_updated", "frictionless/type-error")]


def validated(root) -> tuple[int, list[tuple]]:
    """``civharm validate`` of the package: its exit code and its findings as (file, line, field, rule_id, message)."""
    result = CliRunner().invoke(main, ["validate", str(root), "--today", TODAY, "--format", "json"])
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    findings = json.loads(result.stdout)["findings"]
    return result.exit_code, [(f["file"], f["line"], f["field"], f["rule_id"], f["message"]) for f in findings]


@pytest.mark.parametrize("cell", ["0001-01-01", "0224-03-14", "9999-12-31"])
def test_an_incident_dated_outside_the_range_is_a_located_error_not_an_internal_one(cell, tmp_path):
    """Such a day once reached pandas' nanosecond datetimes in the date rules (OutOfBoundsDatetime, exit 2)."""
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    for field in ("date_start", "date_end"):
        set_cell(root / "data" / "incidents.csv", 2, field, cell)
    assert validated(root) == (1, [("data/incidents.csv", 2, field, "structure/date-out-of-range", OUTSIDE[cell])
                                   for field in ("date_end", "date_start")])


@pytest.mark.parametrize("as_of, side", [("0001-01-01", "before 1900-01-01, the earliest"), ("1899-12", "before 1900-01-01, the earliest"),
                                         ("9999-12-31T10:00", "after 2099-12-31, the latest")])
def test_an_as_of_outside_the_range_is_a_located_error(as_of, side, tmp_path):
    """as_of is text in the schema; the date rule reads its day (a month's first), never a wrapped-around datetime."""
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    set_cell(root / "data" / "reports.csv", 2, "as_of", as_of)
    assert validated(root) == (1, [("data/reports.csv", 2, "as_of", "dates/as-of-format",
                                    f"'{as_of}' is {side} day a date here may name (a mistyped year?)")])


def _days(start: str, end: str) -> list[dt.date]:
    """The days the duplicate gate's blocking expands one interval to (no window)."""
    import duckdb

    from civharm.duplicates import EXACT

    frame = pd.DataFrame({"start": pd.to_datetime([start]), "end": pd.to_datetime([end])})
    with duckdb.connect() as connection:
        connection.register("incidents", frame)
        return [row[0].date() for row in connection.execute(f"SELECT {EXACT} AS day FROM incidents ORDER BY day").fetchall()]


def test_the_duplicate_gate_expands_an_interval_to_at_most_max_span_days():
    """A leap year is expanded whole; a longer interval (dates/span-too-long) is cut, so 1900 to 2099 costs a year's rows, not 73,049."""
    leap_year = _days("2024-01-01", "2024-12-31")
    assert len(leap_year) == MAX_SPAN_DAYS and leap_year[0] == dt.date(2024, 1, 1) and leap_year[-1] == dt.date(2024, 12, 31)
    assert len(_days("1900-01-01", "2099-12-31")) == MAX_SPAN_DAYS


def test_a_year_precision_incident_still_meets_one_on_its_last_day(tmp_path):
    """The cut never reaches a valid interval: an incident of 2024 (366 days) is paired with the same strike on 31 December."""
    from civharm.duplicates import candidate_pairs

    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    incidents = root / "data" / "incidents.csv"
    for field, value in (("date_precision", "year"), ("date_basis", "stated"), ("date_start", "2024-01-01"), ("date_end", "2024-12-31")):
        set_cell(incidents, 2, field, value)
    for field in ("date_start", "date_end"):
        set_cell(incidents, 3, field, "2024-12-31")
    pairs = candidate_pairs(load_package(root)["incidents"].typed)
    assert pairs[["a", "b"]].values.tolist() == [["inc_01M8BXYJ9JXC1F8JK54GB4ADWP", "inc_01M8BXYJ9MCRVM43F2SQCZ8B40"]]


def test_an_incident_spanning_more_than_a_leap_year_is_a_located_error(tmp_path):
    root = build_package(tmp_path / "pkg", VALID_MINIMAL / "data")
    for field, value in (("date_precision", "range"), ("date_basis", "stated"), ("date_start", "1900-01-01"), ("date_end", "2026-11-26")):
        set_cell(root / "data" / "incidents.csv", 2, field, value)
    assert validated(root) == (1, [("data/incidents.csv", 2, "date_end", "dates/span-too-long",
                                    "1900-01-01 to 2026-11-26 spans 46,351 days; one incident's dates span at most 366")])


def test_an_as_of_outside_the_days_a_date_may_name_is_unreadable_to_the_reader_that_orders_statements():
    """as_of_span orders statements (supersession, the figure rule): a day outside EARLIEST_DAY..LATEST_DAY is NaT
    there, never a wrapped datetime (0001-01-01 used to come back as 1754)."""
    import numpy as np
    import pandas as pd

    from civharm.figures import as_of_span

    start, end = as_of_span(pd.Series(["0001-01-01", "9999-12-31", "1899-12", "2024-03", "2024-03-14T10:00"]))
    assert np.isnat(start[:3]).all() and np.isnat(end[:3]).all()
    assert [str(d)[:16] for d in start[3:]] == ["2024-03-01T00:00", "2024-03-14T10:00"]
