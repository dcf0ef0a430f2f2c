"""``civharm decide``: a distinct decision for two incidents already in the package (issue 14 §1).

The pair is made by a hand edit, as a contributor who did not search first would leave it:
the Tyotkino incident entered a second time under another ID. Every sentence here is invented.
"""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from click.testing import CliRunner

from civharm.cli import main
from civharm.package import load_package
from civharm.validate import Options, run
from conftest import DATA_TODAY, REPO, build_package, set_cell

TYOTKINO = "inc_01M8BY5YP18XB0CWW6XRD1PWN8"
TWIN = "inc_01M8BY5YP18XB0CWW6XRD1PWZZ"  # sorts after TYOTKINO: the pair is (TYOTKINO, TWIN)
NOTE = "Invented: one page names the school, the other a bus stop."


@pytest.fixture
def twinned(tmp_path):
    """The real package with the Tyotkino incident entered again as TWIN (a near-duplicate finding)."""
    root = build_package(tmp_path / "pkg", REPO / "data")
    path = root / "data" / "incidents.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    twin = {**next(r for r in rows if r["incident_id"] == TYOTKINO), "incident_id": TWIN, "record_version": "1",
            "summary": "Invented: the Tyotkino fighting entered a second time."}
    with path.open("a", encoding="utf-8", newline="") as out:
        csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n").writerow(twin)
    return root


def near_duplicates(root) -> list[str]:
    return [f.message for f in run(root, Options(today=dt.date.fromisoformat(DATA_TODAY))).findings
            if f.rule_id == "duplicates/near-duplicate" and TWIN in f.message]


def decide(root, *args):
    return CliRunner().invoke(main, ["decide", *args, "--package", str(root), "--today", DATA_TODAY], catch_exceptions=False)


def files(root):
    return {p.name: p.read_bytes() for p in sorted((root / "data").glob("*.csv"))}


def test_a_decision_records_the_pair_with_its_reason_note_and_fingerprint_and_silences_the_finding(twinned):
    assert near_duplicates(twinned), "the fixture must be a flagged pair"
    result = decide(twinned, TWIN, TYOTKINO, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 0, result.output
    rows = load_package(twinned)["duplicate_decisions"].frame
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["incident_a"], row["incident_b"], row["status"], row["decision"], row["reason"], row["note"], row["record_version"]) == (
        TYOTKINO, TWIN, "active", "distinct", "different_site", NOTE, "1")
    assert result.output == (f"data/duplicate_decisions.csv:2: {TYOTKINO} and {TWIN} decided distinct (different_site), "
                             f"fingerprint {row['fingerprint']}; recorded\n")
    assert near_duplicates(twinned) == []
    findings = run(twinned, Options(today=dt.date.fromisoformat(DATA_TODAY))).findings
    assert not [f for f in findings if f.rule_id.startswith("duplicates/decision")]


def test_an_outdated_decision_is_renewed_in_place_and_logged(twinned):
    assert decide(twinned, TYOTKINO, TWIN, "--reason", "different_site", "--note", NOTE).exit_code == 0
    incidents = twinned / "data" / "incidents.csv"
    set_cell(incidents, len(incidents.read_text(encoding="utf-8").splitlines()), "site_type", "school")
    outdated = [f for f in run(twinned, Options(today=dt.date.fromisoformat(DATA_TODAY))).findings if f.rule_id == "duplicates/decision-outdated"]
    assert [(f.file, f.line, f.field) for f in outdated] == [("data/duplicate_decisions.csv", 2, "fingerprint")]
    result = decide(twinned, TYOTKINO, TWIN, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 0, result.output
    assert result.output.endswith("; renewed (fingerprint changed; logged in data/changes.csv)\n")
    package = load_package(twinned)
    assert package["duplicate_decisions"].frame.iloc[0]["record_version"] == "2"
    log = package["changes"].frame
    logged = log[log["table"] == "duplicate_decisions"]
    assert list(zip(logged["record_id"], logged["field"], logged["record_version"])) == [(f"{TYOTKINO}+{TWIN}", "fingerprint", "2")]
    assert not [f for f in run(twinned, Options(today=dt.date.fromisoformat(DATA_TODAY))).findings if f.rule_id.startswith("duplicates/decision")]


def test_a_decision_that_changes_nothing_is_refused(twinned):
    assert decide(twinned, TYOTKINO, TWIN, "--reason", "different_site", "--note", NOTE).exit_code == 0
    before = files(twinned)
    result = decide(twinned, TYOTKINO, TWIN, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 2
    assert result.output == (f"Error: data/duplicate_decisions.csv:2: the pair {TYOTKINO}, {TWIN} is already decided distinct "
                             "with this reason, note and fingerprint; nothing to change\n")
    assert files(twinned) == before


@pytest.mark.parametrize("args, message", [
    (["--reason", "checked", "--note", NOTE], "decision: reason: 'checked' is not a reason; say what tells the two apart: one of "
                                              "different_site, different_time_of_day, different_means, different_victims"),
    (["--reason", "recorded_apart_by_source", "--note", NOTE], "decision: reason: 'recorded_apart_by_source' is not a reason"),
    (["--reason", "different_site", "--note", "  short  "], "decision: note: say in your words (at least 10 characters)"),
])
def test_a_reason_outside_the_vocabulary_or_a_note_that_says_nothing_is_refused(twinned, args, message):
    before = files(twinned)
    result = decide(twinned, TYOTKINO, TWIN, *args)
    assert result.exit_code == 2 and result.output.startswith(f"Error: {message}"), result.output
    assert files(twinned) == before


def test_a_pair_that_is_no_candidate_a_missing_incident_or_one_incident_twice_is_refused(twinned):
    before = files(twinned)
    other = next(i for i in load_package(twinned)["incidents"].frame["incident_id"] if i not in (TYOTKINO, TWIN))
    result = decide(twinned, TYOTKINO, other, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 2
    assert "are not a near-duplicate candidate (match probability 0." in result.output
    assert "a decision is recorded for a candidate pair only" in result.output
    missing = "inc_01M8BY5YP18XB0CWW6XRD1PW00"
    result = decide(twinned, TYOTKINO, missing, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 2 and result.output == f"Error: data/incidents.csv: no incident {missing}\n"
    result = decide(twinned, TYOTKINO, TYOTKINO, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 2 and "an incident is not a pair with itself" in result.output
    assert files(twinned) == before


def test_a_pair_decided_merged_is_not_turned_into_distinct(twinned):
    path = twinned / "data" / "duplicate_decisions.csv"
    path.write_text(path.read_text(encoding="utf-8") + f"{TYOTKINO},{TWIN},active,1,{DATA_TODAY},merged,,Invented: one event.,\n", encoding="utf-8")
    result = decide(twinned, TYOTKINO, TWIN, "--reason", "different_site", "--note", NOTE)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: data/duplicate_decisions.csv:2: the pair {TYOTKINO}, {TWIN} is decided merged (one event)")
