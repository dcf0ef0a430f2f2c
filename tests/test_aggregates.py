"""The aggregates table: its rules beyond the fixtures, the history gate and `civharm diff` over it."""
from __future__ import annotations

import datetime as dt

from civharm import diff as diffing, history
from civharm.package import load_package
from civharm.validate import Options, run
from conftest import TODAY, build_package, set_cell

AGGREGATES = "data/aggregates.csv"
FIRST = "agg_01M8BXYJA0AAAAAAAAAAAAAAA1"


def rule_findings(root, prefix: str = "aggregates/") -> list[tuple]:
    report = run(root, Options(today=dt.date.fromisoformat(TODAY)))
    return [(f.file, f.line, f.field, f.rule_id) for f in report.findings if f.rule_id.startswith(prefix)]


def test_a_fall_with_a_revision_note_is_not_a_finding(valid_package):
    set_cell(valid_package / AGGREGATES, 4, "killed", "90")
    assert rule_findings(valid_package) == [(AGGREGATES, 4, "killed", "aggregates/cumulative-fell")]
    set_cell(valid_package / AGGREGATES, 4, "revision_note", "The claimant lowered the total after removing double counts.")
    assert rule_findings(valid_package) == []


def test_a_superseded_or_retracted_total_is_not_compared(valid_package):
    """Only totals in force count: the fall is gone once the low figure is retracted."""
    set_cell(valid_package / AGGREGATES, 4, "killed", "90")
    set_cell(valid_package / AGGREGATES, 4, "status", "retracted")
    assert rule_findings(valid_package) == []


def test_another_claimant_or_population_is_another_series(valid_package):
    set_cell(valid_package / AGGREGATES, 4, "killed", "90")
    set_cell(valid_package / AGGREGATES, 4, "claimant", "Another test monitor")
    assert rule_findings(valid_package) == []


def test_history_gate_covers_aggregates(tmp_path):
    base = build_package(tmp_path / "base")
    head = build_package(tmp_path / "head")
    set_cell(head / AGGREGATES, 2, "killed", "101")
    found = sorted((f.file, f.line, f.field, f.rule_id) for f in history.check(load_package(base), load_package(head)))
    assert found == [(AGGREGATES, 2, name, "history/unversioned-change") for name in ("killed", "last_updated", "record_version")]


def test_history_gate_refuses_a_deleted_total(tmp_path):
    base = build_package(tmp_path / "base")
    head = build_package(tmp_path / "head")
    lines = (head / AGGREGATES).read_text(encoding="utf-8").splitlines(keepends=True)
    (head / AGGREGATES).write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")
    found = [(f.file, f.field, f.rule_id) for f in history.check(load_package(base), load_package(head))]
    assert (AGGREGATES, "aggregate_id", "history/deleted-row") in found


def test_diff_lists_a_changed_total(tmp_path):
    base = build_package(tmp_path / "base")
    head = build_package(tmp_path / "head")
    set_cell(head / AGGREGATES, 2, "killed", "101")
    diff = diffing.compare(load_package(base), load_package(head))
    [change] = [c for c in diff.records if c.table == "aggregates"]
    assert (change.record_id, change.kind, change.line, change.new_value("killed")) == (FIRST, "changed", 2, "101")
    assert "aggregates" in diffing.to_markdown(diff)
