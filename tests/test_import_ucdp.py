"""`civharm import ucdp-ged`: UCDP GED events → incidents and reports of a package of their own.

Tested on the real 601-event Bangladesh file (HDX's copy, with its HXL row), on copies cut or
spoiled, and on rows planted to copy incidents of valid-minimal (the duplicate gate must report
them instead of adding them).
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm.cli import main
from civharm.package import load_package
from civharm.validate import Options, run
from conftest import REPO, THIRDPARTY, TODAY

GED = THIRDPARTY / "ocha-hdx-scraper-ucdp__conflict_data_BGD.csv"
URL = "https://example.org/ucdp/conflict_data_BGD.csv"  # where a user says the file was published (tests only)
# The HDX configuration beside the file cites the UCDP GED codebook version 19.1.
VERSION = "19.1"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; the package's lock file (held by any writing command) aside."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".civharm.lock"}


def invoke(file: Path, into: Path, *extra: str):
    return CliRunner().invoke(main, ["import", "ucdp-ged", str(file), "--into", str(into), "--url", URL, "--ucdp-version", VERSION,
                                     "--package", str(REPO), "--today", TODAY, *extra])


def table(package: Path, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO((package / "data" / f"{name}.csv").read_text(encoding="utf-8"), newline="")))


def ged_rows(path: Path = GED) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The real file imported once into a new package: (package, seconds to import, seconds to validate)."""
    into = tmp_path_factory.mktemp("ucdp") / "bgd"
    started = time.perf_counter()
    result = invoke(GED, into)
    imported_in = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    started = time.perf_counter()
    report = run(into, Options(today=__import__("datetime").date.fromisoformat(TODAY)))
    return into, imported_in, time.perf_counter() - started, report


def test_the_601_events_become_a_valid_package_in_seconds(imported):
    package, imported_in, validated_in, report = imported
    assert len(table(package, "incidents")) == len(table(package, "reports")) == 601
    assert report.exit_code() == 0, [f.as_text() for f in report.findings if f.severity.value == "error"][:5]
    assert imported_in + validated_in < 60, (imported_in, validated_in)


def test_each_event_is_mapped_as_ucdps_codebook_defines_it(imported):
    package = imported[0]
    reports = {r["title"]: r for r in table(package, "reports")}
    incidents = {r["incident_id"]: r for r in table(package, "incidents")}
    # line 3: event 71663, 2013-12-13 to 2013-12-14 (date_prec 2), Bhāndāria town (where_prec 1), best 1, civilians 0
    report = reports["UCDP GED 19.1: event 71663"]
    assert (report["url"], report["claimant"], report["all_killed"], report["all_killed_qualifier"], report["civilians_killed"]) == (
        f"{URL}#row=3", "Uppsala Conflict Data Program (UCDP), GED 19.1", "1", "exact", "0")
    incident = incidents[report["incident_id"]]
    assert (incident["date_start"], incident["date_end"], incident["date_precision"]) == ("2013-12-01", "2013-12-31", "month")
    assert (incident["location_precision"], incident["locality_en"], incident["subdivision_code"], incident["area"]) == (
        "locality", "Bhāndāria", "BD-A", "Pirojpur District")
    assert "sha256" in report["notes"] and "line 3, event 71663" in report["notes"]
    # line 64: event 84006, the year 1991 (date_prec 5), only the country known (where_prec 6), best 3 but low and high 0
    report = reports["UCDP GED 19.1: event 84006"]
    incident = incidents[report["incident_id"]]
    assert (incident["date_start"], incident["date_end"], incident["date_precision"], incident["location_precision"]) == (
        "1991-01-01", "1991-12-31", "year", "country")
    assert (report["all_killed"], report["all_killed_qualifier"]) == ("3", "about")
    descriptor = (package / "datapackage.json").read_text(encoding="utf-8")
    assert "cc-by-igo" in descriptor and "Sundberg" in descriptor


def test_reimporting_changes_nothing_and_the_hxl_row_is_optional(imported, tmp_path):
    package = imported[0]
    before = snapshot(package)
    result = invoke(GED, package)
    assert (result.exit_code, result.stdout) == (0, "nothing to change: the package holds every record already (601 unchanged)\n")
    assert snapshot(package) == before
    header, rows = ged_rows()
    plain = invoke(write_csv(tmp_path / "plain.csv", header, rows[1:]), tmp_path / "plain")  # no HXL row: lines shift by one
    assert plain.exit_code == 0, plain.output
    assert len(table(tmp_path / "plain", "incidents")) == 601


def test_planted_rows_that_copy_our_incidents_are_reported_not_added(valid_package, tmp_path):
    header, rows = ged_rows()
    event = dict(zip(header, rows[1]))
    belgorod = {**event, "iso3": "RUS", "country": "Russia", "adm_1": "", "adm_2": "", "where_prec": "1",
                "where_coordinates": "Belgorod town", "latitude": "50.60343", "longitude": "36.58091", "date_prec": "1"}
    planted = [
        {**belgorod, "id": "900001", "date_start": "2023-12-30", "date_end": "2023-12-30", "best": "25", "low": "25", "high": "25", "deaths_civilians": "25"},
        {**belgorod, "id": "900002", "date_start": "2024-03-14", "date_end": "2024-03-14", "best": "1", "low": "1", "high": "1", "deaths_civilians": "0"},
        event,  # an event in Bangladesh, like nothing in the package
    ]
    file = write_csv(tmp_path / "planted.csv", header, [[r[c] for c in header] for r in planted])
    before = len(table(valid_package, "incidents"))
    result = invoke(file, valid_package)
    assert result.exit_code == 0, result.output
    not_added = [line for line in result.stdout.splitlines() if line.startswith("not added")]
    assert [line.split(" matches ")[0] for line in not_added] == ["not added: event 900001 (line 2)", "not added: event 900002 (line 3)"]
    assert "inc_01M8BXYJ9MCRVM43F2SQCZ8B40" in not_added[0] and "inc_01M8BXYJ9JXC1F8JK54GB4ADWP" in not_added[1]
    assert len(table(valid_package, "incidents")) == before + 1
    assert run(valid_package, Options(today=__import__("datetime").date.fromisoformat(TODAY))).exit_code() == 0


def _spoiled(tmp_path: Path, change) -> Path:
    header, rows = ged_rows()
    header, rows = change(list(header), [list(r) for r in rows])
    return write_csv(tmp_path / "spoiled.csv", header, rows)


@pytest.mark.parametrize(("change", "message"), [
    (lambda h, r: ([c if c != "best" else "best_estimate" for c in h], r), "spoiled.csv:1: no column best: not a ucdp-ged file (UCDP GED CSV)"),
    (lambda h, r: (h, [r[0], r[1][:-1]] + r[2:]), "spoiled.csv:3: 42 cells, the header has 43"),
    (lambda h, r: (h, [r[0], r[1][:-1] + ["many"]] + r[2:]), "spoiled.csv:3: high: expected a whole number from 0 to 999,999,999, found 'many'"),
    (lambda h, r: (h, [r[0], r[1][:38] + ["-1"] + r[1][39:]] + r[2:]), "spoiled.csv:3: deaths_civilians: expected a whole number from 0 to 999,999,999, found '-1'"),
    (lambda h, r: (h, [r[0], r[1][:38] + ["5"] + r[1][39:]] + r[2:]), "spoiled.csv:3: deaths_civilians: expected at most best (1): civilians are among the deaths, found '5'"),
    (lambda h, r: (h, [r[0], r[1][:34] + ["2013-13-13"] + r[1][35:]] + r[2:]), "spoiled.csv:3: date_start: expected a date YYYY-MM-DD, found '2013-13-13'"),
    (lambda h, r: (h, [r[0], r[1][:24] + ["north"] + r[1][25:]] + r[2:]), "spoiled.csv:3: latitude: expected a number, found 'north'"),
    (lambda h, r: (h, [r[0], r[1], r[1]] + r[3:]), "spoiled.csv:4: id: event 71663 is listed twice (first on line 3)"),
], ids=["wrong-columns", "cut-row", "bad-number", "negative", "civilians-above-best", "impossible-date", "bad-latitude", "repeated-event"])
def test_a_malformed_file_is_a_located_error_and_writes_nothing(tmp_path, change, message):
    into = tmp_path / "new"
    result = invoke(_spoiled(tmp_path, change), into)
    assert (result.exit_code, result.stderr) == (2, f"Error: {message}\n")
    assert not into.exists()


def test_a_truncated_file_is_a_located_error(tmp_path):
    raw = GED.read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(raw[: raw.index(b"\n", 5000) + 40])  # stops inside a row
    result = invoke(cut, tmp_path / "new")
    assert result.exit_code == 2 and result.stderr.startswith("Error: cut.csv:") and "cells, the header has 43" in result.stderr
    assert not (tmp_path / "new").exists()


def test_it_never_imports_into_the_package_it_takes_its_schemas_from(valid_package):
    before = snapshot(valid_package)
    result = CliRunner().invoke(main, ["import", "ucdp-ged", str(GED), "--into", str(valid_package), "--url", URL,
                                       "--ucdp-version", VERSION, "--package", str(valid_package), "--today", TODAY])
    assert result.exit_code == 2 and "writes into a package of its own" in result.stderr
    assert snapshot(valid_package) == before


def test_a_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = invoke(GED, tmp_path)
    assert (result.exit_code, result.stderr) == (2, f"Error: {tmp_path}: holds files but no datapackage.json; give a package, or a new or empty folder\n")


def test_a_template_whose_descriptor_points_outside_is_refused_and_nothing_is_written(valid_package, tmp_path):
    """The new package is laid out from the template's descriptor paths: one that climbs out must not be followed."""
    import json

    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"][2]["path"] = "../escaped.csv"
    (valid_package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    result = CliRunner().invoke(main, ["import", "ucdp-ged", str(GED), "--into", str(tmp_path / "new"), "--url", URL,
                                       "--ucdp-version", VERSION, "--package", str(valid_package), "--today", TODAY])
    assert result.exit_code == 2 and "resource 'damage' cannot be read from inside the package" in result.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "escaped.csv").exists()


@pytest.mark.parametrize("change", [
    lambda h, r: ([c if c != "best" else "best_estimate" for c in h], r),
    lambda h, r: (h, [r[0], r[1][:-1] + ["many"]] + r[2:]),
], ids=["wrong-columns", "bad-number"])
def test_a_malformed_file_leaves_an_existing_package_byte_identical(valid_package, tmp_path, change):
    before = snapshot(valid_package)
    result = invoke(_spoiled(tmp_path, change), valid_package)
    assert result.exit_code == 2 and result.stderr.startswith("Error: spoiled.csv:"), result.output
    assert snapshot(valid_package) == before


def test_a_fault_between_two_files_leaves_an_existing_package_byte_identical(valid_package):
    import datetime as dt

    from civharm import importing, ucdp_ged
    from civharm.findings import CivharmError
    from civharm.importing import Change, read_source

    before = snapshot(valid_package)
    change = ucdp_ged.plan(Change(load_package(valid_package)), read_source(GED), URL, VERSION, dt.date.fromisoformat(TODAY))
    assert len(change.files) >= 3

    def fault(index, target):
        if index == 2:
            raise OSError("disk full (injected)")

    with pytest.raises(CivharmError, match="disk full .injected.; nothing was changed"):
        importing.apply(change, fault=fault)
    assert snapshot(valid_package) == before
