"""Rule: an incident's stored figures are what the figure rule computes from its reports."""
from __future__ import annotations

import pandas as pd

from ..figures import compute_incident_figures
from ..findings import Severity
from ..package import positions_in
from . import rule


def _show(value) -> str:
    return "empty" if pd.isna(value) else str(int(value))


@rule("figures/rule-mismatch", Severity.ERROR, "An active incident's figures equal what the figure rule computes from its statements, unless figures_override_reason is set.",
      "Incident figures must be reproducible from the statements that support them; a hand-edited total cannot be traced.")
def rule_mismatch(ctx, rule):
    incidents, reports = ctx.table("incidents"), ctx.table("reports")
    if incidents is None or reports is None:
        return
    computed = compute_incident_figures(incidents, reports, ctx.active_reports())
    mask = ((incidents["status"] == "active") & incidents["figures_override_reason"].isna()).fillna(False).to_numpy(dtype=bool)
    checked = incidents.loc[mask, ["incident_id", *computed.columns]]  # these columns only: a copy of every cell took seconds
    position = positions_in(checked["incident_id"], computed.index)  # -1 (an empty ID): nothing computed
    for column in computed.columns:
        stored = checked[column]
        wanted = pd.Series(computed[column].array.take(position, allow_fill=True), index=checked.index)
        differs = stored.isna() != wanted.isna()
        differs |= stored.notna() & wanted.notna() & (stored.fillna(0) != wanted.fillna(0))
        for index in checked.index[differs.to_numpy(dtype=bool)]:
            yield rule.at_row(ctx, "incidents", index, column,
                              f"stored {_show(stored[index])}, but the figure rule gives {_show(wanted[index])} from the statements (civharm recompute rewrites it)")
