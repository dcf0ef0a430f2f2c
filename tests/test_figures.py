"""The figure rule: qualifier mapping, supersession, merging, and the real data's stored figures."""
from __future__ import annotations

import pandas as pd

from civharm import figures
from civharm.package import load_package
from conftest import REPO


def test_qualifier_mapping():
    values = pd.Series([3, 100, 10, 5, 7], dtype="Int64")
    qualifiers = pd.Series(["exact", "more_than", "at_least", "up_to", "about"])
    low, high = figures.bounds(values, qualifiers)
    assert low.tolist() == [3, 101, 10, pd.NA, 7]
    assert high.tolist() == [3, pd.NA, pd.NA, 5, 7]


def _tables(rows_inc, rows_rep):
    inc = pd.DataFrame(rows_inc, columns=["incident_id", "status", "merged_into"]).astype("string")
    cols = ["report_id", "incident_id", "status", "superseded_by"]
    rep = pd.DataFrame(rows_rep, columns=cols + ["civilians_killed", "civilians_killed_qualifier"])
    for f in figures.FIGURES:
        if f not in rep:
            rep[f] = pd.NA
            rep[f + "_qualifier"] = pd.NA
    rep[cols] = rep[cols].astype("string")
    return inc, rep


def test_superseded_and_retracted_reports_do_not_count_and_open_max_stays_open():
    inc, rep = _tables(
        [["A", "active", None]],
        [["r1", "A", "active", "r2", 1, "exact"],
         ["r2", "A", "active", None, 2, "exact"],
         ["r3", "A", "active", None, 3, "at_least"],
         ["r4", "A", "retracted", None, 50, "exact"]])
    out = figures.compute_incident_figures(inc, rep)
    assert out.loc["A", "civilians_killed_min"] == 2
    assert pd.isna(out.loc["A", "civilians_killed_max"])


def test_merged_incident_reports_count_toward_the_target():
    inc, rep = _tables(
        [["A", "active", None], ["B", "merged", "A"]],
        [["r1", "A", "active", None, 4, "exact"], ["r2", "B", "active", None, 6, "exact"]])
    out = figures.compute_incident_figures(inc, rep)
    assert (out.loc["A", "civilians_killed_min"], out.loc["A", "civilians_killed_max"]) == (4, 6)
    assert pd.isna(out.loc["B", "civilians_killed_min"])


def test_unknown_stays_empty_never_zero():
    inc, rep = _tables([["A", "active", None]], [["r1", "A", "active", None, None, None]])
    out = figures.compute_incident_figures(inc, rep)
    assert pd.isna(out.loc["A", "civilians_killed_min"]) and pd.isna(out.loc["A", "civilians_killed_max"])


def test_real_data_figures_equal_the_rule():
    package = load_package(REPO)
    incidents = package["incidents"].typed
    computed = figures.compute_incident_figures(incidents, package["reports"].typed)
    checked = 0
    for _, row in incidents.iterrows():
        if row["status"] != "active" or pd.notna(row["figures_override_reason"]):
            continue
        for column in computed.columns:
            stored, expected = row[column], computed.loc[row["incident_id"], column]
            assert (pd.isna(stored) and pd.isna(expected)) or stored == expected, (row["incident_id"], column)
        checked += 1
    assert checked >= 2
