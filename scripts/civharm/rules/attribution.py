"""Rules: an incident's attribution is what the attribution rule derives from its reports, and its basis agrees."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..attribution import FIELDS, NOT_ATTRIBUTED, UNKNOWN, compute_incident_attribution
from ..findings import Severity
from ..package import positions_in
from . import rows_where, rule, unlike_derived


def _show(value) -> str:
    return "empty" if value is None or pd.isna(value) or value == "" else repr(value)


@rule("attribution/rule-mismatch", Severity.ERROR,
      "An active incident's perpetrator_alleged and alleged_parties equal what the attribution rule derives from its statements.",
      "When sources disagree about who is responsible, the incident must say so; one party picked by hand hides the dispute.", needs=("incidents", "reports"))
def rule_mismatch(ctx, rule):
    incidents, reports = ctx.table("incidents"), ctx.table("reports")
    computed = compute_incident_attribution(incidents, reports, ctx.active_reports())
    checked = incidents.loc[ctx.active_incidents(), ["incident_id", *FIELDS]]
    position = positions_in(checked["incident_id"], computed.index)  # -1 (an empty ID): no reports, so nothing named
    for column, nobody in zip(FIELDS, (UNKNOWN, None)):
        derived = pd.Series(np.append(computed[column].to_numpy(dtype=object), nobody)[position], index=checked.index)
        yield from unlike_derived(ctx, rule, checked, column, derived, _show, "attribution rule")


@rule("attribution/basis-mismatch", Severity.ERROR,
      "An active incident's attribution_basis is not_attributed, alone, exactly when perpetrator_alleged is unknown.",
      "A basis must describe the attribution it qualifies: no basis for a party nobody named, and a named party always has one.", needs=("incidents",))
def basis_mismatch(ctx, rule):
    incidents = ctx.table("incidents")
    active = incidents[ctx.active_incidents()]
    basis, perpetrator = active["attribution_basis"], active["perpetrator_alleged"]
    known = basis.notna() & perpetrator.notna()
    unknown = perpetrator == UNKNOWN
    for index in rows_where(active, known & unknown & (basis != NOT_ATTRIBUTED)):
        yield rule.at_row(ctx, "incidents", index, "attribution_basis",
                          f"perpetrator_alleged is unknown, so the basis is {NOT_ATTRIBUTED!r} alone, not {basis[index]!r}")
    cited = basis.str.contains(rf"(?:^|;){NOT_ATTRIBUTED}(?:;|$)", regex=True)
    for index in rows_where(active, known & ~unknown & cited):
        yield rule.at_row(ctx, "incidents", index, "attribution_basis",
                          f"perpetrator_alleged is {perpetrator[index]!r}, so the basis says who names it; {NOT_ATTRIBUTED!r} does not")
