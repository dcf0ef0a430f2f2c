"""Rule: the top confidence grade needs two independent originators."""
from __future__ import annotations

from ..figures import originators
from ..findings import Severity
from . import rule


@rule("confidence/high-needs-two-originators", Severity.ERROR,
      "Confidence high needs active reports (superseded ones too) from at least two independent originators (following republished_from and claimant).",
      "Five copies of one statement are one source; the top grade promises independent corroboration, which a superseded statement still gives.", needs=("incidents", "reports"))
def high_needs_two_originators(ctx, rule):
    incidents, reports = ctx.table("incidents"), ctx.table("reports")
    high = incidents[ctx.active_incidents() & (incidents["confidence"] == "high").fillna(False).to_numpy(dtype=bool)]
    active = ctx.active_reports()
    active = active[active["carrier_id"].isin(high["incident_id"]).to_numpy(dtype=bool)]  # the only reports that count here
    read = reports[["source_id", "republished_from", "claimant", "claimant_type"]].take(active["row"].to_numpy())
    counts = originators(read).groupby(active["carrier_id"]).nunique()
    for index in high.index:
        found = int(counts.get(high.at[index, "incident_id"], 0))
        if found < 2:
            yield rule.at_row(ctx, "incidents", index, "confidence", f"high needs two independent originators; the active reports have {found}")
