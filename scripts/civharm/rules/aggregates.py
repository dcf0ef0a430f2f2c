"""Rules on period and running totals (aggregates.csv): periods are ordered, every row can be
traced, a part is not above its whole, running totals do not fall unexplained, and a period
total is not above a running total that covers it."""
from __future__ import annotations

import pandas as pd

from ..figures import bounds, counted
from ..findings import Severity
from . import expectation_rule, in_order, rule, rows_where

TABLE = "aggregates"
FIGURES = ("killed", "injured")
# What makes two rows statements of the same series of totals (one claimant, area, population).
SERIES = ("claimant", "country_code", "subdivision_code", "area", "locality_en", "population")
IMPORT_FIELDS = ("import_file", "import_sha256", "import_key")
# Every count of aggregates.csv, held to TOTAL_CEILING (a total is not an incident: the incident bounds of counts.py do not apply).
TOTALS = {TABLE: FIGURES}
TOTAL_CEILING = 100_000_000  # above the deadliest war on record (the Second World War, commonly put at 70–85 million dead)


def _current(frame: pd.DataFrame) -> pd.DataFrame:
    """Active rows that no later statement replaces: the totals in force."""
    return frame[counted(frame)]


def _in_force(frame: pd.DataFrame, scope: str, dated: str) -> pd.DataFrame:
    """The totals in force of one figures_scope (period or cumulative) whose ``dated`` column is set."""
    current = _current(frame)
    return current[(current["figures_scope"] == scope).fillna(False).to_numpy(dtype=bool) & current[dated].notna().to_numpy(dtype=bool)]


def _ranges(frame: pd.DataFrame, figure: str) -> tuple[pd.Series, pd.Series]:
    """(min, max) of a figure by its qualifier (``figures.bounds``)."""
    return bounds(frame[figure], frame[f"{figure}_qualifier"])


def _series_key(frame: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.Series:
    """One string per row naming its series (missing cells as empty)."""
    columns = frame[list(SERIES + extra)].astype("string").fillna("")
    return columns.agg("\x1f".join, axis=1) if len(columns) else pd.Series([], dtype="string", index=frame.index)


@expectation_rule("aggregates/period-end-before-start", Severity.ERROR, "period_end is on or after period_start.",
                  "A period that ends before it starts cannot be compared with anything; one of the dates is mistyped.")
def period_end_before_start(ctx):
    return [in_order(TABLE, "period_start", "period_end", "period_end",
                     lambda row: f"{row['period_end']:%Y-%m-%d} is before period_start {row['period_start']:%Y-%m-%d}")]


@rule("aggregates/period-without-start", Severity.ERROR, "A period total (figures_scope `period`) states period_start.",
      "A total for a period whose first day is unknown cannot be told from a running total, nor compared with incidents.", needs=(TABLE,))
def period_without_start(ctx, rule):
    frame = ctx.table(TABLE)
    for index in rows_where(frame, (frame["figures_scope"] == "period") & frame["period_start"].isna()):
        yield rule.at_row(ctx, TABLE, index, "period_start", "a period total needs its first day (use figures_scope cumulative for a running total)")


@rule("aggregates/no-provenance", Severity.ERROR, "A total has a page URL, or a complete import record (import_file, import_sha256, import_key).",
      "Every figure must lead back to where it was read: the page, or one version of one record of a data file.", needs=(TABLE,))
def no_provenance(ctx, rule):
    frame = ctx.table(TABLE)
    imported = frame[list(IMPORT_FIELDS)].notna()
    partial = imported.any(axis=1) & ~imported.all(axis=1)
    for index in rows_where(frame, frame["url"].isna() & ~imported.all(axis=1)):
        missing = [f for f in IMPORT_FIELDS if pd.isna(frame.at[index, f])]
        detail = f"the import record lacks {', '.join(missing)}" if partial[index] else "neither a page URL nor an import record"
        yield rule.at_row(ctx, TABLE, index, "url", f"the total cannot be traced: {detail}")


@rule("aggregates/part-above-whole", Severity.ERROR, "A total is not above the total it is part of (part_of): children among civilians.",
      "A narrower population is counted within the wider one; a larger part means a figure is wrong or mis-scoped.", needs=(TABLE,))
def part_above_whole(ctx, rule):
    frame = ctx.table(TABLE)
    if frame.empty:
        return
    linked = frame[frame["part_of"].notna().to_numpy(dtype=bool)]
    wholes = frame.drop_duplicates("aggregate_id").dropna(subset=["aggregate_id"]).set_index("aggregate_id")
    linked = linked[linked["part_of"].isin(wholes.index).to_numpy(dtype=bool)]  # a dangling part_of is a foreign-key error
    for figure in FIGURES:
        low, _ = _ranges(linked, figure)
        _, whole_high = _ranges(wholes, figure)
        above = low.to_numpy() > whole_high.reindex(linked["part_of"]).to_numpy()
        for index in linked.index[pd.array(above, dtype="boolean").fillna(False).to_numpy(dtype=bool)]:
            whole = linked.at[index, "part_of"]
            yield rule.at_row(ctx, TABLE, index, figure,
                              f"{figure} {frame.at[index, figure]} ({frame.at[index, 'population']}) is above {figure} "
                              f"{wholes.at[whole, figure]} ({wholes.at[whole, 'population']}) of {whole}, which it is part of")


@rule("aggregates/cumulative-fell", Severity.ERROR,
      "A running total is not lower than the same claimant's earlier one for the same area and population, unless revision_note says why.",
      "A running total only grows; a fall is a typing error, or a revision that must be stated so that readers do not take it for one.", needs=(TABLE,))
def cumulative_fell(ctx, rule):
    frame = ctx.table(TABLE)
    if frame.empty:
        return
    running = _in_force(frame, "cumulative", "period_end")
    keys = _series_key(running, ("period_start",))
    for figure in FIGURES:
        given = running[running[figure].notna().to_numpy(dtype=bool)]
        low, high = _ranges(given, figure)
        ordered = pd.DataFrame({"key": keys[given.index], "end": given["period_end"], "low": low, "high": high}).sort_values(["key", "end"], kind="stable")
        earlier_low = ordered.groupby("key", sort=False)["low"].shift(1)
        earlier_index = pd.Series(ordered.index, index=ordered.index, dtype="Int64").groupby(ordered["key"], sort=False).shift(1)
        fell = (ordered["high"] < earlier_low).fillna(False) & given.loc[ordered.index, "revision_note"].isna()
        for index in ordered.index[fell.to_numpy(dtype=bool)]:
            before = int(earlier_index[index])
            yield rule.at_row(ctx, TABLE, index, figure,
                              f"{figure} {frame.at[index, figure]} as of {frame.at[index, 'period_end']:%Y-%m-%d} is lower than "
                              f"{frame.at[before, figure]} as of {frame.at[before, 'period_end']:%Y-%m-%d} "
                              f"(line {ctx.package[TABLE].line_of(before)}) with no revision_note")


@rule("aggregates/period-above-cumulative", Severity.ERROR,
      "A period total is not above the same claimant's running total for the same area and population as of the period's end or later.",
      "A running total that covers the whole period includes everything counted in it; a larger period figure means one of them is wrong.", needs=(TABLE,))
def period_above_cumulative(ctx, rule):
    frame = ctx.table(TABLE)
    if frame.empty:
        return
    periods, running = _in_force(frame, "period", "period_start"), _in_force(frame, "cumulative", "period_end")
    if periods.empty or running.empty:
        return
    pairs = pd.DataFrame({"key": _series_key(periods), "p": periods.index}).merge(
        pd.DataFrame({"key": _series_key(running), "c": running.index}), on="key")
    start_c, end_c = frame.loc[pairs["c"], "period_start"].to_numpy(), frame.loc[pairs["c"], "period_end"].to_numpy()
    covers = (pd.isna(start_c) | (start_c <= frame.loc[pairs["p"], "period_start"].to_numpy())) & (end_c >= frame.loc[pairs["p"], "period_end"].to_numpy())
    pairs = pairs.assign(end=end_c)[covers].sort_values(["p", "end"], kind="stable")
    for figure in FIGURES:
        low, _ = _ranges(frame.loc[pairs["p"]], figure)
        _, high = _ranges(frame.loc[pairs["c"]], figure)
        above = pd.array(low.to_numpy() > high.to_numpy(), dtype="boolean").fillna(False).to_numpy(dtype=bool)
        seen = set()
        for period_index, running_index in zip(pairs["p"].to_numpy()[above], pairs["c"].to_numpy()[above]):
            if period_index in seen:
                continue  # one finding per period row and figure: the earliest covering total is named
            seen.add(period_index)
            yield rule.at_row(ctx, TABLE, period_index, figure,
                              f"{figure} {frame.at[period_index, figure]} from {frame.at[period_index, 'period_start']:%Y-%m-%d} to "
                              f"{frame.at[period_index, 'period_end']:%Y-%m-%d} is above the running total {frame.at[running_index, figure]} "
                              f"as of {frame.at[running_index, 'period_end']:%Y-%m-%d} (line {ctx.package[TABLE].line_of(running_index)})")


@rule("aggregates/above-ceiling", Severity.ERROR, f"No total is above {TOTAL_CEILING:,}.",
      "More than the deadliest war on record (the Second World War, commonly put at 70–85 million dead): a typing error. "
      "Totals are held to this bound instead of the incident bounds of counts/above-plausible and counts/above-ceiling.")
def above_ceiling(ctx, rule):
    for table, fields in TOTALS.items():
        frame = ctx.table(table)
        if frame is None:
            continue
        for field in fields:
            for index in rows_where(frame, frame[field] > TOTAL_CEILING):
                yield rule.at_row(ctx, table, index, field, f"{field} {frame.at[index, field]:,} is above {TOTAL_CEILING:,}: more than any war's toll")
