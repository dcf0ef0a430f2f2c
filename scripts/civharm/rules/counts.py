"""Rules on figures: ranges are ordered, children are among civilians, civilians among all, and no count is implausibly large."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..figures import FIGURES, bounds
from ..findings import Severity
from . import Check, expectation_rule, in_order, rows_where, rule

HARMS = ("killed", "injured")

# Every count of people or objects, by table: the bounds below apply to each.
COUNTS = {"incidents": tuple(f"{f}_{bound}" for f in FIGURES for bound in ("min", "max")), "reports": FIGURES, "damage": ("count",)}
PLAUSIBLE_MAX = 10_000  # above it, a warning: more than almost any single incident on record
CEILING = 1_000_000  # above it, an error: no incident comes near it

BOUNDS_TEXT = f"""\
Every count (the incidents' `*_min` and `*_max` figures, the reports' figures and `damage.count`)
is held to two bounds. A count above **{PLAUSIBLE_MAX:,}** gives a warning
(`counts/above-plausible`); a count above **{CEILING:,}** is an error (`counts/above-ceiling`).

Why these numbers. An incident is one event at one place and time, not a total for a city, a
region or a period. The deadliest single events of war on record are the atomic bombing of
Hiroshima (6 August 1945: commonly put at 70,000–80,000 killed at once and 90,000–166,000 by the
end of that year) and the firebombing of Tokyo on the night of 9–10 March 1945 (about
80,000–100,000 killed, more than a quarter of a million buildings destroyed). In most conflicts
of recent decades the deadliest single incidents are counted in hundreds or a few thousand: the
chemical attack on Halabja in March 1988 killed some 3,000–5,000 people, the Srebrenica massacre
of July 1995 about 8,000 over several days.

- Above {PLAUSIBLE_MAX:,} a count puts the incident among the very few deadliest events since 1945
  (some massacres at one site, such as several of the 1994 genocide in Rwanda, reached such
  tolls). Far more often it is a total for a city, a region or a period entered as one incident,
  or a typing error (a zero too many); so a person checks it, and the record stays valid.
- Above {CEILING:,} a count is several times the deadliest single event on record, and more than
  the whole civilian toll of most wars since 1945 (the UN estimated about 307,000 civilians killed
  in Syria from 2011 to 2021). Figures of that size exist only as totals for whole wars, the
  largest of which (the Second World War) reach tens of millions: never an incident's figure."""


def _pair(table: str, a: str, b: str, what: str) -> Check:
    """Expect column a <= column b where both are set."""
    return in_order(table, a, b, a, lambda row: f"{a} {row[a]} is greater than {b} {row[b]}: {what}")


@expectation_rule("counts/min-above-max", Severity.ERROR, "Every min is at most its max.",
                  "A range whose lower bound exceeds its upper bound cannot be read and hides a typing error.")
def min_above_max(ctx):
    return [_pair("incidents", f"{f}_min", f"{f}_max", "a range's minimum cannot exceed its maximum") for f in FIGURES]


@rule("counts/children-above-civilians", Severity.ERROR,
      "Children killed/injured are not above civilians killed/injured: within one statement, within one originator's statements, and in hand-set incident figures; compared as ranges.",
      "Children are counted among the civilians; more children than civilians from one claimant means one figure is wrong or mis-scoped.")
def children_above_civilians(ctx, rule):
    yield from _within(ctx, rule, "children", "civilians", "children are counted among civilians")


@rule("counts/civilians-above-all", Severity.ERROR,
      "Civilians killed/injured are not above the all-status figure: within one statement, within one originator's statements, and in hand-set incident figures; compared as ranges.",
      "The all-status figure includes civilians; a smaller one from the same claimant means a figure was put in the wrong column. "
      "Two claimants may disagree (one says 25 civilians, another 21 people): that is a range, not an error.")
def civilians_above_all(ctx, rule):
    yield from _within(ctx, rule, "civilians", "all", "the all-status figure includes civilians", HARMS + ("casualties",))


@rule("counts/split-above-casualties", Severity.ERROR,
      "Killed or injured are not above the combined toll (casualties) of the same status: within one statement, within one originator's statements, and in hand-set incident figures; compared as ranges.",
      "A combined toll counts the killed and the injured; a larger part from the same claimant means a figure was put in the wrong column.")
def split_above_casualties(ctx, rule):
    for status in ("civilians", "all"):
        for harm in HARMS:
            yield from _within(ctx, rule, f"{status}_{harm}", f"{status}_casualties", "the combined toll counts the killed and the injured", ("",))
    for key in SIDES:  # the last of the three rules that share them (registered in this order): memory for the rules after
        ctx.memo.pop(key, None)


def _stated(reports: pd.DataFrame, figure: str, rows: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """The stated ranges (low, high) of ``figure`` for these report positions: open ends are missing."""
    return bounds(reports[figure].take(rows), reports[f"{figure}_qualifier"].take(rows))


def _said(reports: pd.DataFrame, figure: str, index) -> str:
    qualifier = reports.at[index, f"{figure}_qualifier"]
    return f"{figure} {reports.at[index, figure]}" + (f" ({qualifier})" if pd.notna(qualifier) and qualifier != "exact" else "")


def _within(ctx, rule, part: str, whole: str, why: str, harms: tuple[str, ...] = HARMS):
    """``part`` ≤ ``whole`` for killed and injured, as ranges: a part whose lowest value is above the whole's highest.

    Per statement; per originator on an incident (each figure from the originator's statements
    that count for it by the figure rule); and, for incidents whose figures are set by hand
    (``figures_override_reason``), min ≤ min and max ≤ max. Figures of different originators
    are never compared: they are claims side by side.
    """
    incidents, reports, active = ctx.table("incidents"), ctx.table("reports"), ctx.active_reports()
    for harm in harms:
        small, large = (f"{part}_{harm}", f"{whole}_{harm}") if harm else (part, whole)
        if reports is not None:
            both = rows_where(reports, reports[small].notna() & reports[large].notna())
            if len(both):
                rows = reports.index.get_indexer(both)
                low, _ = _stated(reports, small, rows)
                _, high = _stated(reports, large, rows)
                above = (low.notna() & high.notna() & (low > high)).to_numpy(dtype=bool)
                for index in both[above]:
                    yield rule.at_row(ctx, "reports", index, small, f"{_said(reports, small, index)} is greater than {_said(reports, large, index)}: {why}")
        if reports is not None and active is not None and not active.empty:
            yield from _per_originator(ctx, rule, reports, active, small, large, why)
        if incidents is not None:
            hand_set = incidents[(incidents["figures_override_reason"].notna()).fillna(False).to_numpy(dtype=bool)]
            for bound in ("max", "min"):
                a, b = f"{small}_{bound}", f"{large}_{bound}"
                for index in rows_where(hand_set, hand_set[a] > hand_set[b]):
                    yield rule.at_row(ctx, "incidents", index, a, f"{a} {hand_set.at[index, a]} is greater than {b} {hand_set.at[index, b]}: {why}")


SIDES = ("counted-sides", "successors", "originators", "carriers")  # what the three rules above share in ctx.memo


def _counted_side(ctx, reports, active, figure: str) -> pd.DataFrame:
    """The statements whose ``figure`` counts by the figure rule, with incident, originator and stated range; once per run."""
    from ..figures import counting, originators, successors

    memo = ctx.memo.setdefault(SIDES[0], {})
    if figure not in memo:
        if "successors" not in ctx.memo:  # shared by every figure: who supersedes whom, and every report's originator
            ctx.memo["successors"] = successors(reports)
            ctx.memo["originators"] = originators(reports).to_numpy(dtype=object)
            ctx.memo["carriers"] = pd.Series(active["carrier_id"].to_numpy(dtype=object), index=active["row"].to_numpy())
        rows = counting(reports, active, figure, ctx.memo["successors"])
        low, high = _stated(reports, figure, rows)
        memo[figure] = pd.DataFrame({"carrier": ctx.memo["carriers"].reindex(rows).to_numpy(dtype=object), "origin": ctx.memo["originators"][rows],
                                     "low": low.to_numpy(dtype="float64", na_value=np.nan), "high": high.to_numpy(dtype="float64", na_value=np.nan),
                                     "index": reports.index[rows]})
    return memo[figure]


def _per_originator(ctx, rule, reports, active, small: str, large: str, why: str):
    """One originator's counted ``small`` range against its counted ``large`` range on one incident."""
    sides = [_counted_side(ctx, reports, active, figure) for figure in (small, large)]
    parts, wholes = sides
    if parts.empty or wholes.empty:
        return
    # the whole's highest value per originator: open when any of its counted statements is open
    ceiling = wholes.assign(open=wholes["high"].isna()).groupby(["carrier", "origin"]).agg(
        high=("high", "max"), open=("open", "any"), whole=("index", "first"))
    ceiling["high"] = ceiling["high"].mask(ceiling["open"])
    joined = parts.join(ceiling, on=["carrier", "origin"], rsuffix="_whole").dropna(subset=["low", "high_whole"])
    joined = joined[(joined["low"] > joined["high_whole"]) & (joined["index"] != joined["whole"])]  # one statement: reported above
    for index, whole in sorted(zip(joined["index"], joined["whole"])):
        yield rule.at_row(ctx, "reports", index, small,
                          f"{_said(reports, small, index)} is greater than {_said(reports, large, whole)} that the same originator states in "
                          f"{reports.at[whole, 'report_id']}: {why}")


def _value_qualifier_pairs():
    for table in ("reports", "damage"):
        yield table, [(f, f"{f}_qualifier") for f in COUNTS[table]]
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


@rule("counts/above-plausible", Severity.WARNING, f"No count is above {PLAUSIBLE_MAX:,} (see the plausibility bounds).",
      "More than almost any single incident on record: usually a total for a period or an area, or a zero too many.")
def above_plausible(ctx, rule):
    yield from _above(ctx, rule, PLAUSIBLE_MAX, CEILING, "more than almost any single incident on record; "
                      "check that it is one incident's figure, not a total for a period or an area")


@rule("counts/above-ceiling", Severity.ERROR, f"No count is above {CEILING:,} (see the plausibility bounds).",
      "Several times the deadliest single event on record: a typing error or a whole war's total, never an incident's figure.")
def above_ceiling(ctx, rule):
    yield from _above(ctx, rule, CEILING, None, "no single incident comes near it; a typing error, or a whole war's total")


def _above(ctx, rule, low: int, high: int | None, why: str):
    """Counts above ``low`` (and at most ``high``), each found once: above the ceiling it is not also a warning."""
    for table, fields in COUNTS.items():
        frame = ctx.table(table)
        if frame is None:
            continue
        for field in fields:
            column = frame[field]
            above = column > low if high is None else (column > low) & (column <= high)
            for index in rows_where(frame, above):
                yield rule.at_row(ctx, table, index, field, f"{field} {column.at[index]:,} is above {low:,}: {why}")
