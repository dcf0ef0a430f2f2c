"""`civharm coverage`: official totals beside the incidents' sums, checked against sums worked out by hand."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm import coverage
from civharm.cli import main
from civharm.package import load_package
from conftest import REPO, build_package, set_cell

SECOND = "inc_01M8BXYJ9MCRVM43F2SQCZ8B40"  # valid-minimal: Belgorod, 2023-12-30, civilians killed 25–25, injured 101–(open)


def rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def write(path: Path, records: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(out.getvalue(), encoding="utf-8")


@pytest.fixture
def planted(tmp_path) -> Path:
    """valid-minimal's two Belgorod incidents, three planted ones, and two totals.

    Incidents (besides the first, 2024-03-14 Belgorod, all-status killed 1–1, and the second):
    - Kursk region, 2024-02-10: civilians killed 4–4, injured 2–5;
    - Belgorod region, the year 2024 (year precision): civilians killed 3–3 — straddles both periods;
    - Belgorod region, 2024-02-11, retracted: civilians killed 50–50 — never counted.
    """
    root = build_package(tmp_path / "pkg")
    incidents = rows(root / "data" / "incidents.csv")
    base = next(r for r in incidents if r["incident_id"] == SECOND)
    blank = {f"{p}_{h}_{b}": "" for p in ("civilians", "children", "all") for h in ("killed", "injured") for b in ("min", "max")}
    incidents += [
        {**base, **blank, "incident_id": "inc_01M8BXYJ9MCRVM43F2SQCZ8B41", "date_start": "2024-02-10", "date_end": "2024-02-10",
         "subdivision_code": "RU-KRS", "civilians_killed_min": "4", "civilians_killed_max": "4", "civilians_injured_min": "2", "civilians_injured_max": "5"},
        {**base, **blank, "incident_id": "inc_01M8BXYJ9MCRVM43F2SQCZ8B42", "date_start": "2024-01-01", "date_end": "2024-12-31",
         "date_precision": "year", "civilians_killed_min": "3", "civilians_killed_max": "3"},
        {**base, **blank, "incident_id": "inc_01M8BXYJ9MCRVM43F2SQCZ8B43", "status": "retracted", "date_start": "2024-02-11",
         "date_end": "2024-02-11", "civilians_killed_min": "50", "civilians_killed_max": "50"},
    ]
    write(root / "data" / "incidents.csv", incidents)
    totals = rows(root / "data" / "aggregates.csv")
    country = {**totals[0], "aggregate_id": "agg_01M8BXYJA0AAAAAAAAAAAAAAB1", "figures_scope": "period", "period_start": "2023-12-01",
               "period_end": "2024-03-31", "killed": "100", "injured": "300", "injured_qualifier": "exact"}
    region = {**totals[4], "aggregate_id": "agg_01M8BXYJA0AAAAAAAAAAAAAAB2", "period_end": "2024-03-31", "killed": "40"}
    write(root / "data" / "aggregates.csv", [country, region])
    return root


def test_sums_match_the_ones_worked_out_by_hand_for_two_areas(planted):
    found = {(c.area, c.figure): c for c in coverage.compare(load_package(planted))}
    assert set(found) == {("RU", "killed"), ("RU", "injured"), ("RU RU-BEL", "killed")}
    # Russia, civilians, 1 Dec 2023 – 31 Mar 2024: the second incident (25) and Kursk (4); the first gives only an
    # all-status figure, the year-2024 incident straddles the end, the retracted one does not count.
    killed = found[("RU", "killed")]
    assert (killed.ours_min, killed.ours_max, killed.incidents, killed.coarse, killed.ratio) == (29, 29, 2, 1, (0.29, 0.29))
    assert killed.caveats == ("recorded in this dataset, not a total",
                              "1 incident(s) give only an all-status figure (civilians not separated): not in the sum",
                              "1 incident(s) with coarse dates straddle the period: counted apart, not in the sum")
    # injured: 101–(open) + 2–5 → 103–(open)
    injured = found[("RU", "injured")]
    assert (injured.ours_min, injured.ours_max, injured.ratio) == (103, None, (103 / 300, None))
    # Belgorod region, all people, running total as of 31 Mar 2024: the first incident's all-status 1 and the
    # second's civilian 25 (no all-status figure of its own); Kursk is another region.
    region = found[("RU RU-BEL", "killed")]
    assert (region.population, region.ours_min, region.ours_max, region.incidents, region.coarse) == ("all", 26, 26, 2, 1)
    assert region.ratio == (26 / 40, 26 / 40)


def test_superseded_and_retracted_totals_are_left_out_and_running_totals_show_their_latest(valid_package):
    found = coverage.compare(load_package(valid_package))
    assert [(c.aggregate_id[-2:], c.figure) for c in found] == [
        ("A2", "killed"), ("A2", "injured"), ("A3", "killed"), ("A3", "injured"), ("A4", "killed"), ("A4", "injured"), ("A5", "killed")]
    every = coverage.compare(load_package(valid_package), every_date=True)
    assert ("A1", "killed") in [(c.aggregate_id[-2:], c.figure) for c in every]
    set_cell(valid_package / "data" / "aggregates.csv", 5, "status", "retracted")
    set_cell(valid_package / "data" / "aggregates.csv", 6, "superseded_by", "agg_01M8BXYJA0AAAAAAAAAAAAAAA4")
    assert {c.aggregate_id[-2:] for c in coverage.compare(load_package(valid_package))} == {"A2", "A3"}


def test_cli_prints_the_table_with_its_caveats(planted):
    result = CliRunner().invoke(main, ["coverage", str(planted)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Official totals beside the incidents of this dataset (recorded in this dataset, not a total)."
    assert ("RU | 2023-12-01 to 2024-03-31 | Test monitoring mission | civilians killed: official 100; this dataset 29–29 "
            "(2 incident(s)); ratio 29.0%  [agg_01M8BXYJA0AAAAAAAAAAAAAAB1]") in result.stdout
    assert "this dataset 103–(open) (2 incident(s)); ratio ≥ 34.3%" in result.stdout
    as_json = json.loads(CliRunner().invoke(main, ["coverage", str(planted), "--format", "json"]).stdout)
    assert {(r["area"], r["figure"], r["ours_min"], r["ours_max"]) for r in as_json} == {
        ("RU", "killed", 29, 29), ("RU", "injured", 103, None), ("RU RU-BEL", "killed", 26, 26)}


def test_real_data_prints_a_line_for_every_un_total():
    result = CliRunner().invoke(main, ["coverage", str(REPO)])
    assert result.exit_code == 0, result.output
    assert "UA | 2024-06-01 to 2024-08-31 | Office of the UN High Commissioner for Human Rights (OHCHR) | civilians killed: official 589" in result.stdout
    assert "PS Gaza Strip" in result.stdout


def test_a_package_without_aggregates_is_a_clear_error(valid_package):
    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"] = [r for r in descriptor["resources"] if r["name"] != "aggregates"]
    (valid_package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    result = CliRunner().invoke(main, ["coverage", str(valid_package)])
    assert (result.exit_code, result.stderr) == (2, "Error: the package has no usable aggregates table; run civharm validate\n")
