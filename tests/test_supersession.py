"""The figure rule under real reporting (issue 14, section 3): supersession by one originator and per
figure, ordered as_of moments, corroboration by every statement, ranged consistency checks,
`add --supersedes`, `civharm recompute`, and the combined casualties figure."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from civharm import corrections, figures, history
from civharm.cli import main
from civharm.findings import CivharmError
from civharm.package import load_package
from civharm.validate import Options, run
from conftest import DATA_TODAY, REPO, TODAY, build_package, set_cell

BELGOROD_14_MAR = "inc_01M8BXYJ9JXC1F8JK54GB4ADWP"  # valid-minimal, line 2: Daily Wrap, 1 killed, 3 injured
BELGOROD_30_DEC = "inc_01M8BXYJ9MCRVM43F2SQCZ8B40"  # valid-minimal, line 3: Daily Wrap, 25 civilians killed
DAILYWRAP_14_MAR = "rep_01M8BXYJ9P0XGT2FTQ1QYM61M7"
LATER = "2026-11-27"  # the day of a hand edit after the fixture's rows
HEADER = next(csv.reader(io.StringIO((REPO / "tests/fixtures/packages/valid-minimal/data/reports.csv").read_text(encoding="utf-8"))))


def report_row(report_id: str, incident: str, claimant: str, claimant_type: str, as_of: str, superseded_by: str = "", **figures_) -> str:
    """One reports.csv line of our own (invented) statement."""
    cells = dict.fromkeys(HEADER, "")
    cells.update(report_id=report_id, status="active", record_version="1", last_updated="2026-11-26", incident_id=incident,
                 source_id="dailywrap", url=f"https://example.org/{report_id.lower()}", title="", language="en",
                 published_date="2024-03-14", published_precision="day", accessed_date="2026-11-26", claimant=claimant,
                 claimant_type=claimant_type, as_of=as_of, responsibility_claimed="unknown", superseded_by=superseded_by)
    for name, value in figures_.items():
        cells[name], cells[f"{name}_qualifier"] = str(value), "exact"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([cells[h] for h in HEADER])
    return out.getvalue()


def append(root, text: str) -> None:
    with (root / "data" / "reports.csv").open("a", encoding="utf-8") as handle:
        handle.write(text)


def findings(root, rule_prefix: str = "", today: str = TODAY):
    return [(f.file, f.line, f.field, f.rule_id, f.message) for f in run(root, Options(today=dt.date.fromisoformat(today))).findings
            if f.rule_id.startswith(rule_prefix) and f.severity.value == "error"]


def _tables(rows):
    inc = pd.DataFrame([["A", "active", None]], columns=["incident_id", "status", "merged_into"]).astype("string")
    cols = ["report_id", "incident_id", "status", "superseded_by"]
    rep = pd.DataFrame([r[:4] for r in rows], columns=cols).astype("string")
    for f in figures.FIGURES:
        rep[f] = pd.array([r[4].get(f) for r in rows], dtype="Int64")
        rep[f + "_qualifier"] = pd.array(["exact" if r[4].get(f) is not None else None for r in rows], dtype="string")
    return inc, rep


# --- the figure rule ---------------------------------------------------------------------------

def test_a_later_statement_supersedes_only_the_figures_it_states():
    """Dnipro, 25 Oct 2024, as it went wrong: the update gave no children figure and the earlier one was lost."""
    inc, rep = _tables([["r1", "A", "active", "r2", {"children_injured": 4, "all_killed": 4}],
                        ["r2", "A", "active", None, {"all_killed": 5}]])
    out = figures.compute_incident_figures(inc, rep)
    assert (out.at["A", "children_injured_min"], out.at["A", "children_injured_max"]) == (4, 4)
    assert (out.at["A", "all_killed_min"], out.at["A", "all_killed_max"]) == (5, 5)


def test_a_chain_counts_the_latest_statement_that_gives_each_figure():
    inc, rep = _tables([["r1", "A", "active", "r2", {"civilians_killed": 1, "civilians_injured": 2}],
                        ["r2", "A", "active", "r3", {"civilians_injured": 6}],
                        ["r3", "A", "active", None, {"civilians_killed": 3}]])
    out = figures.compute_incident_figures(inc, rep)
    assert (out.at["A", "civilians_killed_min"], out.at["A", "civilians_killed_max"]) == (3, 3)
    assert (out.at["A", "civilians_injured_min"], out.at["A", "civilians_injured_max"]) == (6, 6)


def test_a_retracted_successor_supersedes_nothing():
    inc, rep = _tables([["r1", "A", "active", "r2", {"civilians_killed": 1}], ["r2", "A", "retracted", None, {"civilians_killed": 9}]])
    out = figures.compute_incident_figures(inc, rep)
    assert (out.at["A", "civilians_killed_min"], out.at["A", "civilians_killed_max"]) == (1, 1)


def test_a_supersession_cycle_ends():
    inc, rep = _tables([["r1", "A", "active", "r2", {"civilians_killed": 1}], ["r2", "A", "active", "r1", {"civilians_killed": 2}]])
    out = figures.compute_incident_figures(inc, rep)  # links/superseded-by reports the cycle; the rule still returns
    assert pd.isna(out.at["A", "civilians_killed_min"])


def test_combined_casualties_are_a_figure_of_the_rule():
    inc, rep = _tables([["r1", "A", "active", None, {"all_casualties": 9}], ["r2", "A", "active", None, {"all_injured": 6}]])
    out = figures.compute_incident_figures(inc, rep)
    assert (out.at["A", "all_casualties_min"], out.at["A", "all_casualties_max"]) == (9, 9)
    assert (out.at["A", "all_injured_min"], out.at["A", "all_injured_max"]) == (6, 6)


@pytest.mark.parametrize(("earlier", "later", "ordered"), [
    ("2024-10-25T09:00", "2024-10-25T14:30", True),   # two times of one day: ordered
    ("2024-10-25", "2024-10-25T14:30", False),        # a whole day does not end before 14:30 of that day
    ("2024-10-25", "2024-10-26", True),
    ("2023-01", "2023-01-30", False),                 # a month-only statement is not before a day in it
    ("2023-01", "2023-02-01", True),
])
def test_as_of_spans_order_statements(earlier, later, ordered):
    start, end = figures.as_of_span(pd.Series([earlier, later]))
    assert bool(start[1] > end[0]) is ordered
    assert not bool(start[0] > end[1])


def test_unreadable_as_of_has_no_span():
    start, end = figures.as_of_span(pd.Series(["2024-13-01", "", None, "2024-02-30T10:00", "٢٠٢٤-03-14", "2024-10-25 14:30"], dtype="string"))
    assert np.isnat(start).all() and np.isnat(end).all()


# --- validate ----------------------------------------------------------------------------------

def test_superseded_statement_still_corroborates_high_confidence(valid_package):
    """A governor's statement whose successor was retracted: no current report of his, yet he corroborates."""
    root = valid_package
    set_cell(root / "data/incidents.csv", 2, "confidence", "high")
    append(root, report_row("rep_01M8BXYJA0GVRNR00000000000", BELGOROD_14_MAR, "Governor of Belgorod region", "regional_authority", "2024-03-14T09:00",
                            superseded_by="rep_01M8BXYJA0GVRNR00000000001", all_killed=1, all_injured=3)
           + report_row("rep_01M8BXYJA0GVRNR00000000001", BELGOROD_14_MAR, "Governor of Belgorod region", "regional_authority", "2024-03-14T18:00",
                        all_killed=1, all_injured=3).replace(",active,", ",retracted,", 1))
    assert findings(root) == []
    # retracting the Daily Wrap statement leaves one originator
    set_cell(root / "data/reports.csv", 2, "status", "retracted")
    assert [f[3] for f in findings(root, "confidence/")] == ["confidence/high-needs-two-originators"]


def test_two_claimants_may_disagree_about_civilians_and_all(valid_package):
    """One source says 25 civilians killed, another 21 people killed: a range, not an error."""
    root = valid_package
    append(root, report_row("rep_01M8BXYJA0THERSRC000000000", BELGOROD_30_DEC, "Another outlet (unattributed)", "media_outlet", "2024-01-02", all_killed=21)
           .replace(",dailywrap,", ",copysite,"))
    with (root / "data/sources.csv").open("a", encoding="utf-8") as handle:
        handle.write("copysite,active,1,2026-11-26,Copy Site,online_outlet,,copysite.example,Test source.\n")
    for field in ("all_killed_min", "all_killed_max"):
        set_cell(root / "data/incidents.csv", 3, field, "21")
    assert findings(root) == []


def test_ranges_within_one_statement_use_the_qualifiers(valid_package):
    """'More than 20 civilians' and 'at least 20 people' agree; 'more than 20 civilians' and 'up to 20 people' do not."""
    root = valid_package
    path = root / "data/reports.csv"
    for field, value in (("civilians_killed", "20"), ("civilians_killed_qualifier", "more_than"), ("all_killed", "20"), ("all_killed_qualifier", "at_least")):
        set_cell(path, 3, field, value)
    set_cell(root / "data/incidents.csv", 3, "figures_override_reason", "Test: figures set by hand to exercise another rule.")
    assert findings(root, "counts/") == []
    set_cell(path, 3, "all_killed_qualifier", "up_to")
    assert findings(root, "counts/") == [("data/reports.csv", 3, "civilians_killed", "counts/civilians-above-all",
                                          "civilians_killed 20 (more_than) is greater than all_killed 20 (up_to): the all-status figure includes civilians")]


def test_split_above_casualties_in_one_statement(valid_package):
    root = valid_package
    path = root / "data/reports.csv"
    for field, value in (("all_casualties", "2"), ("all_casualties_qualifier", "exact")):
        set_cell(path, 2, field, value)
    set_cell(root / "data/incidents.csv", 2, "figures_override_reason", "Test: figures set by hand to exercise another rule.")
    assert findings(root, "counts/") == [("data/reports.csv", 2, "all_injured", "counts/split-above-casualties",
                                          "all_injured 3 is greater than all_casualties 2: the combined toll counts the killed and the injured")]


# --- the real data -----------------------------------------------------------------------------

def test_real_data_follows_the_originator_rule():
    package = load_package(REPO)
    incidents = package["incidents"].typed.set_index("incident_id")
    reports = package["reports"].typed.set_index("report_id")
    dnipro = incidents.loc["inc_01M8BY4Z1QKDD8PJ675JD7Y0V5"]
    assert dnipro["children_injured_min"] == 1 and dnipro["all_injured_min"] == 21  # neither figure lost to a statement that omits it
    assert pd.isna(reports.at["rep_01M8BY4Z1Q67607YTKD7S1GX9V", "superseded_by"])  # an unnamed earlier source stands beside the regional head
    # Kharkiv, 29 Jan 2023: the governor's earlier statement is superseded by his update, and its injured figure still counts
    assert reports.at["rep_01M8BY4Z1Q27WC11HV9MYEZF37", "superseded_by"] == "rep_01M8BY4Z1Q2N84SJKG5VXQ082B"
    kharkiv = incidents.loc["inc_01M8BY4Z1QQ3A65XSEGWK2KF4W"]
    assert (kharkiv["all_injured_min"], kharkiv["all_killed_min"]) == (3, 1)
    assert incidents.at["inc_01M8BY4Z1QA9EQGCJK8M8T33SY", "all_casualties_min"] == 9  # page 45: a casualty toll, not injured
    assert not reports["title"].fillna("").str.startswith("[").any()  # no placeholder titles


# --- add --supersedes and the Python API -------------------------------------------------------

def _update(tmp_path, **extra) -> str:
    report = {"source_id": "dailywrap", "url": "https://example.org/update", "title": "An update", "language": "en",
              "published_date": "2024-03-15", "published_precision": "day", "accessed_date": "2026-11-26",
              "claimant": "Daily Wrap (unattributed figures)", "claimant_type": "media_outlet", "as_of": "2024-03-15T10:00",
              "responsibility_claimed": "unknown", "all_killed": 2, "all_killed_qualifier": "exact"}
    path = tmp_path / "update.json"
    path.write_text(json.dumps({"incident": BELGOROD_14_MAR, "report": report, **extra}), encoding="utf-8")
    return str(path)


def test_add_supersedes_marks_the_earlier_statement_and_figures_follow_per_figure(valid_package, tmp_path):
    root = valid_package
    result = CliRunner().invoke(main, ["add", _update(tmp_path), "--package", str(root), "--supersedes", DAILYWRAP_14_MAR, "--today", TODAY],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    new_id = result.stdout.strip()
    package = load_package(root)
    earlier = package["reports"].frame.set_index("report_id").loc[DAILYWRAP_14_MAR]
    assert (earlier["superseded_by"], earlier["record_version"]) == (new_id, "2")
    incident = package["incidents"].typed.set_index("incident_id").loc[BELGOROD_14_MAR]
    assert (incident["all_killed_min"], incident["all_killed_max"]) == (2, 2)   # the update's figure
    assert (incident["all_injured_min"], incident["all_injured_max"]) == (3, 3)  # not restated: the earlier one counts
    log = package["changes"].frame
    assert ((log["record_id"] == DAILYWRAP_14_MAR) & (log["field"] == "superseded_by") & (log["new_value"] == new_id) & (log["record_version"] == "2")).sum() == 1
    assert findings(root) == []


def test_add_from_the_file_supersedes_too_and_refuses_an_unknown_report(valid_package, tmp_path):
    root = valid_package
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "data").glob("*.csv")}
    result = CliRunner().invoke(main, ["add", _update(tmp_path, supersedes=["rep_01M8BXYJA0NSCHRPRT00000000"]), "--package", str(root), "--today", TODAY])
    assert result.exit_code == 2 and "rep_01M8BXYJA0NSCHRPRT00000000 does not exist" in result.output
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "data").glob("*.csv")}
    result = CliRunner().invoke(main, ["add", _update(tmp_path, supersedes=DAILYWRAP_14_MAR), "--package", str(root), "--today", TODAY])
    assert result.exit_code == 0, result.output


def test_add_refuses_a_supersession_across_originators(valid_package, tmp_path):
    root = valid_package
    path = _update(tmp_path)
    data = json.loads(open(path, encoding="utf-8").read())
    data["report"].update(claimant="Governor of Belgorod region", claimant_type="regional_authority")
    data["supersedes"] = [DAILYWRAP_14_MAR]
    open(path, "w", encoding="utf-8").write(json.dumps(data))
    result = CliRunner().invoke(main, ["add", path, "--package", str(root), "--today", TODAY])
    assert result.exit_code == 1 and "links/superseded-by" in result.output and "another originator" in result.output


def test_supersession_candidates_are_the_same_originators_earlier_statements(valid_package):
    package = load_package(valid_package)
    same = {"claimant": "Daily Wrap (unattributed figures)", "claimant_type": "media_outlet", "source_id": "dailywrap", "as_of": "2024-03-15"}
    assert [r["report_id"] for r in corrections.supersession_candidates(package, BELGOROD_14_MAR, same)] == [DAILYWRAP_14_MAR]
    other = {**same, "claimant": "Governor", "claimant_type": "regional_authority"}
    assert corrections.supersession_candidates(package, BELGOROD_14_MAR, other) == []
    earlier = {**same, "as_of": "2024-03-13"}  # the existing statement is later than this one: not a candidate
    assert corrections.supersession_candidates(package, BELGOROD_14_MAR, earlier) == []


def test_supersede_refuses_a_second_successor(valid_package):
    package = load_package(valid_package)
    tables = {n: corrections.records(package[n]) for n in ("reports", "changes")}
    tables["reports"].append({**tables["reports"][0], "report_id": "rep_01M8BXYJA0SECND00000000000", "superseded_by": ""})
    tables["reports"].append({**tables["reports"][0], "report_id": "rep_01M8BXYJA0SECND00000000100", "superseded_by": ""})
    corrections.supersede(tables, DAILYWRAP_14_MAR, "rep_01M8BXYJA0SECND00000000000", dt.date(2026, 11, 27))
    with pytest.raises(CivharmError, match="already superseded by rep_01M8BXYJA0SECND00000000000"):
        corrections.supersede(tables, DAILYWRAP_14_MAR, "rep_01M8BXYJA0SECND00000000100", dt.date(2026, 11, 27))


# --- civharm recompute -------------------------------------------------------------------------

def _hand_edit(root):
    """A hand edit as a contributor makes it: a same-originator update added and the old statement marked, logged."""
    append(root, report_row("rep_01M8BXYJA0PDATE00000000000", BELGOROD_14_MAR, "Daily Wrap (unattributed figures)", "media_outlet",
                            "2024-03-15", all_killed=2))
    path = root / "data/reports.csv"
    set_cell(path, 2, "superseded_by", "rep_01M8BXYJA0PDATE00000000000")
    set_cell(path, 2, "record_version", "2")
    set_cell(path, 2, "last_updated", "2026-11-27")
    with (root / "data/changes.csv").open("a", encoding="utf-8") as handle:
        handle.write(f"chg_01M8BXYJA0HANDEDT000000000,2026-11-27,reports,{DAILYWRAP_14_MAR},2,superseded_by,,rep_01M8BXYJA0PDATE00000000000,Test hand edit.,\n")


def test_recompute_dry_run_writes_nothing_and_the_run_writes_a_logged_change(tmp_path):
    root = build_package(tmp_path / "pkg")
    _hand_edit(root)
    base = load_package(root)
    assert [f[3] for f in findings(root, today=LATER)] == ["figures/rule-mismatch"] * 2
    before = {p.name: p.read_bytes() for p in (root / "data").glob("*.csv")}
    runner = CliRunner()
    dry = runner.invoke(main, ["recompute", str(root), "--dry-run", "--today", "2026-11-27"], catch_exceptions=False)
    assert dry.exit_code == 0
    assert dry.stdout.splitlines() == ["data/incidents.csv:2: all_killed_min: 1 -> 2", "data/incidents.csv:2: all_killed_max: 1 -> 2"]
    assert before == {p.name: p.read_bytes() for p in (root / "data").glob("*.csv")}
    done = runner.invoke(main, ["recompute", str(root), "--today", "2026-11-27", "--reason", "Test: the update counts."], catch_exceptions=False)
    assert done.exit_code == 0 and done.stdout == dry.stdout
    assert findings(root, today=LATER) == []
    head = load_package(root)
    row = head["incidents"].frame.set_index("incident_id").loc[BELGOROD_14_MAR]
    assert (row["record_version"], row["last_updated"]) == ("2", "2026-11-27")
    log = head["changes"].frame
    logged = log[log["record_id"] == BELGOROD_14_MAR]
    assert logged[["record_version", "field", "old_value", "new_value", "reason"]].values.tolist() == [
        ["2", "all_killed_min", "1", "2", "Test: the update counts."], ["2", "all_killed_max", "1", "2", "Test: the update counts."]]
    assert [f for f in history.check(base, head) if f.severity.value == "error"] == []  # the history gate accepts it
    again = runner.invoke(main, ["recompute", str(root), "--today", "2026-11-27"], catch_exceptions=False)
    assert again.exit_code == 0 and again.stdout == ""  # nothing left to change


def test_recompute_of_the_real_data_changes_nothing(tmp_path):
    root = build_package(tmp_path / "real", REPO / "data")
    result = CliRunner().invoke(main, ["recompute", str(root), "--dry-run", "--today", DATA_TODAY], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
