"""The linkage evaluation in benchmarks/: it runs, and the committed table is what it prints."""
from __future__ import annotations

import datetime as dt
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


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_validate_benchmark_plants_each_kind_of_hard_twin_as_described():
    """Issue 16 point 8: besides the easy twins, one hard twin of each kind, each differing from its original in that way only."""
    from civharm import linkage

    generate = _module("generate")
    tables, manifest = generate.build(3000, near_duplicates=2, hard_duplicates=len(generate.HARD))
    assert len(manifest["near_duplicates"]) == 2 and sorted(k for _, _, k in manifest["hard_near_duplicates"]) == sorted(generate.HARD)
    by_id = {row["incident_id"]: row for row in tables["incidents"]}
    for a, b, kind in manifest["hard_near_duplicates"]:
        first, twin = by_id[a], by_id[b]
        assert twin["subdivision_code"] == first["subdivision_code"]
        if kind == "variant":
            assert twin["locality_en"] not in ("", first["locality_en"]) and twin["geonames_id"] == ""
        elif kind == "district":
            assert twin["locality_en"] == "" and twin["area"] == f"{first['locality_en']} district"
        elif kind == "region":
            assert twin["locality_en"] == "" and twin["location_precision"] == "subdivision"
        elif kind == "two_days":
            assert (dt.date.fromisoformat(twin["date_start"]) - dt.date.fromisoformat(first["date_start"])).days == 2
        elif kind == "other_word":
            assert linkage.FAMILY_BITS[twin["means_of_harm"]] & linkage.FAMILY_BITS[first["means_of_harm"]]
        elif kind == "month":
            assert twin["date_precision"] == "month" and twin["date_start"].endswith("-01")
        if kind != "other_word":
            assert twin["means_of_harm"] == first["means_of_harm"]


def test_the_validate_benchmark_reports_easy_and_hard_recall_and_false_pairs_apart():
    run = _module("run")
    manifest = {"near_duplicates": [["i1", "i2"], ["i3", "i4"]], "hard_near_duplicates": [["i5", "i6", "region"], ["i7", "i8", "month"]]}

    def finding(a, b):
        return {"rule_id": "duplicates/near-duplicate", "message": f"{b} may be the same event as {a} (line 2): match probability 0.9"}

    findings = [finding("i1", "i2"), finding("i6", "i5"), finding("i6", "i9"), finding("i3", "i10"), finding("i11", "i12"),
                {"rule_id": "duplicates/same-statement", "message": "i7 may be the same event as i8 (line 3)"}]
    assert run.recall(findings, manifest) == {"easy": "50% (1/2)", "hard": "50% (1/2)", "false": "3 (easy 0, hard 1, other 2)"}
    assert run.hard_recall_by_kind(findings, manifest) == "region 1/1, month 0/1"
