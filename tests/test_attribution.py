"""The attribution rule: agreement, dispute, silence, supersession, merging, and the real data."""
from __future__ import annotations

import pandas as pd

from civharm import attribution
from civharm.package import load_package
from conftest import REPO


def _tables(rows_inc, rows_rep):
    inc = pd.DataFrame(rows_inc, columns=["incident_id", "status", "merged_into"]).astype("string")
    rep = pd.DataFrame(rows_rep, columns=["report_id", "incident_id", "status", "superseded_by", "responsibility_claimed"]).astype("string")
    return inc, rep


def _verdicts(inc, rep) -> dict:
    out = attribution.compute_incident_attribution(inc, rep)
    return {i: (out.at[i, "perpetrator_alleged"], out.at[i, "alleged_parties"]) for i in out.index}


def test_agreement_gives_the_party_and_silence_does_not_dispute_it():
    inc, rep = _tables([["A", "active", None]],
                       [["r1", "A", "active", None, "russian_forces"], ["r2", "A", "active", None, "unknown"],
                        ["r3", "A", "active", None, "russian_forces"]])
    assert _verdicts(inc, rep) == {"A": ("russian_forces", "russian_forces")}


def test_different_parties_give_disputed_with_every_party_once_in_alphabetical_order():
    inc, rep = _tables([["A", "active", None]],
                       [["r1", "A", "active", None, "ukrainian_forces"], ["r2", "A", "active", None, "pro_ukrainian_russian_formations"],
                        ["r3", "A", "active", None, "ukrainian_forces"]])
    assert _verdicts(inc, rep) == {"A": ("disputed", "pro_ukrainian_russian_formations;ukrainian_forces")}


def test_nobody_named_is_unknown_with_no_parties():
    inc, rep = _tables([["A", "active", None], ["B", "active", None]], [["r1", "A", "active", None, "unknown"]])
    verdicts = _verdicts(inc, rep)
    assert verdicts["A"][0] == verdicts["B"][0] == "unknown"
    assert pd.isna(verdicts["A"][1]) and pd.isna(verdicts["B"][1])


def test_superseded_and_retracted_statements_do_not_dispute():
    inc, rep = _tables([["A", "active", None]],
                       [["r1", "A", "active", "r2", "ukrainian_forces"], ["r2", "A", "active", None, "russian_forces"],
                        ["r3", "A", "retracted", None, "pro_ukrainian_russian_formations"]])
    assert _verdicts(inc, rep) == {"A": ("russian_forces", "russian_forces")}


def test_a_later_statement_that_names_nobody_leaves_the_originator_s_earlier_party_in_force():
    """Supersession as for a figure: an update that says nothing of who is responsible withdraws nobody."""
    inc, rep = _tables([["A", "active", None], ["B", "active", None]],
                       [["r1", "A", "active", "r2", "russian_forces"], ["r2", "A", "active", "r3", "unknown"], ["r3", "A", "active", None, None],
                        ["r4", "B", "active", "r5", "ukrainian_forces"], ["r5", "B", "active", "r6", "unknown"],
                        ["r6", "B", "active", None, "russian_forces"]])
    assert _verdicts(inc, rep) == {"A": ("russian_forces", "russian_forces"), "B": ("russian_forces", "russian_forces")}


def test_a_merged_incident_s_reports_count_toward_the_target():
    inc, rep = _tables([["A", "active", None], ["B", "merged", "A"]],
                       [["r1", "A", "active", None, "russian_forces"], ["r2", "B", "active", None, "ukrainian_forces"]])
    verdicts = _verdicts(inc, rep)
    assert verdicts["A"] == ("disputed", "russian_forces;ukrainian_forces")
    assert verdicts["B"][0] == "unknown"


def test_real_data_attribution_equals_the_rule():
    package = load_package(REPO)
    incidents, reports = package["incidents"].typed, package["reports"].typed
    computed = attribution.compute_incident_attribution(incidents, reports)
    active = incidents[incidents["status"] == "active"].set_index("incident_id")
    for field in attribution.FIELDS:
        stored = active[field].astype(object).where(active[field].notna(), None)
        wanted = computed.loc[active.index, field].astype(object).where(computed.loc[active.index, field].notna(), None)
        assert stored.to_dict() == wanted.to_dict(), field
