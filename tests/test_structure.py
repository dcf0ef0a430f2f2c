"""Every structural rule has an invalid fixture that fails at the promised file, line and field."""
from __future__ import annotations

import datetime as dt

import pytest

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
