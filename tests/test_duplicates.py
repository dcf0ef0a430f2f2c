"""The duplicate gate: repeats, near-duplicate incidents, decisions, and blocking that scales."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random

import pandas as pd
import pytest

from civharm import duplicates, linkage
from civharm.validate import Options, run
from conftest import REPO, TODAY, build_package, set_cell

OPTIONS = Options(today=dt.date.fromisoformat(TODAY))
TYOTKINO = "Tyotkino"


def _real_copy(tmp_path):
    return build_package(tmp_path / "real", REPO / "data")


def _rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _append(path, row: dict):
    header = next(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    csv.DictWriter(out, fieldnames=header, lineterminator="\n").writerow(row)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(out.getvalue())


def _reenter(root, *, new_incident="inc_01M8C000000000000000000001", new_report="rep_01M8C000000000000000000001"):
    """Re-enter the Tyotkino incident under a new ID, one day later, spelled 'Tetkino', without GeoNames."""
    incidents = root / "data" / "incidents.csv"
    original = next(r for r in _rows(incidents) if r["locality_en"] == TYOTKINO)
    copy = dict(original, incident_id=new_incident, locality_en="Tetkino", locality_original="", geonames_id="",
                latitude="", longitude="", location_precision="area",
                date_start="2024-03-13", date_end="2024-03-13")
    _append(incidents, copy)
    reports = root / "data" / "reports.csv"
    report = next(r for r in _rows(reports) if r["incident_id"] == original["incident_id"] and not r["superseded_by"])
    _append(reports, dict(report, report_id=new_report, incident_id=new_incident, url="https://example.org/tetkino-report", as_of="2024-03-13",
                          published_date="2024-03-13"))
    return original["incident_id"], new_incident


def test_reentered_incident_with_shifted_date_and_other_spelling_fails_naming_both(tmp_path):
    root = _real_copy(tmp_path)
    old, new = _reenter(root)
    report = run(root, OPTIONS)
    near = [f for f in report.findings if f.rule_id == "duplicates/near-duplicate"]
    assert len(near) == 1, [f.as_text() for f in report.findings]
    assert old in near[0].message and new in near[0].message
    assert near[0].file == "data/incidents.csv" and near[0].field == "incident_id"
    assert "names of the same GeoNames place 483166" in near[0].message
    assert "match probability" in near[0].message and "place +8.0 (" in near[0].message and "date +3.4 (" in near[0].message
    assert "data/duplicate_decisions.csv" in near[0].message
    assert report.exit_code() == 1


def test_a_recorded_decision_silences_exactly_that_pair(tmp_path):
    root = _real_copy(tmp_path)
    old, new = _reenter(root)
    a, b = sorted((old, new))
    _decide(root, a, b, "different_site")
    assert not [f for f in run(root, OPTIONS).findings if f.rule_id.startswith("duplicates/")]
    # a second re-entry makes a new pair, which the old decision does not silence
    _, third = _reenter(root, new_incident="inc_01M8C000000000000000000002", new_report="rep_01M8C000000000000000000002")
    near = [f for f in run(root, OPTIONS).findings if f.rule_id == "duplicates/near-duplicate"]
    assert near and all(third in f.message for f in near)


def _decide(root, a: str, b: str, reason: str, fingerprint: str | None = None) -> str:
    """Append a distinct decision for the pair; its fingerprint is that of the incidents as they are, unless given."""
    incidents = {r["incident_id"]: r for r in _rows(root / "data" / "incidents.csv")}
    schema = json.loads((root / "schema" / "duplicate_decisions.json").read_text(encoding="utf-8"))
    fields = duplicates.rests_on(schema).get(reason, [])
    fingerprint = duplicates.fingerprint(fields, incidents[a], incidents[b]) if fingerprint is None else fingerprint
    _append(root / "data" / "duplicate_decisions.csv", {"incident_a": a, "incident_b": b, "status": "active", "record_version": "1",
                                                       "last_updated": TODAY, "decision": "distinct", "reason": reason,
                                                       "note": "Test: checked and found to be two events.", "fingerprint": fingerprint})
    return fingerprint


def _decision_findings(root):
    return [(f.file, f.line, f.field, f.rule_id, f.message) for f in run(root, OPTIONS).findings
            if f.rule_id in ("duplicates/decision-without-reason", "duplicates/decision-outdated")]


REASONS = "different_site, different_time_of_day, different_means, different_victims, recorded_apart_by_source"


def test_a_distinct_decision_without_a_reason_fails_at_its_row(tmp_path):
    root = _real_copy(tmp_path)
    a, b = sorted(_reenter(root))
    _decide(root, a, b, "")
    assert _decision_findings(root) == [("data/duplicate_decisions.csv", 2, "reason", "duplicates/decision-without-reason",
                                         f"a distinct decision says what tells {a} and {b} apart: give one of {REASONS}")]


def test_a_decision_whose_site_fields_changed_since_is_outdated_and_a_figure_change_does_not_touch_it(tmp_path):
    root = _real_copy(tmp_path)
    old, new = _reenter(root)
    a, b = sorted((old, new))
    stored = _decide(root, a, b, "different_site")
    incidents = root / "data" / "incidents.csv"
    line = next(n for n, r in enumerate(_rows(incidents), start=2) if r["incident_id"] == new)
    set_cell(incidents, line, "all_killed_min", "7")  # a figure: not what tells two sites apart
    assert _decision_findings(root) == []
    set_cell(incidents, line, "locality_en", "Tyotkino")  # the site named now is the other's
    now = duplicates.fingerprint(duplicates.rests_on(json.loads((root / "schema" / "duplicate_decisions.json").read_text()))["different_site"],
                                 *[{r["incident_id"]: r for r in _rows(incidents)}[i] for i in (a, b)])
    fields = "country_code, subdivision_code, area, locality_en, locality_original, geonames_id, latitude, longitude, site_type, site_detail"
    assert _decision_findings(root) == [("data/duplicate_decisions.csv", 2, "fingerprint", "duplicates/decision-outdated",
                                         f"the reason different_site rests on {fields}, and these changed in {a} or {b} since the decision "
                                         f"(fingerprint {stored}, now {now}): check the pair against their pages again, then update the row "
                                         f"(reason, note, fingerprint {now}) or merge the two")]


def test_a_decision_without_a_fingerprint_cannot_be_checked_and_fails(tmp_path):
    root = _real_copy(tmp_path)
    a, b = sorted(_reenter(root))
    _decide(root, a, b, "different_means", fingerprint="")
    found = _decision_findings(root)
    assert [f[:4] for f in found] == [("data/duplicate_decisions.csv", 2, "fingerprint", "duplicates/decision-outdated")]
    assert found[0][4].startswith(f"no fingerprint: cannot tell whether means_of_harm of {a} or {b} changed since the decision; "
                                  "check both against their pages, then write ")


def test_merged_decision_must_be_carried_out(tmp_path):
    root = _real_copy(tmp_path)
    old, new = _reenter(root)
    a, b = sorted((old, new))
    _append(root / "data" / "duplicate_decisions.csv", {"incident_a": a, "incident_b": b, "status": "active", "record_version": "1",
                                                       "last_updated": TODAY, "decision": "merged", "note": "Test: one event told twice."})
    findings = [f for f in run(root, OPTIONS).findings if f.rule_id == "duplicates/decision-not-done"]
    assert [(f.file, f.line, f.field) for f in findings] == [("data/duplicate_decisions.csv", 2, "decision")]
    assert findings[0].message == f"the decision says merged, but neither {a} nor {b} is merged into the other"


@pytest.mark.parametrize("a, b", [("Tyotkino", "Tiotkino"), ("Tyotkino", "Tetkino"), ("Tyotkino", "Tjotkino"), ("Tyotkino", "Тёткино"),
                                  ("Biełgorod", "Belgorod"), ("Kharkov", "Kharkiv"), ("Харків", "Kharkiv")])
def test_transliterations_meet_in_geonames_alternate_names(a, b):
    country = "UA" if "ark" in a + b or "Харків" in a else "RU"
    assert duplicates.place_ids(country, a) & duplicates.place_ids(country, b)


KHARKIV = {"geonames_id": 706483, "latitude": 49.98177, "longitude": 36.25475, "locality_en": "Kharkiv"}
DERHACHI = {"geonames_id": 706369, "latitude": 50.02, "longitude": 36.33, "locality_en": "Derhachi"}
PLACES = [KHARKIV, DERHACHI, {"locality_en": "Kharkov"}, {"locality_en": "Kharkivv"}, {"locality_en": "Derhachy"},
          {"locality_en": "Lozova"}, {"locality_en": "Kharkiv"}, {k: v for k, v in KHARKIV.items() if k != "locality_en"},
          {"locality_en": "Pisochyn", "latitude": 49.9575, "longitude": 36.1158}, {}, {}, {}]


def _random_incidents(n: int, seed: int = 42, days: int = 1000) -> pd.DataFrame:
    """Incidents of every kind the blocking treats apart: coarse or day dates, placed or placeless, with or without subdivision."""
    rng = random.Random(seed)
    start = dt.date(2022, 1, 1)
    rows = []
    for i in range(n):
        day = start + dt.timedelta(days=rng.randrange(days))
        precision = rng.choices(["day", "month", "year"], [0.85, 0.12, 0.03])[0]
        first = {"day": day, "month": day.replace(day=1), "year": day.replace(month=1, day=1)}[precision]
        last = {"day": day, "month": (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date(), "year": first.replace(month=12, day=31)}[precision]
        rows.append(_incident(i, subdivision_code=rng.choice(["UA-63", "UA-63", "UA-12", pd.NA]),
                              date_start=pd.Timestamp(first), date_end=pd.Timestamp(last), date_precision=precision,
                              means_of_harm=rng.choice(["missile", "drone", "unknown", "drone;missile"]), **rng.choice(PLACES)))
    return _typed(pd.DataFrame(rows))


def test_blocking_is_far_below_all_pairs_and_keeps_coarse_and_unsubdivided_incidents():
    incidents = _random_incidents(3000)
    pairs = duplicates.candidate_pairs(incidents)
    assert len(pairs) < 3000 * 2999 // 2 / 20
    ids = set(pairs["a"]) | set(pairs["b"])
    placed = incidents["locality_en"].notna() | incidents["geonames_id"].notna() | incidents["latitude"].notna()
    coarse = incidents["date_precision"] != "day"
    unsubdivided = incidents["subdivision_code"].isna()
    assert ids & set(incidents[coarse & placed]["incident_id"]) and ids & set(incidents[unsubdivided & placed]["incident_id"])
    # a placeless incident without a subdivision cannot reach the threshold with anyone
    assert not ids & set(incidents[~placed & unsubdivided]["incident_id"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pruned_blocking_keeps_every_pair_at_or_above_the_threshold(seed):
    """Pruning drops only pairs that cannot reach the threshold: the same pairs score at or above it as without pruning."""
    incidents = _random_incidents(400, seed=seed, days=60)
    everything = duplicates.scored_pairs(incidents, prune=False)
    pruned = duplicates.scored_pairs(incidents, duplicates.THRESHOLD)
    above = everything[everything["score"] >= duplicates.THRESHOLD]
    assert len(above) > 50 and len(everything) > 1.5 * len(duplicates.candidate_pairs(incidents))
    columns = ["a", "b", "weight", "score"]
    assert pruned[columns].values.tolist() == above[columns].reset_index(drop=True).values.tolist()


def test_the_pruning_bounds_follow_from_the_weights():
    """Every kind of pair the blocking leaves out stays below the threshold at best; the others can reach it."""
    assert duplicates.KEYED
    assert all(bound < linkage.THRESHOLD_WEIGHT for bound in duplicates.UNKEYED_BOUNDS.values())
    best = duplicates._bound("same_large_place")
    assert best > linkage.THRESHOLD_WEIGHT and duplicates._bound("unnamed_same_subdivision") > linkage.THRESHOLD_WEIGHT


def test_each_comparisons_probabilities_sum_to_one():
    for comparison in linkage.MODEL:
        declared = [level for level in comparison.levels if level.m is not None]
        assert sum(level.m for level in declared) == pytest.approx(1, abs=1e-3), comparison.name
        assert sum(level.u for level in declared) == pytest.approx(1, abs=1e-3), comparison.name


def test_month_precision_incident_is_compared_with_a_day_in_that_month():
    incidents = _typed(pd.DataFrame([
        _incident(1, country_code="UA", subdivision_code="UA-63", date_start=pd.Timestamp("2024-03-01"),
                  date_end=pd.Timestamp("2024-03-31"), date_precision="month", locality_en="Kharkov"),
        _incident(2, country_code="UA", subdivision_code=pd.NA, **KHARKIV),
        _incident(3, country_code="UA", subdivision_code="UA-63", date_start=pd.Timestamp("2024-03-01"),
                  date_end=pd.Timestamp("2024-03-31"), date_precision="month"),  # placeless: scores 0.635 at best
    ]))
    # the placeless one shares incident 1's subdivision and family of means; incident 2 has no subdivision
    assert duplicates.candidate_pairs(incidents).values.tolist() == [[f"inc_{1:026d}", f"inc_{2:026d}"], [f"inc_{1:026d}", f"inc_{3:026d}"]]
    assert duplicates.candidate_pairs(incidents, prune=False).values.tolist() == [
        [f"inc_{1:026d}", f"inc_{2:026d}"], [f"inc_{1:026d}", f"inc_{3:026d}"], [f"inc_{2:026d}", f"inc_{3:026d}"]]


def test_same_statement_twice_is_an_error(valid_package):
    reports = valid_package / "data" / "reports.csv"
    row = _rows(reports)[0]
    _append(reports, dict(row, report_id="rep_01M8C000000000000000000009"))
    report = run(valid_package, OPTIONS)
    same = [f for f in report.findings if f.rule_id == "duplicates/same-statement"]
    assert [(f.file, f.line, f.field) for f in same] == [("data/reports.csv", 4, "report_id")]
    assert "repeats the statement of rep_01M8BXYJ9P0XGT2FTQ1QYM61M7 (line 2)" in same[0].message


def test_same_source_date_and_figures_on_two_incidents_is_a_warning(valid_package):
    reports = valid_package / "data" / "reports.csv"
    first, second = _rows(reports)
    set_cell(reports, 3, "all_killed", "1")
    set_cell(reports, 3, "all_killed_qualifier", "exact")
    set_cell(reports, 3, "all_injured", "3")
    set_cell(reports, 3, "all_injured_qualifier", "exact")
    set_cell(reports, 3, "civilians_killed", "")
    set_cell(reports, 3, "civilians_killed_qualifier", "")
    set_cell(reports, 3, "civilians_injured", "")
    set_cell(reports, 3, "civilians_injured_qualifier", "")
    set_cell(reports, 3, "url", "https://dailywrap.uk/another-page")
    findings = [f for f in run(valid_package, OPTIONS).findings if f.rule_id == "duplicates/same-figures-other-incident"]
    assert [(f.file, f.line, f.field, f.severity.value) for f in findings] == [("data/reports.csv", 3, "incident_id", "warning")]


def test_same_url_on_two_incidents_with_equal_figures_is_legitimate(valid_package):
    reports = valid_package / "data" / "reports.csv"
    for field, value in (("all_killed", "1"), ("all_killed_qualifier", "exact"), ("all_injured", "3"), ("all_injured_qualifier", "exact")):
        set_cell(reports, 3, field, value)
    for field in ("civilians_killed", "civilians_killed_qualifier", "civilians_injured", "civilians_injured_qualifier"):
        set_cell(reports, 3, field, "")
    assert not [f for f in run(valid_package, OPTIONS).findings if f.rule_id == "duplicates/same-figures-other-incident"]


def test_exact_row_under_a_new_id_is_an_error(valid_package):
    damage = valid_package / "data" / "damage.csv"
    row = _rows(damage)[0]
    _append(damage, dict(row, damage_id="dmg_01M8C000000000000000000009"))
    findings = [f for f in run(valid_package, OPTIONS).findings if f.rule_id == "duplicates/exact-row"]
    assert [(f.file, f.line, f.field) for f in findings] == [("data/damage.csv", 4, "damage_id")]


def _typed(incidents: pd.DataFrame) -> pd.DataFrame:
    incidents["geonames_id"] = incidents["geonames_id"].astype("Int64")
    for column in ("latitude", "longitude"):
        incidents[column] = incidents[column].astype("Float64")
    for column in ("incident_id", "status", "country_code", "subdivision_code", "date_precision", "locality_en", "locality_original", "means_of_harm"):
        incidents[column] = incidents[column].astype("string")
    return incidents


def _incident(i, **values):
    base = {"incident_id": f"inc_{i:026d}", "status": "active", "country_code": "UA", "subdivision_code": "UA-63",
            "date_start": pd.Timestamp("2024-03-14"), "date_end": pd.Timestamp("2024-03-14"), "date_precision": "day",
            "geonames_id": pd.NA, "latitude": pd.NA, "longitude": pd.NA, "locality_en": pd.NA, "locality_original": pd.NA,
            "means_of_harm": "missile"}
    base.update(values)
    return base


def test_the_explanation_adds_up_to_the_score_computed_in_duckdb():
    """A finding's words come from the levels the SQL chose: prior plus the weights it lists is the pair's weight."""
    kharkiv = KHARKIV
    rows = [
        _incident(1, **kharkiv),
        _incident(2, locality_en="Kharkov"),                                   # transliteration, no GeoNames ID
        _incident(3, locality_en="Kharkivv", date_start=pd.Timestamp("2024-03-15"), date_end=pd.Timestamp("2024-03-15")),  # fuzzy
        _incident(4, subdivision_code=pd.NA, means_of_harm="drone;missile"),   # no subdivision: country-wide block
        _incident(5, date_start=pd.Timestamp("2024-03-01"), date_end=pd.Timestamp("2024-03-31"), date_precision="month",
                  means_of_harm="unknown"),
        _incident(6, geonames_id=706369, latitude=50.02, longitude=36.33, locality_en="Derhachi"),  # near Kharkiv, other place
        _incident(7, locality_en="Lviv", latitude=49.83826, longitude=24.02324, geonames_id=702550, means_of_harm="artillery"),
        _incident(8, **kharkiv, date_start=pd.Timestamp("2024-03-16"), date_end=pd.Timestamp("2024-03-16")),
    ]
    incidents = _typed(pd.DataFrame(rows))
    scored = duplicates.scored_pairs(incidents, prune=False)
    assert len(scored) >= 20
    explained = {(c.a, c.b): c for c in duplicates.near_duplicates(incidents, minimum=0.0)}
    for row in scored.to_dict("records"):
        levels = [comparison.levels[row[f"{comparison.name}_level"]] for comparison in linkage.MODEL]
        assert row["weight"] == pytest.approx(linkage.PRIOR + sum(level.weight for level in levels))
        assert row["score"] == pytest.approx(linkage.probability(row["weight"]))
        candidate = explained.get((row["a"], row["b"]))
        if candidate is not None:  # pruned pairs are never explained
            listed = sum(float(reason.split(" ")[1]) for reason in candidate.reasons)
            assert linkage.PRIOR + listed == pytest.approx(row["weight"], abs=0.05 * len(candidate.reasons) + 1e-9)


def test_same_figures_warns_once_per_repeated_row_naming_the_first_on_another_incident():
    from types import SimpleNamespace

    from civharm.figures import FIGURES

    def report(n, incident, url):
        row = {"report_id": f"rep_{n}", "incident_id": incident, "url": url, "source_id": "src-a", "status": "active",
               "as_of": "2024-03-14T10:00"}
        row.update({f: pd.NA for f in FIGURES} | {f"{f}_qualifier": pd.NA for f in FIGURES})
        return row | {"all_killed": 2, "all_killed_qualifier": "exact"}

    reports = pd.DataFrame([report(1, "inc_a", "u1"), report(2, "inc_a", "u2"), report(3, "inc_b", "u3"),
                            report(4, "inc_a", "u4"), report(5, "inc_c", "u1")])
    resource = SimpleNamespace(path="data/reports.csv", lines_of=lambda rows: rows + 2)
    found = [(f.line, f.message.split(" on incident")[0]) for f in duplicates._same_figures(resource, reports)]
    assert found == [(4, "rep_3 has the same source, date and figures as rep_1 (line 2)"),
                     (5, "rep_4 has the same source, date and figures as rep_3 (line 4)"),
                     (6, "rep_5 has the same source, date and figures as rep_2 (line 3)")]  # rep_1 shares its URL

    # two groups whose warnings interleave: they come in file order (the report's sort then only runs through them)
    other = {"all_killed": 5}
    reports = pd.DataFrame([report(1, "inc_a", "u1"), report(2, "inc_a", "u2") | other, report(3, "inc_b", "u3") | other,
                            report(4, "inc_b", "u4")])
    found = [(f.line, f.message.split(" on incident")[0]) for f in duplicates._same_figures(resource, reports)]
    assert found == [(4, "rep_3 has the same source, date and figures as rep_2 (line 3)"),
                     (5, "rep_4 has the same source, date and figures as rep_1 (line 2)")]


def test_duckdb_works_within_its_memory_limit_and_cleans_its_spill_folder(monkeypatch, tmp_path):
    """The blocking join spills to a temporary folder beyond DUCKDB_MEMORY; the folder is removed."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with duplicates._connect() as connection:
        limit = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        spill = connection.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        assert spill.startswith(str(tmp_path / "civharm-duckdb-"))
    number, unit = limit.split()  # DuckDB shows '600MB' as '572.2 MiB'
    assert unit == "MiB" and float(number) * 2**20 == pytest.approx(int(duplicates.DUCKDB_MEMORY.removesuffix("MB")) * 10**6, rel=1e-3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repeated_rows_narrowed_column_by_column_equal_pandas_duplicated(seed):
    """The narrowing (one column at a time) must find exactly the rows pandas finds on all columns at once."""
    import numpy as np

    from civharm.duplicates import repeated_rows

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({column: pd.array(rng.choice(["a", "b", "c", None], size=400, p=[0.4, 0.3, 0.2, 0.1]), dtype="string")
                          for column in ("w", "x", "y", "z")})
    frame["other"] = pd.array(rng.choice(["u", "v"], size=400), dtype="string")  # not compared
    columns = ["w", "x", "y", "z"]
    expected = frame[frame.duplicated(subset=columns, keep=False)]
    found = repeated_rows(frame, columns)
    assert 0.2 * len(frame) < len(found) < 0.9 * len(frame)  # both kinds of rows are present
    pd.testing.assert_frame_equal(found, expected)
    assert repeated_rows(frame.drop_duplicates(subset=columns), columns).empty


@pytest.mark.parametrize("longitudes", [(179.99, -179.99), (0.001, -0.001), (36.199, 36.201)])
def test_points_a_few_km_apart_meet_across_grid_cell_edges_and_the_antimeridian(longitudes):
    """Blocking by grid cell must pair near points on either side of a cell edge, also where longitude wraps."""
    east, west = longitudes
    incidents = _typed(pd.DataFrame([
        _incident(1, country_code="FJ", subdivision_code=pd.NA, latitude=-16.5, longitude=east, locality_en="Alpha", geonames_id=1),
        _incident(2, country_code="FJ", subdivision_code=pd.NA, latitude=-16.5, longitude=west, locality_en="Omega", geonames_id=2),
    ]))
    assert duplicates.candidate_pairs(incidents).values.tolist() == [[f"inc_{1:026d}", f"inc_{2:026d}"]]


# Each kind of evidence of the matcher (issue 14), on a pair that the matcher before it got wrong.
GRAYVORON = {"country_code": "RU", "subdivision_code": "RU-BEL", "geonames_id": 559034, "latitude": 50.47893, "longitude": 35.68087,
             "locality_en": "Grayvoron"}


def _pair(first: dict, second: dict) -> pd.DataFrame:
    return _typed(pd.DataFrame([_incident(1, **first), _incident(2, **second)]))


def _flagged(incidents: pd.DataFrame, reports: pd.DataFrame | None = None) -> list[duplicates.Candidate]:
    if reports is None:
        return duplicates.near_duplicates(incidents)
    return duplicates.near_duplicates(incidents, reports=reports)


def _day(text: str) -> dict:
    return {"date_start": pd.Timestamp(text), "date_end": pd.Timestamp(text), "date_precision": "day"}


def test_a_month_only_date_and_another_weapon_word_of_the_family_still_link():
    """The page gives only the month and says rockets where the first said artillery: dates overlap, the words are one family."""
    day = _pair({**GRAYVORON, **_day("2024-03-12"), "means_of_harm": "artillery", "all_injured_min": 3, "all_injured_max": 3},
                {**GRAYVORON, "geonames_id": pd.NA, "latitude": pd.NA, "longitude": pd.NA, "locality_en": "Graivoron",
                 "date_start": pd.Timestamp("2024-03-01"), "date_end": pd.Timestamp("2024-03-31"), "date_precision": "month",
                 "means_of_harm": "rocket_mlrs", "all_injured_min": 3, "all_injured_max": 3})
    [found] = _flagged(day)
    assert any("(artillery vs rocket_mlrs: different means of one family (indirect_fire))" in r for r in found.reasons), found.reasons
    assert any(r.startswith("date +1.0 (2024-03-12 vs 2024-03-01..2024-03-31") for r in found.reasons), found.reasons


def test_different_weapon_words_two_days_apart_link_when_the_rest_agrees():
    """Artillery and MLRS are one family: weak evidence apart. A page dated two days late is still within the window."""
    incidents = _pair({**GRAYVORON, **_day("2024-03-12"), "means_of_harm": "artillery", "all_killed_min": 2, "all_killed_max": 2},
                      {**GRAYVORON, **_day("2024-03-14"), "means_of_harm": "rocket_mlrs", "all_killed_min": 2, "all_killed_max": 2})
    [found] = _flagged(incidents)
    assert (found.a, found.b) == (f"inc_{1:026d}", f"inc_{2:026d}")
    family, group, different = (linkage.COMPARISONS["means"].level(i).weight for i in ("same_family", "same_group", "different"))
    assert -1 < family < 0 and different < group < family  # a family apart is weak; other families, and other groups, are stronger


def test_same_city_same_day_at_another_site_and_time_is_not_flagged():
    """A shopping centre in the afternoon and the city centre in the evening are two events."""
    incidents = _pair({**KHARKIV, "site_type": "shopping_centre", "time_of_day": "afternoon"},
                      {**KHARKIV, "site_type": "street_open_area", "time_of_day": "21:40"})
    assert _flagged(incidents) == []
    same = _pair({**KHARKIV, "site_type": "shopping_centre", "time_of_day": "afternoon"},
                 {**KHARKIV, "site_type": "shopping_centre", "time_of_day": "16:10"})
    [found] = _flagged(same)
    assert "site +2.3 (shopping_centre vs shopping_centre)" in found.reasons and "time +1.6 (afternoon vs 16:10)" in found.reasons


def test_a_far_larger_toll_with_little_else_in_common_is_not_flagged():
    """2 killed against 40 is not a rising toll; same city and day with unknown means is not enough alone."""
    def toll(killed):
        return {**KHARKIV, "means_of_harm": "unknown", "all_killed_min": killed, "all_killed_max": killed}

    assert _flagged(_pair(toll(2), toll(40))) == []
    [rising] = _flagged(_pair(toll(2), toll(5)))
    assert "figures -0.1 (killed 2, injured ? vs killed 5, injured ?: different but compatible figures (a toll can rise))" in rising.reasons


def test_a_shared_page_and_originator_move_the_score():
    """The same page, quoting the same official, about the same city a day apart: linked only with that evidence."""
    incidents = _pair({**KHARKIV}, {**KHARKIV, **_day("2024-03-15")})
    assert _flagged(incidents) == []

    def report(n, url):
        return {"report_id": f"rep_{n}", "status": "active", "incident_id": f"inc_{n:026d}", "url": url, "source_id": "src",
                "republished_from": None, "claimant": "Head of the regional administration", "claimant_type": "regional_authority"}

    reports = pd.DataFrame([report(1, "https://example.org/a"), report(2, "https://example.org/a")])
    [found] = _flagged(incidents, reports)
    assert "urls +2.1 (1 page(s) in common)" in found.reasons and "originators +0.7 (1 originator(s) in common)" in found.reasons


def test_an_undated_page_is_entered_as_on_or_before_its_publication(valid_package):
    """The page gives no day, only that the event had happened when it was published: a range ending on that day."""
    incidents = valid_package / "data" / "incidents.csv"
    for field, value in (("date_start", "2024-03-08"), ("date_end", "2024-03-14"), ("date_precision", "range"),
                         ("date_basis", "on_or_before_publication"), ("time_of_day", "morning"), ("site_type", "vehicle")):
        set_cell(incidents, 2, field, value)
    assert run(valid_package, OPTIONS).findings == []
    for wrong in ("nightly", "25:00", "9:30"):
        set_cell(incidents, 2, "time_of_day", wrong)
        assert [(f.line, f.field) for f in run(valid_package, OPTIONS).findings] == [(2, "time_of_day")], wrong
    # scored by overlap: a day inside the week meets it, a day after it does not
    published = {**GRAYVORON, "date_start": pd.Timestamp("2024-03-08"), "date_end": pd.Timestamp("2024-03-14"), "date_precision": "range"}
    [found] = _flagged(_pair(published, {**GRAYVORON, **_day("2024-03-12")}))
    assert any(r.startswith("date +3.1 (2024-03-08..2024-03-14 vs 2024-03-12: intervals of at most 8 days overlap)") for r in found.reasons)
    assert _flagged(_pair(published, {**GRAYVORON, **_day("2024-03-19")})) == []


@pytest.mark.parametrize(("area", "centre"), [
    ("Grayvoron district", "grayvoron"), ("Kharkivskyi raion", "kharkiv"), ("Bucha hromada", "bucha"),
    ("Belgorodsky District", "belgorod"), ("Grayvoron", ""), ("", ""), ("district", "")])
def test_a_district_is_named_after_its_centre(area, centre):
    assert linkage.district_centre(area) == centre


def test_a_page_naming_only_the_district_of_the_place_links_to_it():
    """'Grayvoron district', same day and means: evidence for Grayvoron, not 'one side names no locality' alone."""
    unnamed = {"country_code": "RU", "subdivision_code": "RU-BEL", "area": "Grayvoron district", "means_of_harm": "artillery",
               "all_injured_min": 2, "all_injured_max": 2}
    incidents = _pair({**GRAYVORON, "means_of_harm": "artillery", "all_injured_min": 2, "all_injured_max": 2}, unnamed)
    [found] = _flagged(incidents)
    assert found.reasons[0] == ("place +2.3 ('Grayvoron' and 'Grayvoron district': one side names only a district named after "
                                "the other's locality)"), found.reasons
    elsewhere = _pair({**GRAYVORON, "means_of_harm": "artillery", "all_injured_min": 2, "all_injured_max": 2},
                      {**unnamed, "area": "Borisovka district"})
    assert _flagged(elsewhere) == []


def test_a_shared_page_with_a_side_naming_no_locality_is_not_evidence_apart():
    """A page in common where one entry names only the region does not 'name two places apart'."""
    incidents = _pair({**GRAYVORON, "means_of_harm": "artillery"}, {"country_code": "RU", "subdivision_code": "RU-BEL", "means_of_harm": "artillery"})

    def report(n):
        return {"report_id": f"rep_{n}", "status": "active", "incident_id": f"inc_{n:026d}", "url": "https://example.org/a", "source_id": "src",
                "republished_from": None, "claimant": f"Outlet {n}", "claimant_type": "media_outlet"}

    scored = duplicates.scored_pairs(incidents, prune=False, reports=pd.DataFrame([report(1), report(2)]))
    assert linkage.COMPARISONS["urls"].levels[int(scored.at[0, "urls_level"])].id == "shared_unnamed"
