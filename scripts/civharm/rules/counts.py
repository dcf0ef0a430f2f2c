"""Rules on figures: ranges are ordered, children are among civilians, civilians among all."""
from __future__ import annotations

from ..figures import FIGURES
from ..findings import Severity
from . import Check, expectation_rule, in_order, rule


def _pair(table: str, a: str, b: str, what: str) -> Check:
    """Expect column a <= column b where both are set."""
    return in_order(table, a, b, a, lambda row: f"{a} {row[a]} is greater than {b} {row[b]}: {what}")


@expectation_rule("counts/min-above-max", Severity.ERROR, "Every min is at most its max.",
                  "A range whose lower bound exceeds its upper bound cannot be read and hides a typing error.")
def min_above_max(ctx):
    return [_pair("incidents", f"{f}_min", f"{f}_max", "a range's minimum cannot exceed its maximum") for f in FIGURES]


@expectation_rule("counts/children-above-civilians", Severity.ERROR,
                  "Children killed/injured are at most civilians killed/injured (incidents and reports).",
                  "Children are counted among the civilians; more children than civilians means one figure is wrong or mis-scoped.")
def children_above_civilians(ctx):
    return _within("children", "civilians", "children are counted among civilians")


@expectation_rule("counts/civilians-above-all", Severity.ERROR,
                  "Civilians killed/injured are at most the all-status figure when both are given.",
                  "The all-status figure includes civilians; a smaller one means a figure was put in the wrong column.")
def civilians_above_all(ctx):
    return _within("civilians", "all", "the all-status figure includes civilians")


def _within(part: str, whole: str, why: str) -> list[Check]:
    """``part`` ≤ ``whole`` for killed and injured: incident min and max, and each report's value."""
    checks = []
    for harm in ("killed", "injured"):
        for bound in ("min", "max"):
            checks.append(_pair("incidents", f"{part}_{harm}_{bound}", f"{whole}_{harm}_{bound}", why))
        checks.append(_pair("reports", f"{part}_{harm}", f"{whole}_{harm}", why))
    return checks


def _value_qualifier_pairs():
    yield "reports", [(f, f"{f}_qualifier") for f in FIGURES]
    yield "damage", [("count", "count_qualifier")]
    yield "aggregates", [(f, f"{f}_qualifier") for f in ("killed", "injured")]


@rule("counts/qualifier-mismatch", Severity.ERROR, "A figure has a qualifier exactly when it has a value.",
      "Without its qualifier a figure cannot be mapped to min–max ('at least 3' is not 3); a qualifier without a value is a lost figure.")
def qualifier_mismatch(ctx, rule):
    for table, pairs in _value_qualifier_pairs():
        frame = ctx.table(table)
        if frame is None:
            continue
        for value, qualifier in pairs:
            missing_qualifier = frame[value].notna() & frame[qualifier].isna()
            missing_value = frame[value].isna() & frame[qualifier].notna()
            for index in frame.index[missing_qualifier.to_numpy(dtype=bool)]:
                yield rule.at_row(ctx, table, index, qualifier, f"{value} is {frame.at[index, value]} but has no qualifier (exact, at_least, more_than, about, up_to)")
            for index in frame.index[missing_value.to_numpy(dtype=bool)]:
                yield rule.at_row(ctx, table, index, value, f"{qualifier} is {frame.at[index, qualifier]!s} but {value} is empty")
