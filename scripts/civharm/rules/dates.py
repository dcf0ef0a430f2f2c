"""Rules on dates: ranges are ordered and match their precision, nothing is in the future,
and a page cannot be published before its incident or read before it was published."""
from __future__ import annotations

import great_expectations as gx
import numpy as np
import pandas as pd

from ..findings import Severity
from ..package import positions_in
from . import Check, expectation_rule, in_order, rule

DATE_FIELDS = {
    "incidents": ["date_start", "date_end", "last_updated"],
    "reports": ["published_date", "accessed_date", "last_updated"],
    "damage": ["last_updated"],
    "sources": ["last_updated"],
    "changes": ["change_date"],
}


def _not_before(table: str, later: str, earlier: str) -> Check:
    """Expect ``later`` on or after ``earlier`` where both are set."""
    return in_order(table, earlier, later, later, lambda row: f"{row[later]:%Y-%m-%d} is before {earlier} {row[earlier]:%Y-%m-%d}")


@expectation_rule("dates/end-before-start", Severity.ERROR, "date_end is on or after date_start.",
                  "An interval that ends before it starts makes the incident undatable.")
def end_before_start(ctx):
    return [_not_before("incidents", "date_end", "date_start")]


@expectation_rule("dates/in-future", Severity.ERROR, "No date is after today (set by --today or CIVHARM_TODAY).",
                  "A date in the future is a typing error (a swapped day and month, a wrong year).")
def in_future(ctx):
    today = pd.Timestamp(ctx.today)
    checks = []
    for table, fields in DATE_FIELDS.items():
        for name in fields:
            checks.append(Check(table, name, gx.expectations.ExpectColumnValuesToBeBetween(column=name, max_value=today),
                                lambda row, name=name: f"{row[name]:%Y-%m-%d} is after today ({ctx.today:%Y-%m-%d})"))
    return checks


def _period_end(start: pd.Series, precision: pd.Series) -> pd.Series:
    month_end = start + pd.offsets.MonthEnd(0)
    year_end = start + pd.offsets.YearEnd(0)
    return start.where(precision == "day", month_end.where(precision == "month", year_end))


@rule("dates/precision-mismatch", Severity.ERROR, "date_start and date_end span exactly the stated precision (a day, a calendar month, a calendar year); a range spans more than one day.",
      "A month-precision date stored as one day would be counted as a precise date; coarse dates are intervals.")
def precision_mismatch(ctx, rule):
    frame = ctx.table("incidents")
    if frame is None or frame.empty:
        return
    start, end, precision = frame["date_start"], frame["date_end"], frame["date_precision"]
    ranged = (precision == "range").fillna(False)
    expected_start = start.where(precision == "day", start.where(precision != "month", start.dt.to_period("M").dt.start_time))
    expected_start = expected_start.where(precision != "year", start.dt.to_period("Y").dt.start_time)
    expected_end = _period_end(expected_start, precision).where(~ranged, end)  # a range is what the sources allow
    bad = start.notna() & end.notna() & precision.notna() & ((start != expected_start) | (end != expected_end) | (ranged & (end <= start)))
    for index in frame.index[bad.to_numpy(dtype=bool)]:
        if ranged[index]:
            yield rule.at_row(ctx, "incidents", index, "date_end", f"range precision needs date_end after date_start ({start[index]:%Y-%m-%d}); "
                                                                   "one day is day precision")
            continue
        yield rule.at_row(ctx, "incidents", index, "date_end",
                          f"{precision[index]} precision needs {expected_start[index]:%Y-%m-%d} to {expected_end[index]:%Y-%m-%d}, "
                          f"not {start[index]:%Y-%m-%d} to {end[index]:%Y-%m-%d}")


@rule("dates/published-before-incident", Severity.ERROR, "A report is not published before its incident starts.",
      "A page cannot report an event that had not happened yet; the report is attached to the wrong incident or a date is wrong.")
def published_before_incident(ctx, rule):
    reports, incidents = ctx.table("reports"), ctx.table("incidents")
    if reports is None or incidents is None or reports.empty or incidents.empty:
        return
    starts = incidents[["incident_id", "date_start"]].drop_duplicates("incident_id")
    position = positions_in(reports["incident_id"], starts["incident_id"])
    incident_start = pd.Series(np.append(starts["date_start"].to_numpy(), np.datetime64("NaT"))[position], index=reports.index)  # -1: unknown incident
    published_end = _period_end(reports["published_date"], reports["published_precision"])
    bad = published_end.notna() & incident_start.notna() & (published_end < incident_start)
    for index in reports.index[bad.to_numpy(dtype=bool)]:
        yield rule.at_row(ctx, "reports", index, "published_date",
                          f"{reports.at[index, 'published_date']:%Y-%m-%d} is before its incident {reports.at[index, 'incident_id']} starts ({incident_start[index]:%Y-%m-%d})")


@expectation_rule("dates/accessed-before-published", Severity.ERROR, "A report is not accessed before it was published.",
                  "The access date records when the page was read; it cannot precede the page.")
def accessed_before_published(ctx):
    return [_not_before("reports", "accessed_date", "published_date")]


@rule("dates/as-of-format", Severity.ERROR, "as_of is a real date (and time) not after today.",
      "The as-of moment orders statements (superseded_by) and identifies a repeated statement.")
def as_of_format(ctx, rule):
    frame = ctx.table("reports")
    if frame is None:
        return
    raw = frame["as_of"]
    parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce")
    for index in frame.index[(raw.notna() & parsed.isna()).to_numpy(dtype=bool)]:
        yield rule.at_row(ctx, "reports", index, "as_of", f"{raw[index]!r} is not a real date or date and time")
    late = parsed.notna() & (parsed.dt.normalize() > pd.Timestamp(ctx.today))
    for index in frame.index[late.to_numpy(dtype=bool)]:
        yield rule.at_row(ctx, "reports", index, "as_of", f"{raw[index]} is after today ({ctx.today:%Y-%m-%d})")
