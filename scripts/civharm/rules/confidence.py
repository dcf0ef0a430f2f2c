"""Rule: the top confidence grade needs two independent originators."""
from __future__ import annotations

import pandas as pd

from ..findings import Severity
from . import rule


def originators(reports: pd.DataFrame) -> pd.Series:
    """Who originated each statement: the claimant, or for an outlet's own voice the outlet it copies or is.

    A governor quoted by five outlets is one originator; a wire story republished by five
    sites is one originator (``republished_from``); two outlets reporting in their own
    voice are two.
    """
    outlet = reports["republished_from"].fillna(reports["source_id"])
    claimant = reports["claimant"].str.casefold().str.strip()
    key = ("claimant:" + claimant).where(reports["claimant_type"] != "media_outlet", "outlet:" + outlet)
    return key


@rule("confidence/high-needs-two-originators", Severity.ERROR,
      "Confidence high needs current reports from at least two independent originators (following republished_from and claimant).",
      "Five copies of one statement are one source; the top grade promises independent corroboration.")
def high_needs_two_originators(ctx, rule):
    incidents, reports = ctx.table("incidents"), ctx.table("reports")
    if incidents is None or reports is None:
        return
    high = incidents[ctx.active_incidents() & (incidents["confidence"] == "high").fillna(False).to_numpy(dtype=bool)]
    current = ctx.current_reports()
    current = current[current["carrier_id"].isin(high["incident_id"]).to_numpy(dtype=bool)]  # the only reports that count here
    read = reports[["source_id", "republished_from", "claimant", "claimant_type"]].take(current["row"].to_numpy())
    counts = originators(read).groupby(current["carrier_id"]).nunique()
    for index in high.index:
        found = int(counts.get(high.at[index, "incident_id"], 0))
        if found < 2:
            yield rule.at_row(ctx, "incidents", index, "confidence", f"high needs two independent originators; the current reports have {found}")
