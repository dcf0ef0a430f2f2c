"""The vectorised structure checks agree with stock frictionless 5, the oracle.

On valid and corrupted packages, the set of (file, line, field, error type) that both report
must be the same. frictionless' error limit is raised (it stops at 1,000 by default), and
like frictionless we report each *repeat* of a duplicated key, naming the row before it,
rather than every member of the group.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civharm import structure
from civharm.package import load_package
from conftest import REPO, VALID_MINIMAL, build_package, case_dirs, materialise

sys.path.insert(0, str(REPO / "benchmarks"))
import generate  # noqa: E402


def located(findings):
    return sorted({(f.file, f.line, f.field, f.rule_id) for f in findings}, key=str)


def both(root: Path):
    """(ours, the oracle's); ours without structure/date-format, a check of our own that frictionless does not make."""
    package = load_package(root)
    ours = [f for f in structure.check(package) if f.rule_id.startswith("frictionless/")]
    return ours, structure.check_with_frictionless(package)


def vectorised_path_taken(root: Path) -> bool:
    package = load_package(root)
    return structure._compile(package, structure._loadable(package)) is not None


@pytest.mark.parametrize("case_file", case_dirs("structure"), ids=lambda p: p.parent.name)
def test_fixture_findings_equal_frictionless(case_file, tmp_path):
    root, _ = materialise(case_file, tmp_path)
    ours, oracle = both(root)
    assert located(ours) == located(oracle)
    assert sorted(ours, key=str) == sorted(oracle, key=str), "same wording too"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated package, clean and dirty (cell errors, duplicate keys, dangling keys, blank rows)."""
    roots = {}
    for variant in ("clean", "dirty"):
        root = tmp_path_factory.mktemp(variant)
        generate.generate(root, 1500, variant, near_duplicates=5)
        roots[variant] = root
    return roots


@pytest.mark.parametrize("variant", ["clean", "dirty"])
def test_generated_package_equals_frictionless(generated, variant):
    root = generated[variant]
    assert vectorised_path_taken(root)
    ours, oracle = both(root)
    assert len(oracle) > 0 if variant == "dirty" else oracle == []
    assert sorted(ours, key=str) == sorted(oracle, key=str)


def test_error_limit_is_raised_and_nothing_is_truncated(tmp_path):
    """1,500 bad cells: frictionless would stop at 1,000 by default; both report all 1,500."""
    root = build_package(tmp_path / "pkg")
    path = root / "data" / "sources.csv"
    header, row = path.read_text(encoding="utf-8").splitlines()[:2]
    cells = next(csv.reader([row]))
    lines = [header]
    for i in range(1500):
        cells[0] = f"src-{i:04d}"
        cells[2] = "one"  # record_version: not an integer
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(cells)
        lines.append(out.getvalue())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ours, oracle = both(root)
    assert len([f for f in ours if f.rule_id == "frictionless/type-error"]) == 1500
    assert located(ours) == located(oracle)


def test_each_repeat_of_a_key_names_the_row_before_it(tmp_path):
    """Three copies of one row: two repeats (not three members), each pointing to the previous copy."""
    root = build_package(tmp_path / "pkg")
    path = root / "data" / "damage.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines + [lines[1], lines[1]]) + "\n", encoding="utf-8")
    ours, oracle = both(root)
    repeats = sorted((f.line, f.message) for f in ours if f.rule_id == "frictionless/primary-key")
    assert repeats == [(len(lines) + 1, "duplicate primary key: the same as on line 2"),
                       (len(lines) + 2, f"duplicate primary key: the same as on line {len(lines) + 1}")]
    assert sorted(ours, key=str) == sorted(oracle, key=str)


# -- random corruptions of valid-minimal --------------------------------------------------------

TRICKY = ["", " ", "0", "-0", "+1", " 7 ", "1_000", "007", "1.0", "1e3", "NaN", "inf", "-1", "99999999999999999999",
          "\u0661\u0662", "90.0000000000000001", "-90", "180.5", "2024-02-30", "2024-2-3", "2024-03-14 ", "20240314",
          "active", "Active", "day", "rocket_mlrs;drone", "drone;", "RU", "ru", "RU-BEL", "http://x.org", "https:// x",
          "inc_01M8BXYJ9JXC1F8JK54GB4ADWP", "rep_01M8BXYJ9P0XGT2FTQ1QYM61M7", "dailywrap", "nosuch", "en", "eng",
          "caf\u00e9", "x\u00a0y", "line\nbreak", "quote\"d", "a,b", "Zo\u00eb", "\u0432\u0430\u043b"]

TABLES = {name: list(csv.reader(io.StringIO((VALID_MINIMAL / "data" / f"{name}.csv").read_text(encoding="utf-8"))))
          for name in ("incidents", "reports", "damage", "sources")}


@st.composite
def corruptions(draw):
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        table = draw(st.sampled_from(sorted(TABLES)))
        rows = TABLES[table]
        kind = draw(st.sampled_from(["cell", "cell", "cell", "copy-row", "blank-row"]))
        line = draw(st.integers(2, len(rows)))
        if kind == "cell":
            column = draw(st.integers(0, len(rows[0]) - 1))
            value = draw(st.one_of(st.sampled_from(TRICKY), st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=6)))
            edits.append((table, kind, line, column, value))
        else:
            edits.append((table, kind, line, None, None))
    return edits


def apply(root: Path, edits) -> None:
    tables = {name: [list(r) for r in rows] for name, rows in TABLES.items()}
    for table, kind, line, column, value in edits:
        rows = tables[table]
        if kind == "cell":
            rows[line - 1][column] = value
        elif kind == "copy-row":
            rows.append(list(rows[line - 1]))
        else:
            rows.append([""] * len(rows[0]))
    for name, rows in tables.items():
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        (root / "data" / f"{name}.csv").write_text(out.getvalue(), encoding="utf-8")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=corruptions())
def test_random_corruptions_equal_frictionless(edits, tmp_path_factory):
    root = build_package(tmp_path_factory.mktemp("pkg"))
    apply(root, edits)
    ours, oracle = both(root)
    assert located(ours) == located(oracle), json.dumps(edits)


INTEGER_CELLS = ["0", "-0", "00", "7", "007", "-007", "+1", " 7", "0x1F", "0X1f", "-0x1F", "1e3", "1.0", "", "١٢", "999999999999999999",
                 "-999999999999999999", "1000000000000000000", "-1000000000000000000", "9223372036854775807", "x"]
DATE_CELLS = ["2024-03-14", "2024-3-4", "2024-02-29", "2023-02-29", "0001-01-01", "0000-01-01", "9999-12-31", "",
              "2024-03-14T00", "20240314", " 2024-03-14", "2024-03-14 ", "+2024-03-14", "14/03/2024", "2024-13-01"]


@pytest.mark.parametrize("column, cells", [("record_version", INTEGER_CELLS), ("last_updated", DATE_CELLS)])
def test_integer_and_date_spellings_equal_frictionless(column, cells, tmp_path):
    """The one-cast fast paths for integers and dates: each spelling among plain cells (the
    column's cast then fails or succeeds because of it), and all the spellings together."""
    header, first = TABLES["sources"][0], TABLES["sources"][1]
    plain = first[header.index(column)]
    for number, added in enumerate([[plain, plain, cell] for cell in cells] + [cells]):
        table = [header, first]
        for index, cell in enumerate(added):
            row = list(first)
            row[0], row[header.index(column)] = f"src{index}", cell
            table.append(row)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(table)
        root = build_package(tmp_path / f"pkg{number}")
        (root / "data" / "sources.csv").write_text(out.getvalue(), encoding="utf-8")
        ours, oracle = both(root)
        assert sorted(ours, key=str) == sorted(oracle, key=str), added


EMPTY_LINES = {
    "in-the-middle": b"id,name\n1,english\n\n2,german\n",
    "file-ends-in-two-newlines": b"id,name\n1,english\n2,german\n\n",
    "several-at-the-end": b"id,name\n1,english\n2,german\n\n\n",
    "right-after-the-header": b"id,name\n\n1,english\n2,german",
    "around-a-cell-with-a-line-break": b'id,name\n1,english\n\n\n2,"ger\nman"\n\n3,x\n',
    "crlf": b"id,name\r\n1,english\r\n\r\n2,german\r\n",
}


@pytest.mark.parametrize("primary_key", [[], ["id"]], ids=["no-key", "key"])
@pytest.mark.parametrize("name", list(EMPTY_LINES))
def test_empty_lines_are_blank_rows_as_frictionless_reads_them(name, primary_key, tmp_path):
    """An empty line is a blank row on its own physical line (plus a missing primary key when the table has one)."""
    (tmp_path / "t.csv").write_bytes(EMPTY_LINES[name])
    schema = {"fields": [{"name": "id", "type": "integer"}, {"name": "name", "type": "string"}], "primaryKey": primary_key}
    (tmp_path / "datapackage.json").write_text(json.dumps({"name": "languages", "resources": [
        {"name": "languages", "path": "t.csv", "format": "csv", "encoding": "utf-8", "schema": schema}]}), encoding="utf-8")
    ours, oracle = both(tmp_path)
    assert "frictionless/blank-row" in {f.rule_id for f in oracle}
    assert sorted(ours, key=str) == sorted(oracle, key=str)
