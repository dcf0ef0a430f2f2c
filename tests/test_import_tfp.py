"""`civharm import tfp-daily`: Tech for Palestine's daily Gaza totals → aggregates.

Invented files test each behaviour; the real shared file is imported once into valid-minimal.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm import history, importing, tfp_daily
from civharm.cli import main
from civharm.package import load_package
from conftest import THIRDPARTY, TODAY, build_package

DAILY = THIRDPARTY / "techforpalestine__casualties_daily.json"
DAMAGED = THIRDPARTY / "techforpalestine__infrastructure-damaged.json"
SMALL = [
    {"report_date": "2024-05-01", "report_source": "mohtel", "killed_cum": 10, "injured_cum": 20, "killed_children_cum": 3,
     "ext_killed_cum": 10, "ext_massacres_cum": 1},
    {"report_date": "2024-05-02", "report_source": "gmotel", "killed_cum": 12, "ext_killed_cum": 12},
    {"report_date": "2024-05-03", "report_source": "missing", "ext_killed_cum": 15, "ext_injured_cum": 30},
]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; the package's lock file (held by any writing command) aside."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".civharm.lock"}


def aggregates(package: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((package / "data" / "aggregates.csv").read_text(encoding="utf-8"), newline="")))


def imported(package: Path) -> list[dict]:
    return [r for r in aggregates(package) if r["source_id"] == "techforpalestine"]


def invoke(package: Path, file: Path, *extra: str, today: str = TODAY):
    return CliRunner().invoke(main, ["import", "tfp-daily", str(file), "--into", str(package), "--today", today, *extra])


@pytest.fixture
def valid_package(valid_package) -> Path:
    """valid-minimal whose aggregates resource does not yet cite Tech for Palestine (the repo's descriptor does)."""
    path = valid_package / "datapackage.json"
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    for spec in descriptor["resources"]:
        if spec["name"] == "aggregates":
            spec.pop("sources", None)
            spec.pop("licenses", None)
    path.write_text(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return valid_package


@pytest.fixture
def small(tmp_path) -> Path:
    path = tmp_path / "casualties_daily.json"
    path.write_text(json.dumps(SMALL), encoding="utf-8")
    return path


def test_reported_figures_become_totals_and_ext_fields_never_do(valid_package, small):
    result = invoke(valid_package, small)
    assert result.exit_code == 0, result.output
    rows = imported(valid_package)
    assert [(r["period_end"], r["population"], r["killed"], r["injured"], r["claimant_type"], r["import_key"]) for r in rows] == [
        ("2024-05-01", "all", "10", "20", "national_government", "2024-05-01:killed_cum+injured_cum"),
        ("2024-05-01", "children", "3", "", "national_government", "2024-05-01:killed_children_cum"),
        ("2024-05-02", "all", "12", "", "national_government", "2024-05-02:killed_cum"),
    ]
    assert rows[1]["part_of"] == rows[0]["aggregate_id"]
    assert {r["import_file"] for r in rows} == {"casualties_daily.json"}
    assert {r["import_sha256"] for r in rows} == {importing.read_source(small).sha256}
    assert {(r["basis"], r["figures_scope"], r["country_code"], r["area"]) for r in rows} == {("reported", "cumulative", "PS", "Gaza Strip")}
    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    [spec] = [r for r in descriptor["resources"] if r["name"] == "aggregates"]
    assert tfp_daily.ATTRIBUTION.licence in spec["licenses"] and tfp_daily.ATTRIBUTION.source in spec["sources"]
    assert "techforpalestine" in (valid_package / "data" / "sources.csv").read_text(encoding="utf-8")


def test_reimporting_the_same_file_changes_nothing(valid_package, small):
    assert invoke(valid_package, small).exit_code == 0
    before = snapshot(valid_package)
    result = invoke(valid_package, small)
    assert result.exit_code == 0
    assert result.stdout == "nothing to change: the package holds every record already (3 unchanged)\n"
    assert snapshot(valid_package) == before


def test_dry_run_prints_the_change_and_writes_nothing(valid_package, small):
    before = snapshot(valid_package)
    result = invoke(valid_package, small, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["add 3 row(s) to aggregates", "add 1 row(s) to sources"]
    assert "dry run: nothing written" in result.stderr
    assert snapshot(valid_package) == before


def test_a_changed_day_in_a_later_file_is_a_revision_that_passes_the_history_gate(valid_package, small, tmp_path):
    assert invoke(valid_package, small).exit_code == 0
    base = build_package(tmp_path / "base", valid_package / "data")
    (base / "datapackage.json").write_bytes((valid_package / "datapackage.json").read_bytes())
    later = [dict(r) for r in SMALL]
    later[1]["killed_cum"] = 13
    small.write_text(json.dumps(later), encoding="utf-8")
    result = invoke(valid_package, small, today="2026-11-27")  # a later day: the gate wants last_updated to move on
    assert result.exit_code == 0, result.output
    old, new = [r for r in imported(valid_package) if r["period_end"] == "2024-05-02"]
    assert (old["superseded_by"], old["record_version"], old["killed"]) == (new["aggregate_id"], "2", "12")
    assert (new["killed"], new["superseded_by"], new["import_sha256"]) == ("13", "", importing.read_source(small).sha256)
    [log] = list(csv.DictReader(io.StringIO((valid_package / "data" / "changes.csv").read_text(encoding="utf-8"))))
    assert (log["table"], log["record_id"], log["field"], log["new_value"]) == ("aggregates", old["aggregate_id"], "superseded_by", new["aggregate_id"])
    assert "killed 12 → 13" in log["reason"] and "revise 1 record(s)" in result.stdout
    assert history.check(load_package(base), load_package(valid_package)) == []


def test_a_fall_in_the_file_is_kept_with_a_note(valid_package, tmp_path):
    path = tmp_path / "casualties_daily.json"
    path.write_text(json.dumps([{"report_date": "2024-05-01", "report_source": "mohtel", "killed_women_cum": 9},
                                {"report_date": "2024-05-02", "report_source": "mohtel", "killed_women_cum": 8}]), encoding="utf-8")
    assert invoke(valid_package, path).exit_code == 0
    notes = [r["revision_note"] for r in imported(valid_package)]
    assert notes == ["", "killed_women_cum falls from 9 (2024-05-01) to 8 in the file, which states no reason; the figure is kept as published."]


@pytest.mark.parametrize(("content", "message"), [
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "killed_cum": 1', "casualties_daily.json:1: invalid JSON: Expecting ',' delimiter (column 74); is the file cut short?"),
    ('{"report_date": "2024-05-01"}', "casualties_daily.json#/: expected a JSON list of daily records, found dict"),
    ('[{"date": "2024-05-01", "killed_cum": 1}]', "casualties_daily.json#/0/report_date: expected a date YYYY-MM-DD, found None"),
    ('[{"report_date": "2024-02-30", "report_source": "mohtel"}]', "casualties_daily.json#/0/report_date: expected a date YYYY-MM-DD, found '2024-02-30'"),
    ('[{"report_date": "2024-05-01", "report_source": "radio"}]', "casualties_daily.json#/0/report_source: expected one of mohtel, gmotel, missing, found 'radio'"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "killed_cum": "12a"}]', "casualties_daily.json#/0/killed_cum: expected a whole number from 0 to 999,999,999, found '12a'"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "injured_cum": -4}]', "casualties_daily.json#/0/injured_cum: expected a whole number from 0 to 999,999,999, found -4"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "killed_cum": 1.5}]', "casualties_daily.json#/0/killed_cum: expected a whole number from 0 to 999,999,999, found 1.5"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "killed_cum": true}]', "casualties_daily.json#/0/killed_cum: expected a whole number from 0 to 999,999,999, found True"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel"}, {"report_date": "2024-05-01", "report_source": "mohtel"}]',
     "casualties_daily.json#/1/report_date: 2024-05-01 is reported twice (first at #/0)"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "residential": {"destroyed": 3}}]',
     "casualties_daily.json: no record holds any of killed_cum, injured_cum, killed_children_cum, killed_women_cum, med_killed_cum, "
     "press_killed_cum, civdef_killed_cum: not a tfp-daily file (casualties_daily.json)"),
    ('[{"report_date": "2024-05-01", "report_source": "mohtel", "killed_cum": 10000000000}]',
     "casualties_daily.json#/0/killed_cum: expected a whole number from 0 to 999,999,999, found 10000000000"),
    ("[" * 100_000, "casualties_daily.json: JSON nested too deeply; a tfp-daily file is a list of flat records"),
], ids=["truncated", "not-a-list", "wrong-columns", "impossible-date", "unknown-source", "bad-number", "negative", "fraction",
        "boolean", "repeated-day", "huge-number", "no-figure-field", "deep-nesting"])
def test_a_malformed_file_is_a_located_error_and_nothing_changes(valid_package, tmp_path, content, message):
    path = tmp_path / "casualties_daily.json"
    path.write_text(content, encoding="utf-8")
    before = snapshot(valid_package)
    result = invoke(valid_package, path)
    assert (result.exit_code, result.stderr) == (2, f"Error: {message}\n")
    assert snapshot(valid_package) == before


def test_the_infrastructure_file_is_refused_as_the_wrong_format(valid_package):
    """infrastructure-damaged.json has report_date but no report_source: not this format."""
    before = snapshot(valid_package)
    result = invoke(valid_package, DAMAGED)
    assert result.exit_code == 2
    assert result.stderr == "Error: techforpalestine__infrastructure-damaged.json#/0/report_source: expected one of mohtel, gmotel, missing, found None\n"
    assert snapshot(valid_package) == before


def test_a_fault_between_two_files_leaves_the_package_byte_identical(valid_package, small):
    from civharm.findings import CivharmError
    from civharm.importing import Change, read_source

    before = snapshot(valid_package)
    change = tfp_daily.plan(Change(load_package(valid_package)), read_source(small), __import__("datetime").date.fromisoformat(TODAY))
    assert len(change.files) == 3

    def fault(index, target):
        if index == 2:
            raise OSError("disk full (injected)")

    with pytest.raises(CivharmError, match="disk full .injected.; nothing was changed"):
        importing.apply(change, fault=fault)
    assert snapshot(valid_package) == before


def test_a_file_larger_than_the_limit_is_refused(small):
    from civharm.findings import CivharmError

    with pytest.raises(CivharmError, match=r"casualties_daily.json: more than an import reads \(10 bytes\)|bytes is more than an import reads"):
        importing.read_source(small, limit=10)


def test_the_real_file_imports_whole_and_reimports_as_a_no_op(valid_package):
    result = invoke(valid_package, DAILY)
    assert result.exit_code == 0, result.output
    rows = imported(valid_package)
    assert len(rows) == 1719
    first_day = {r["population"]: r for r in rows if r["period_end"] == "2023-10-07"}
    # reported that day: killed_cum 232, injured_cum 1610, med_killed_cum 6, press_killed_cum 1; ext_killed_children_cum 0 is not
    assert {p: (r["killed"], r["injured"]) for p, r in first_day.items()} == {
        "all": ("232", "1610"), "medical_personnel": ("6", ""), "journalists": ("1", "")}
    assert {r["claimant"] for r in rows} == {c for c, _ in tfp_daily.CLAIMANTS.values()}
    before = snapshot(valid_package)
    again = invoke(valid_package, DAILY)
    assert again.exit_code == 0 and again.stdout.startswith("nothing to change")
    assert snapshot(valid_package) == before


def test_a_progress_bar_goes_to_stderr_on_large_files(valid_package, small, monkeypatch):
    from civharm import cli

    monkeypatch.setattr(cli, "PROGRESS_FROM", 1)
    result = invoke(valid_package, small, "--dry-run")
    assert "reading casualties_daily.json" in result.stderr and "reading" not in result.stdout
