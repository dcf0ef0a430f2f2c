"""The pipeline on two processes: the same report as on one, and a child's failure reaches the parent."""
from __future__ import annotations

import datetime as dt
import os
import time

import pandas as pd
import pytest

from civharm import render, speed, validate
from civharm.findings import CivharmError
from civharm.validate import Options, run
from conftest import REPO, TODAY, build_package, set_cell


def _options(processes: int, **extra) -> Options:
    return Options(today=dt.date.fromisoformat(TODAY), processes=processes, **extra)


@pytest.fixture
def broken_real_copy(tmp_path):
    """The real dataset with a structural error, rule errors of both processes and an exact duplicate row."""
    root = build_package(tmp_path / "real", REPO / "data")
    set_cell(root / "data" / "reports.csv", 2, "civilians_killed", "many")  # structure: not an integer
    set_cell(root / "data" / "incidents.csv", 3, "date_end", "2000-01-01")  # rule (first process): end before start
    set_cell(root / "data" / "incidents.csv", 4, "summary", " Leading blank.")  # rule (second process): untrimmed
    reports = root / "data" / "reports.csv"
    lines = reports.read_text(encoding="utf-8").splitlines(keepends=True)
    report_id = lines[3].split(",", 1)[0]
    reports.write_text("".join(lines) + lines[3].replace(report_id, report_id[:-1] + "Z", 1), encoding="utf-8")
    return root


def test_two_processes_give_the_same_report_as_one(broken_real_copy):
    one = run(broken_real_copy, _options(1))
    two = run(broken_real_copy, _options(2))
    assert two.findings == one.findings
    assert two.summary == one.summary
    assert render.as_json(two) == render.as_json(one)
    kinds = {f.rule_id for f in two.findings}
    assert {"frictionless/type-error", "duplicates/exact-row", "dates/end-before-start", "text/untrimmed"} <= kinds, kinds


def test_two_processes_report_their_stages(broken_real_copy):
    seen = []
    run(broken_real_copy, _options(2, progress=seen.append))
    assert seen == ["load", "structure", "rules"]  # the second process tells its own stage ("duplicates") there


def test_a_small_package_stays_in_one_process(broken_real_copy, monkeypatch):
    monkeypatch.setattr(speed, "_forked", lambda work: pytest.fail("forked for a small package"))
    run(broken_real_copy, Options(today=dt.date.fromisoformat(TODAY)))


def _child_fails_with(monkeypatch, failure):
    def work(package):
        failure()
    monkeypatch.setattr(validate.duplicates, "check", work)


def test_an_unreadable_package_error_in_the_child_reaches_the_parent(broken_real_copy, monkeypatch):
    def fail():
        raise CivharmError("data/reports.csv: cannot read")
    _child_fails_with(monkeypatch, fail)
    with pytest.raises(CivharmError, match="data/reports.csv: cannot read"):
        run(broken_real_copy, _options(2))


def test_an_unpicklable_exception_in_the_child_arrives_as_its_description(broken_real_copy, monkeypatch):
    class Local(Exception):  # a local class cannot be pickled
        pass

    def fail():
        raise Local("no such column")
    _child_fails_with(monkeypatch, fail)
    with pytest.raises(RuntimeError, match="Local: no such column"):
        run(broken_real_copy, _options(2))


def test_a_child_that_dies_without_a_result_is_an_error_not_a_hang(broken_real_copy, monkeypatch):
    _child_fails_with(monkeypatch, lambda: os._exit(3))
    with pytest.raises(CivharmError, match="ended without a result.*exit status 3"):
        run(broken_real_copy, _options(2))


def test_a_failure_in_the_first_process_ends_the_second(broken_real_copy, monkeypatch):
    started = []
    original = speed._forked

    def forked(work):
        child = original(lambda: time.sleep(60) or work())
        started.append(child.pid)
        return child

    def fail(package):
        raise CivharmError("structure failed")
    monkeypatch.setattr(speed, "_forked", forked)
    monkeypatch.setattr(validate.structure, "check", fail)
    with pytest.raises(CivharmError, match="structure failed"):
        run(broken_real_copy, _options(2))
    with pytest.raises(ChildProcessError):  # already reaped: no orphan left running
        os.waitpid(started[0], os.WNOHANG)


def test_the_cycle_collector_is_paused_during_a_run_and_resumed_after(broken_real_copy, monkeypatch):
    import gc

    seen = []
    original = validate.structure.check
    monkeypatch.setattr(validate.structure, "check", lambda package: seen.append(gc.isenabled()) or original(package))
    assert gc.isenabled()
    run(broken_real_copy, _options(1))
    assert seen == [False]
    assert gc.isenabled()


def test_typing_on_two_threads_gives_the_same_tables_as_on_one(broken_real_copy, monkeypatch):
    """A large table is typed on two threads; the frames must equal those typed on one (dtypes and NA included)."""

    from civharm import package as package_module

    one = {name: r.typed for name, r in package_module.load_package(broken_real_copy).resources.items()}
    monkeypatch.setattr(speed, "THREADED_FROM_ROWS", 0)
    threaded = {name: r.typed for name, r in package_module.load_package(broken_real_copy).resources.items()}
    assert one.keys() == threaded.keys()
    for name in one:
        pd.testing.assert_frame_equal(threaded[name], one[name], check_exact=True)
    assert one["reports"]["civilians_killed"].isna().any()  # the structural error above reads as NA on both


def test_cells_parsed_in_many_chunks_give_the_same_report_as_in_one(broken_real_copy, monkeypatch):
    """Large files stay in the chunks Arrow parsed them in; every stage must read chunked columns alike."""
    from civharm import package as package_module

    one = run(broken_real_copy, _options(1))
    monkeypatch.setattr(package_module, "CSV_BLOCK_BYTES", 2048)  # a few rows per chunk
    chunked = package_module.load_package(broken_real_copy)
    assert chunked["reports"].frame["report_id"].array._pa_array.num_chunks > 5
    many = run(broken_real_copy, _options(1))
    assert many.findings == one.findings
    assert {"frictionless/type-error", "duplicates/exact-row", "dates/end-before-start", "text/untrimmed"} <= {f.rule_id for f in many.findings}


INTEGER_SPELLINGS = ["0", "7", "-3", "+4", " 5", "5 ", "007", "-0", "00", "-007", "0x1F", "0X1f", "-0x1F", "1e3", "1.0", "", "١٢", "２",
                     "999999999999999999", "-999999999999999999", "1000000000000000000", "9223372036854775807", "abc"]
DATE_SPELLINGS = ["2024-03-14", "2024-3-4", "2024-02-29", "2023-02-29", "0001-01-01", "9999-12-31", "2024-03-14T00",
                  "20240314", " 2024-03-14", "2024-03-14 ", "+2024-03-14", "14/03/2024", "", "2024-13-01"]


@pytest.mark.parametrize("kind, spellings", [("integer", INTEGER_SPELLINGS), ("date", DATE_SPELLINGS)])
def test_one_pass_casts_read_every_spelling_as_the_full_parser(kind, spellings):
    """Typed integers and dates take one Arrow cast when a column allows it; the reading must not change.

    Each spelling alone, next to a plain value, and all together, in one chunk and in several.
    """
    import itertools

    import pyarrow as pa

    from civharm import package as package_module

    typed = package_module._typed_column
    def dates_one_cell_at_a_time(column: pd.Series) -> pd.Series:  # parse_date is the one reading of a date cell
        days = [package_module.parse_date(cell) if isinstance(cell, str) else None for cell in column]
        return pd.Series(pd.to_datetime(pd.Series(days, dtype=object)).astype("datetime64[us]").to_numpy(), index=column.index)

    full = package_module._integers_spelled_any_way if kind == "integer" else dates_one_cell_at_a_time
    plain = "12" if kind == "integer" else "2020-01-31"
    columns = [[s] for s in spellings] + [[plain, s, ""] for s in spellings] + [spellings, [plain] * 3]
    columns += [list(pair) for pair in itertools.combinations(spellings, 2)]
    for cells in columns:
        for chunks in ([cells], [cells[:1], cells[1:]]):
            # each chunk a slice of a longer array, as Arrow's own chunks can be (offsets not at 0)
            arrow = pa.chunked_array([pa.array(["0x1F", *c], pa.large_string()).slice(1) for c in chunks if c], type=pa.large_string())
            column = pd.Series(pd.arrays.ArrowStringArray(arrow))
            pd.testing.assert_series_equal(typed(column, kind), full(column), check_exact=True, obj=repr(cells))


def test_json_report_in_pieces_is_the_whole_report(broken_real_copy, monkeypatch):
    """The CLI writes the JSON report piece by piece; joined, the pieces are one valid document, whatever the piece size."""
    import json

    report = run(broken_real_copy, _options(1))
    assert len(report.findings) > 5
    whole = render.as_json(report)
    monkeypatch.setattr(render, "JSON_PIECE_FINDINGS", 2)
    pieces = list(render.json_pieces(report))
    assert len(pieces) == (len(report.findings) + 1) // 2 + 1
    assert "".join(pieces) == whole
    assert [f["message"] for f in json.loads(whole)["findings"]] == [f.message for f in report.findings]


def test_cells_with_line_breaks_are_read_right_wherever_arrow_cuts_its_blocks(monkeypatch):
    """Arrow cuts a file into blocks at line ends without looking at quotes (newlines_in_values off,
    2.5x faster). A cut inside a quoted cell must end in an error or in a row count that sends the
    file to the csv module, never in wrong cells: tried at every block size from 40 bytes to 3 kB."""
    import csv
    import io
    import random

    from civharm import package as package_module

    pick = random.Random(4)
    texts = ["plain", "with, comma", "line\nbreak", "two\n\nbreaks", 'quo"te', "end\n", "\nstart", "x" * 30, ""]
    rows = [["id", "text", "n"]] + [[str(i), pick.choice(texts), str(i * 7)] for i in range(300)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    raw = out.getvalue().encode("utf-8")
    expected = package_module._split_rows_slowly(raw.decode("utf-8"), "t.csv", [])
    assert expected[1].to_numpy().tolist() == rows[1:]
    for block in range(40, 3000, 7):
        monkeypatch.setattr(package_module, "CSV_BLOCK_BYTES", block)
        header, frame, lines, ragged, _ = package_module._split_rows(raw, "t.csv", [])
        assert (header, lines, ragged) == (expected[0], expected[2], expected[3]), block
        assert frame.to_numpy().tolist() == rows[1:], block


def test_leading_zeros_are_read_from_each_cell_of_sliced_chunks():
    import pyarrow as pa

    from civharm.package import leading_zeros

    cells = pa.chunked_array([pa.array(["0x1F", "12", "007", "0", "", None], pa.large_string()).slice(1),
                              pa.array(["-0", "0X1", "70"], pa.large_string())])
    assert leading_zeros(cells).tolist() == [False, True, False, False, False, False, True, False]


def test_a_record_id_not_found_in_a_rule_is_a_bug_to_raise_not_a_missing_field():
    """package/missing-field names a field a table lacks; a row looked up by a record ID that is not there is a bug in the rule."""
    import pandas as pd

    from civharm.package import load_package
    from civharm.rules import missing_fields
    from conftest import REPO

    frame = pd.DataFrame({"incident_id": ["inc_01M8BY5YP18XB0CWW6XRD1PWN8"]}).set_index("incident_id")
    try:
        frame.loc["inc_01M8BZZZZZZZZZZZZZZZZZZZZZ"]
    except KeyError as error:
        assert missing_fields(load_package(REPO), error, ["incidents"]) == []
    try:
        frame["children_killed"]
    except KeyError as error:
        assert [f.rule_id for f in missing_fields(load_package(REPO), error, ["incidents"])] == ["package/missing-field"]  # a field: named
