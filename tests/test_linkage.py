"""The linkage evaluation in benchmarks/: it runs, and the committed table is what it prints."""
from __future__ import annotations

import importlib.util

from conftest import REPO


def _evaluation():
    spec = importlib.util.spec_from_file_location("linkage_evaluation", REPO / "benchmarks" / "linkage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_linkage_table_is_what_the_evaluation_prints():
    evaluation = _evaluation()
    assert (REPO / "benchmarks" / "LINKAGE.md").read_text(encoding="utf-8") == evaluation.document(), \
        "run: python benchmarks/linkage.py --write"


def test_the_evaluation_counts_pairs_statements_and_chains():
    evaluation = _evaluation()
    incidents, reports = evaluation.synthetic(12, seed=3)
    result = evaluation.evaluate(incidents, reports)
    events = incidents.groupby("event").size()
    assert result["pairs"] == int((events * (events - 1) // 2).sum()) and result["statements"] == len(incidents)
    assert 0 <= result["pair_recall"] <= result["chained_recall"] <= 1 and result["chained_false"] >= result["false"] and result["hits"] == result["pairs"] - len(result["missed"])
    labelled = evaluation.evaluate(*evaluation.labelled())
    assert labelled["incident_recall"] == 1.0 and labelled["false"] == 0  # the real pages: every re-entry is caught, no false pair
