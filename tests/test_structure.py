"""Every structural rule has an invalid fixture that fails at the promised file, line and field."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civharm.docs import rule_catalogue
from civharm.validate import Options, run
from conftest import TODAY, case_dirs, materialise

OPTIONS = Options(today=dt.date.fromisoformat(TODAY))


def locate(report):
    return sorted(([f.file, f.line if f.line is not None else f.pointer, f.field, f.rule_id] for f in report.findings), key=str)


def test_valid_minimal_has_no_findings(valid_package):
    report = run(valid_package, OPTIONS)
    assert report.findings == []
    assert report.exit_code() == 0


@pytest.mark.parametrize("case_file", case_dirs("structure"), ids=lambda p: p.parent.name)
def test_structure_fixture_fails_where_promised(case_file, tmp_path):
    root, case = materialise(case_file, tmp_path)
    report = run(root, OPTIONS)
    assert case["expect"], "a fixture must promise at least one finding"
    assert locate(report) == sorted(case["expect"], key=str)
    assert report.exit_code() == 1
    assert {f.rule_id for f in report.findings} <= set(rule_catalogue()), "every emitted rule id is declared in the catalogue"


def test_a_row_with_thousands_of_surplus_cells_is_reported_once_with_its_count(valid_package):
    """frictionless copies the row once per surplus cell (minutes for 20,000); the row is cut before it looks."""
    import time

    damage = valid_package / "data" / "damage.csv"
    lines = damage.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].rstrip("\n") + ",x" * 20_000 + "\n"
    damage.write_text("".join(lines), encoding="utf-8")
    start = time.perf_counter()
    report = run(valid_package, Options(today=dt.date(2026, 11, 26)))
    assert time.perf_counter() - start < 30
    extra = [f for f in report.findings if f.rule_id == "frictionless/extra-cell"]
    assert [(f.file, f.line) for f in extra] == [("data/damage.csv", 2)]
    assert extra[0].message.endswith("(the row has 20,000 cells more than the header; they are reported once)")
    assert damage.read_text(encoding="utf-8").count(",x") == 20_000  # the package itself is untouched


def test_a_header_with_thousands_of_extra_labels_lists_twenty_then_counts_the_rest(valid_package):
    """frictionless copies the header once per extra label (minutes and gigabytes for 20,000); the copy it reads is cut.

    Line 2 has three cells more than even the long header: one extra-cell finding says so.
    Line 3 has a cell under every label: no finding, though frictionless sees only the first ones.
    """
    incidents = valid_package / "data" / "incidents.csv"
    header, second, third = incidents.read_text(encoding="utf-8").splitlines()
    extra = 20_000
    long_header = header + "".join(f",extra{i}" for i in range(extra))
    incidents.write_text("\n".join([long_header,
                                     second + ",x" * (extra + 3), third + ",y" * extra]) + "\n", encoding="utf-8")
    report = run(valid_package, OPTIONS)
    labels = [f for f in report.findings if f.rule_id == "frictionless/extra-label"]
    assert sorted(f.field for f in labels if f.field) == sorted(f"extra{i}" for i in range(20))
    assert [f.message for f in labels if not f.field] == [
        "and 19,980 more extra labels, not listed one by one (the header has 20,000 labels beyond the schema's fields; "
        "cells missing under them are reported for the first 20 only)"]
    rows = [(f.line, f.rule_id, f.message) for f in report.findings if f.line != 1]
    assert rows == [(2, "frictionless/extra-cell", "extra cell: 'x' (the row has 3 cells more than the header; they are reported once)")]
    assert {f.file for f in report.findings} == {"data/incidents.csv"}
    assert incidents.read_text(encoding="utf-8").splitlines()[0] == long_header  # the package itself is untouched


@pytest.mark.parametrize("values", [["a", "b", "c", "d", "e", "f"], ["a", "b"]], ids=["few-keys-probe-values", "hash-values"])
def test_foreign_key_lookup_is_the_same_from_either_side(values):
    """``_occurs_in`` hashes the smaller side; the answer must not depend on which (values: distinct, no nulls, as ``_Column.distinct``)."""
    import pyarrow as pa

    from civharm.structure import _occurs_in

    key = pa.array(["b", None, "x", "b", "a"], pa.large_string())
    assert _occurs_in(key, pa.array(values, pa.large_string())).tolist() == [True, False, False, True, True]


def test_plain_csv_reads_utf8_whole_and_samples_the_first_mebibyte():
    """A character split by the 1 MiB sample's cut is still plain CSV; one bad byte anywhere is not."""
    from civharm.structure import _plain_csv

    header = b"a,b\n"
    filler = b"xx,y\n" * 3 + b"x,y\n" * (((1 << 20) - 20) // 4)
    split = header + filler + b"\xd0\x81,z\n"  # the cut falls inside the two bytes of 'Ё'
    assert split[(1 << 20) - 1:(1 << 20) + 1] == b"\xd0\x81"
    assert _plain_csv(split)
    assert not _plain_csv(split + b"q,\xff\n")
    assert not _plain_csv(b"\xef\xbb\xbf" + header)


def _glued(raw: bytes) -> list[tuple[int, str | None]]:
    """(line, field) of each cell with text after its closing quote, for a file loaded as the package loads it."""
    from civharm.package import Resource, _split_rows
    from civharm.strictness import _text_after_quotes

    resource = Resource("t", "t.csv", {}, None, raw)
    resource.header, resource.frame, resource.lines, resource.ragged, resource.surplus = _split_rows(raw, "t.csv", [])
    return [(f.line, f.field) for f in _text_after_quotes(resource)]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_text_after_a_closing_quote_is_found_at_its_row_and_field(newline):
    """Python's and Arrow's CSV readers both glue '"abc"xyz' into 'abcxyz'; each such cell is reported where its row starts."""
    rows = ['a,b,c', '"x","y"z,1', '"doubled ""quote"" inside",2,"3"', '1,"two', 'lines",""tail', '"a,"b,"""",c', 'ok,"fine",']
    assert _glued(newline.join(rows).encode() + newline.encode()) == [(2, "b"), (4, "c"), (6, "a")]
    assert _glued(("\ufeff" + newline.join(rows[:2])).encode()) == [(2, "b")]
    assert _glued(b'"h"x,b\n1,2\n') == [(1, "hx")]  # glued in the header: line 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(['"', '"', ",", "a", "\n", "\r\n", "\r", "\u00e9"]), max_size=24))
def test_text_after_a_closing_quote_is_what_a_strict_csv_reader_refuses(pieces):
    """Python's csv module, strict, stops at "',' expected after '\"'" exactly where a closing quote has text after it."""
    text = "".join(pieces)
    try:
        list(csv.reader(io.StringIO("h\n" + text, newline=""), strict=True))
        refused = False
    except csv.Error as exc:
        refused = "expected after" in str(exc)
    assert bool(_glued(("h\n" + text).encode())) == refused


NUMBER_SPELLINGS = {"1_0": True, "\u0662": True, "\uff11": True, "\u00a01": True, "0000000000000000001": True,
                    "99999999999999999999999": True, "1": False, " 1 ": False, "+1": False, " " * 20 + "1": False,
                    "1x": False, "\u0662x": False, "": False}


def test_numbers_only_python_reads_are_found_and_nothing_else(valid_package):
    """A cell frictionless reads as a number although other readers do not; its own type errors are left to it."""
    from civharm.package import load_package
    from civharm.strictness import check_beyond_frictionless
    from conftest import set_cell

    path = valid_package / "data" / "damage.csv"
    rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([rows[0]] + [rows[1].replace("dmg_01M8BXYJ9VFHQ5PYNKZBCCV73M", f"dmg_{i:026d}") for i in range(len(NUMBER_SPELLINGS))]) + "\n",
                    encoding="utf-8")
    for line, cell in enumerate(NUMBER_SPELLINGS, start=2):
        set_cell(path, line, "count", cell)
    found = {f.line: f.rule_id for f in check_beyond_frictionless(load_package(valid_package))}
    assert found == {line: "structure/number-spelling" for line, flagged in enumerate(NUMBER_SPELLINGS.values(), start=2) if flagged}
