"""Rules: an incident's stored figures are what the figure rule computes from its reports; a report's derived figures are marked and explained."""
from __future__ import annotations

import pandas as pd

from ..figures import FIGURES, compute_incident_figures
from ..findings import Severity, json_pointer
from ..package import DESCRIPTOR, positions_in
from . import rule, unlike_derived


def _show(value) -> str:
    return "empty" if pd.isna(value) else str(int(value))


@rule("figures/rule-mismatch", Severity.ERROR, "An active incident's figures equal what the figure rule computes from its statements, unless figures_override_reason is set.",
      "Incident figures must be reproducible from the statements that support them; a hand-edited total cannot be traced.", needs=("incidents", "reports"))
def rule_mismatch(ctx, rule):
    incidents, reports = ctx.table("incidents"), ctx.table("reports")
    computed = compute_incident_figures(incidents, reports, ctx.active_reports())
    mask = ctx.active_incidents() & incidents["figures_override_reason"].isna().to_numpy(dtype=bool)
    checked = incidents.loc[mask, ["incident_id", *computed.columns]]  # these columns only, not a copy of every cell
    position = positions_in(checked["incident_id"], computed.index)  # -1 (an empty ID): nothing computed
    for column in computed.columns:
        derived = pd.Series(computed[column].array.take(position, allow_fill=True), index=checked.index)
        yield from unlike_derived(ctx, rule, checked, column, derived, _show, "figure rule")


DERIVED = "figures_derived"


def _derived_markers(ctx):
    """(index, [markers]) of every report row whose figures_derived is set."""
    reports = ctx.table("reports")
    if reports is None or DERIVED not in reports.columns:
        return
    for index, cell in reports[DERIVED].dropna().items():
        yield index, [part.strip() for part in str(cell).split(";")]


@rule("figures/derived-not-stated", Severity.ERROR,
      "Each marker in a report's figures_derived names a figure column (one of the figure rule's figures) that the row states.",
      "The marker tells verify-sources not to look for a figure on the page; a marker on an empty or unknown column "
      "explains nothing and would silence the check of the figure someone meant.")
def derived_not_stated(ctx, rule):
    reports = ctx.table("reports")
    for index, markers in _derived_markers(ctx):
        for marker in dict.fromkeys(markers):
            if marker not in FIGURES:
                yield rule.at_row(ctx, "reports", index, DERIVED,
                                  f"{marker!r} is not a figure column; figures_derived lists some of {', '.join(FIGURES)}")
            elif marker not in reports.columns or pd.isna(reports.at[index, marker]):
                yield rule.at_row(ctx, "reports", index, DERIVED, f"lists {marker} as derived, but the row states no {marker}")


@rule("figures/derived-unexplained", Severity.ERROR,
      "A report with figures_derived says in notes how those figures were derived.",
      "A derived figure is our inference from the page's words (a list of people counted, two stated numbers added); "
      "without its reasoning a reader cannot check it against the page.")
def derived_unexplained(ctx, rule):
    reports = ctx.table("reports")
    for index, markers in _derived_markers(ctx):
        note = reports.at[index, "notes"] if "notes" in reports.columns else None
        if note is None or pd.isna(note) or not str(note).strip():
            yield rule.at_row(ctx, "reports", index, "notes",
                              f"figures_derived lists {', '.join(markers)}, but notes do not say how they were derived")


@rule("figures/derived-vocabulary", Severity.ERROR,
      "The values allowed in reports.figures_derived (its civharm:definitions) are exactly the figure columns of the figure rule.",
      "The figure columns are declared once (civharm.figures.FIGURES); a vocabulary that drifts from them would allow a "
      "marker no figure answers to, or forbid marking a figure that is derived.")
def derived_vocabulary(ctx, rule):
    resource = ctx.package.get("reports")
    if resource is None or not resource.schema:
        return
    fields = resource.schema.get("fields")
    for position, spec in enumerate(fields if isinstance(fields, list) else []):
        if not isinstance(spec, dict) or spec.get("name") != DERIVED:
            continue
        definitions = spec.get("civharm:definitions")
        declared = list(definitions) if isinstance(definitions, dict) else []
        file = resource.schema_path or DESCRIPTOR
        pointer = json_pointer(*(() if resource.schema_path else ("resources", _resource_position(ctx, resource))),
                               *(() if resource.schema_path else ("schema",)), "fields", position, "civharm:definitions")
        extra = [value for value in declared if value not in FIGURES]
        missing = [figure for figure in FIGURES if figure not in declared]
        if extra or missing:
            said = "; ".join(filter(None, (f"lists {', '.join(map(repr, extra))}, not a figure column" if extra else "",
                                           f"lacks {', '.join(missing)}" if missing else "")))
            yield rule.finding(file, None, DERIVED, f"the figures_derived vocabulary {said}; it must be exactly {', '.join(FIGURES)}",
                               pointer=pointer)


def _resource_position(ctx, resource) -> int:
    return next((i for i, name in enumerate(ctx.package.resources) if name == resource.name), 0)
