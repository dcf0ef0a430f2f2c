"""Charts: months never get coarse-dated incidents, ranges stay ranges, the README chart matches data/."""
from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil

import matplotlib
import pandas as pd
import PIL
import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from civharm import charts
from civharm.build import build
from civharm.cli import main
from civharm.package import load_package
from conftest import REPO, build_package, set_cell

COMMITTED = REPO / "docs" / "chart.png"


def frame(*rows) -> pd.DataFrame:
    """Typed incidents: (start, end, precision, killed min, killed max, injured min, injured max)."""
    columns = ["date_start", "date_end", "date_precision", "civilians_killed_min", "civilians_killed_max",
               "civilians_injured_min", "civilians_injured_max"]
    data = pd.DataFrame(rows, columns=columns)
    for column in columns[:2]:
        data[column] = pd.to_datetime(data[column])
    for column in columns[3:]:
        data[column] = data[column].astype("Int64")
    return data


def locked(name: str) -> str | None:
    match = re.search(rf"^{name}==(\S+)$", (REPO / "requirements.lock").read_text(encoding="utf-8"), re.M | re.I)
    return match.group(1) if match else None


@pytest.fixture
def real_copy(tmp_path):
    """The repository's data, descriptor, schemas and docs in a folder the test may change."""
    root = build_package(tmp_path / "pkg", REPO / "data")
    shutil.copytree(REPO / "docs", root / "docs")
    return root


# --- the numbers -------------------------------------------------------------------------------

def test_coarse_dated_incidents_are_counted_apart_never_spread_over_months():
    series = charts.monthly(frame(
        ("2024-01-15", "2024-01-15", "day", 2, 2, None, None),
        ("2024-03-01", "2024-03-31", "month", 1, 5, 4, 4),
        ("2024-01-01", "2024-12-31", "year", 10, 10, 7, 9),
        ("2024-01-20", "2024-02-10", "day", 3, 3, None, None),  # a range across two months is not one month
    ))
    killed = series["civilians_killed"]
    assert series["months"] == ["2024-01", "2024-02", "2024-03"]
    assert [(b["low"], b["high"]) for b in killed["per_month"]] == [(2, 2), (None, None), (1, 5)]
    assert [b["incidents"] for b in killed["per_month"]] == [1, 0, 1]
    assert (killed["coarse"]["low"], killed["coarse"]["high"], killed["coarse"]["incidents"]) == (13, 13, 2)
    assert series["coarse_incidents"] == 2
    assert (killed["all"]["low"], killed["all"]["high"]) == (16, 20)
    injured = series["civilians_injured"]
    assert [(b["low"], b["high"]) for b in injured["per_month"]] == [(None, None), (None, None), (4, 4)]
    assert (injured["coarse"]["low"], injured["coarse"]["high"]) == (7, 9)


def test_open_maxima_stand_in_with_their_minimum_and_are_counted_unknown_stays_unknown():
    series = charts.monthly(frame(
        ("2024-05-02", "2024-05-02", "day", 101, None, None, None),  # "over 100": max open
        ("2024-05-09", "2024-05-09", "day", 3, 6, None, None),
        ("2024-05-11", "2024-05-11", "day", None, 4, None, None),  # "up to 4": min open
        ("2024-05-12", "2024-05-12", "day", None, None, None, None),
    ))
    may = series["civilians_killed"]["per_month"][0]
    assert may == {"incidents": 4, "given": 3, "low": 104, "high": 111, "open_max": 1, "no_min": 1}
    assert series["civilians_injured"]["per_month"][0]["low"] is None  # no figure: no bar, not a zero bar


def test_month_of_places_day_and_month_precision_only():
    day, first, last = pd.Timestamp("2024-03-14"), pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-31")
    assert charts.month_of(day, day, "day") == "2024-03"
    assert charts.month_of(first, last, "month") == "2024-03"
    assert charts.month_of(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-12-31"), "year") is None
    assert charts.month_of(pd.NaT, day, "day") is None


def test_inactive_incidents_are_left_out_and_the_caption_says_what_is_counted(valid_package):
    set_cell(valid_package / "data" / "incidents.csv", 3, "status", "retracted")
    content = charts.contents(load_package(valid_package))[charts.README_CHART]
    overall = content["panels"][0][1]
    assert overall["incidents"] == 1
    assert overall["civilians_killed"]["all"]["given"] == 0
    caption = " ".join(content["caption"])
    version = load_package(valid_package).descriptor["version"]
    assert f"civharm {version}" in caption and "CC-BY-4.0" in caption
    assert "active incidents only (1 of 2 incidents)" in caption and "recorded in this dataset, not a total" in caption


def test_a_year_dated_incident_gets_its_own_bar_and_a_caption_note(valid_package):
    incidents = valid_package / "data" / "incidents.csv"
    for field, value in (("date_precision", "year"), ("date_start", "2023-01-01"), ("date_end", "2023-12-31")):
        set_cell(incidents, 3, field, value)
    content = charts.contents(load_package(valid_package))[charts.README_CHART]
    overall = content["panels"][0][1]
    assert overall["months"] == ["2024-03"] and content["coarse_slot"]
    assert overall["civilians_killed"]["coarse"]["low"] == 25
    assert "counted apart" in " ".join(content["caption"])


def test_means_of_harm_counts_an_incident_once_under_each_of_its_means():
    counts = charts.means_of_harm(pd.DataFrame({"means_of_harm": ["missile;drone", "drone", "drone;drone", None]}),
                                  ["missile", "drone", "artillery"])
    assert counts == {"missile": 1, "drone": 3, "artillery": 0}


# --- the README chart ------------------------------------------------------------------------

def test_committed_readme_chart_matches_the_data():
    package = load_package(REPO)
    expected = charts.data_hash(charts.contents(package)[charts.README_CHART])
    assert COMMITTED.exists(), "docs/chart.png is missing: run `civharm docs`"
    assert charts.embedded(COMMITTED.read_bytes())[charts.DATA_KEY] == expected, \
        "docs/chart.png no longer shows data/: run `civharm docs`"
    if (matplotlib.__version__, PIL.__version__) == (locked("matplotlib"), locked("pillow")):
        assert COMMITTED.read_bytes() == charts.readme_chart(package), "docs/chart.png is stale: run `civharm docs`"


def test_a_changed_figure_changes_the_hash_and_docs_redraws_the_chart(real_copy):
    runner = CliRunner()
    before = runner.invoke(main, ["docs", str(real_copy), "--check"])
    assert "chart.png" not in before.stderr
    set_cell(real_copy / "data" / "incidents.csv", 16, "civilians_killed_min", "7")  # was 6
    fresh = charts.readme_chart(load_package(real_copy))
    assert charts.embedded(fresh)[charts.DATA_KEY] != charts.embedded(COMMITTED.read_bytes())[charts.DATA_KEY]
    assert not charts.is_current(COMMITTED.read_bytes(), fresh)
    after = runner.invoke(main, ["docs", str(real_copy), "--check"])
    assert after.exit_code == 1 and "docs/chart.png: out of date; run `civharm docs`" in after.stderr
    assert runner.invoke(main, ["docs", str(real_copy)]).exit_code == 0
    assert (real_copy / "docs" / "chart.png").read_bytes() == fresh


def test_another_renderer_with_the_same_data_is_current_but_the_same_renderer_must_match_bytes():
    fresh = charts.readme_chart(load_package(REPO))

    def resave(renderer: str, level: int) -> bytes:
        info = PngInfo()
        for key, value in charts.embedded(fresh).items():
            info.add_text(key, renderer if key == charts.RENDERER_KEY else value)
        out = io.BytesIO()
        Image.open(io.BytesIO(fresh)).save(out, format="png", pnginfo=info, compress_level=level)
        return out.getvalue()

    assert charts.is_current(resave("matplotlib 0.0; pillow 0.0", 1), fresh)
    assert not charts.is_current(resave(charts.embedded(fresh)[charts.RENDERER_KEY], 1), fresh)
    assert not charts.is_current(b"not a png", fresh) and not charts.is_current(None, fresh)


def test_drawing_is_reproducible_and_ignores_local_matplotlib_settings(monkeypatch):
    content = charts.contents(load_package(REPO))[charts.README_CHART]
    charts._DRAWN.clear()
    first = charts.draw(content)
    charts._DRAWN.clear()
    with matplotlib.rc_context({"font.size": 20, "axes.facecolor": "black", "lines.linewidth": 4}):
        again = charts.draw(content)
    assert first == again
    text = charts.embedded(first)
    assert set(text) == {"Title", charts.DATA_KEY, charts.RENDERER_KEY}  # no software or time stamp
    with Image.open(io.BytesIO(first)) as image:
        assert image.format == "PNG" and image.size[0] == charts.WIDTH * charts.DPI


# --- the build -----------------------------------------------------------------------------------

def test_build_writes_every_chart_into_dist_and_lists_it_in_sha256sums(valid_package, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dist = tmp_path / "dist"
    build(valid_package, dist, version="0.1.0")
    listed = dict(reversed(line.split("  ", 1)) for line in (dist / "SHA256SUMS").read_text().splitlines())
    folder = "civharm-0.1.0-charts"
    expected = charts.contents(load_package(valid_package), "0.1.0")
    assert sorted(p.name for p in (dist / folder).iterdir()) == sorted(expected) == \
        ["coverage.png", "incident-inc_01M8BXYJ9JXC1F8JK54GB4ADWP.png", "incident-inc_01M8BXYJ9MCRVM43F2SQCZ8B40.png",
         "means-of-harm.png", "monthly-RU.png", "monthly.png"]
    for name, content in expected.items():
        data = (dist / folder / name).read_bytes()
        assert listed[f"{folder}/{name}"] == hashlib.sha256(data).hexdigest()
        assert charts.embedded(data)[charts.DATA_KEY] == charts.data_hash(content)
        assert "civharm 0.1.0 · data licence CC-BY-4.0" in content["caption"][0]


def test_a_package_without_active_incidents_still_draws_every_chart(valid_package, recwarn):
    for line in (2, 3):
        set_cell(valid_package / "data" / "incidents.csv", line, "status", "retracted")
    drawn = charts.render(load_package(valid_package))
    assert sorted(drawn) == ["coverage.png", "means-of-harm.png", "monthly.png"]
    assert all(data.startswith(b"\x89PNG") for data in drawn.values())
    assert not [w for w in recwarn if "constrained_layout" in str(w.message)]


# --- each incident's figures over time ----------------------------------------------------------

BELGOROD = "incident-inc_01M8BXYJ9MCRVM43F2SQCZ8B40.png"  # valid-minimal: killed 25–25, injured 101–(open)


def test_an_incident_timeline_draws_each_statement_and_the_computed_range(valid_package):
    content = charts.contents(load_package(valid_package))[BELGOROD]
    assert content["kind"] == "timeline" and content["claimants"] == ["Daily Wrap (unattributed figures)"]
    panels = dict((label, panel) for label, panel in content["panels"])
    assert panels["Civilians killed"] == {"range": [25, 25], "series": [["Daily Wrap (unattributed figures)",
                                                                           [["2024-03-14", 25, "exact", True]]]]}
    assert panels["Civilians injured"] == {"range": [101, None], "series": [["Daily Wrap (unattributed figures)",
                                                                             [["2024-03-14", 100, "more_than", True]]]]}
    assert set(panels) == {"Civilians killed", "Civilians injured"}  # no panel for a figure nobody states
    assert "recorded in this dataset, not a total" in content["caption"][0]


def test_a_superseded_statement_stays_on_the_timeline_hollow_and_a_later_one_is_current(valid_package):
    reports = valid_package / "data" / "reports.csv"
    rows = list(csv.DictReader(reports.open(encoding="utf-8")))
    later = {**rows[1], "report_id": "rep_01M8BXYJ9RBRZVQEHZNH3KMSF5", "as_of": "2024-03-15", "civilians_killed": "27"}
    rows[1]["superseded_by"] = later["report_id"]
    with reports.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows + [later])
    content = charts.contents(load_package(valid_package))[BELGOROD]
    killed = dict((label, panel) for label, panel in content["panels"])["Civilians killed"]
    assert killed["series"] == [["Daily Wrap (unattributed figures)", [["2024-03-14", 25, "exact", False], ["2024-03-15", 27, "exact", True]]]]
    charts._DRAWN.clear()
    first = charts.draw(content)
    charts._DRAWN.clear()
    assert charts.draw(content) == first and charts.embedded(first)[charts.DATA_KEY] == charts.data_hash(content)


# --- coverage: official totals beside what the dataset records -------------------------------

def test_coverage_chart_draws_the_numbers_of_civharm_coverage_and_says_it_is_not_a_total(valid_package):
    from civharm import coverage

    package = load_package(valid_package)
    content = charts.contents(package)[charts.COVERAGE_CHART]
    compared = coverage.compare(package)
    assert [row["aggregate_id"] for row in content["rows"]] == [c.aggregate_id for c in compared]
    assert [(row["share_min"], row["share_max"]) for row in content["rows"]] == [c.ratio for c in compared]
    # A5: Belgorod region, all people, as of 2024-05-02: the first incident's all-status 1 and the second's civilian 25
    belgorod = content["rows"][-1]
    assert belgorod["label"] == "RU RU-BEL · as of 2024-05-02 · Test health authority · all killed"
    assert belgorod["text"] == "26 of 7 in 2 incident(s)" and belgorod["share_min"] == 26 / 7
    injured = next(row for row in content["rows"] if row["label"].endswith("children injured"))
    assert injured["text"] == "0 of at least 20 in 0 incident(s)"  # the official lower bound written as published
    caption = " ".join(content["caption"])
    assert "recorded in this dataset, not a total" in caption and "lower bounds" in caption
    assert "straddle" not in caption


def test_coverage_chart_counts_coarse_dated_incidents_apart_and_names_them_on_the_row(valid_package):
    incidents = valid_package / "data" / "incidents.csv"
    for field, value in (("date_precision", "year"), ("date_start", "2024-01-01"), ("date_end", "2024-12-31")):
        set_cell(incidents, 2, field, value)  # the 2024-03-14 incident, now dated to its year only
    content = charts.contents(load_package(valid_package))[charts.COVERAGE_CHART]
    belgorod = content["rows"][-1]
    assert belgorod["text"] == "25 of 7 in 1 incident(s); 1 coarse-dated apart" and belgorod["share_min"] == 25 / 7
    assert "incidents with coarse dates straddle the period's bounds: they are counted apart" in " ".join(content["caption"])


def test_coverage_chart_is_in_the_build_and_carries_the_hash_of_what_it_draws(valid_package, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    package = load_package(valid_package)
    version = package.descriptor["version"]
    build(valid_package, tmp_path / "one")
    png = (tmp_path / "one" / f"civharm-{version}-charts" / charts.COVERAGE_CHART).read_bytes()
    assert charts.embedded(png)[charts.DATA_KEY] == charts.data_hash(charts.contents(package)[charts.COVERAGE_CHART])
    charts._DRAWN.clear()  # draw again rather than reuse the bytes
    build(valid_package, tmp_path / "two")
    assert (tmp_path / "two" / f"civharm-{version}-charts" / charts.COVERAGE_CHART).read_bytes() == png


def test_a_package_without_aggregates_builds_without_a_coverage_chart(valid_package):
    import json

    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"] = [r for r in descriptor["resources"] if r["name"] != "aggregates"]
    (valid_package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    assert charts.COVERAGE_CHART not in charts.contents(load_package(valid_package))
