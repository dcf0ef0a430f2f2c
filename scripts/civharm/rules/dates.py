"""Rules on dates: ranges are ordered, match their precision and span at most a leap year, nothing is in the future,
a page cannot be published before its incident or read before it was published, and an
incident's date basis is one its reports can support (the date rule, ``BASIS_RULE_TEXT``)."""
from __future__ import annotations

import great_expectations as gx
import numpy as np
import pandas as pd

from ..findings import Severity
from ..package import EARLIEST_DAY, MAX_SPAN_DAYS, among, arrow_text, outside_days, outside_message, positions_in
from . import Check, expectation_rule, in_order, rows_where, rule

BASIS_RULE_TEXT = """\
Every incident's date is obtained in one of the ways listed under `incidents.date_basis`, and
`date_basis` names it. Decide from the words of the page itself, never from outside knowledge:

1. The page writes the full date, year included: `stated`.
2. The page states a relative day ("yesterday", "on Saturday", "last night") and its own
   publication day: count from that day, `relative_to_publication`.
3. The page says the incident happened on the day it reports from ("today", "this morning",
   the first of two shellings "in a day") and that day is known (its stated publication day,
   or a day its own words fix): that day, `day_of_report`.
4. The page states the day and month, or the month, without the year, and its own words give
   the year (its publication date, a dated title or period, "last year"): `year_from_page`.
5. When two steps were needed, the basis names the one that fixed the day (2 or 3) rather than
   the one that fixed the year.
6. Otherwise the page gives no date for the incident: coarser precision when the page states
   only the month or year, or the page is left out. The day a page was published or a statement
   was reported is not the day of the incident unless the page says so (3).

`civharm validate` checks what the reports can show (`dates/basis-unsupported`):
`relative_to_publication` needs a current report with a stated publication day from the
incident's first day to 7 days after its last (a month or a year later at month or year
precision); `day_of_report` needs day precision and a current report whose `as_of` day or
stated publication day is the incident's day; `year_from_page` needs a current report
published in the incident's year or the next one, when any current report states its
publication date."""

# The values of date_basis (declared in schema/incidents.json) whose support the reports can show; others are not checked.
CHECKED_BASES = ("relative_to_publication", "day_of_report", "year_from_page")
# How far after an incident's last day a page can still date it by a relative day, by date precision.
RELATIVE_REACH = {"day": pd.DateOffset(days=7), "month": pd.DateOffset(months=1), "year": pd.DateOffset(years=1)}

DATE_FIELDS = {
    "incidents": ["date_start", "date_end", "last_updated"],
    "reports": ["published_date", "accessed_date", "last_updated"],
    "damage": ["last_updated"],
    "aggregates": ["period_start", "period_end", "published_date", "accessed_date", "last_updated"],
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


@rule("dates/span-too-long", Severity.ERROR, f"An incident's dates span at most {MAX_SPAN_DAYS} days, date_start to date_end counted inclusive.",
      "An incident is one event, dated at worst to a calendar year (366 days in a leap year); a longer interval is a mistyped "
      "day or year, and the duplicate gate would compare it day by day.", needs=("incidents",))
def span_too_long(ctx, rule):
    frame = ctx.table("incidents")
    start, end = frame["date_start"], frame["date_end"]
    days = (end - start).dt.days + 1
    for index in rows_where(frame, days > MAX_SPAN_DAYS):
        yield rule.at_row(ctx, "incidents", index, "date_end", f"{start[index]:%Y-%m-%d} to {end[index]:%Y-%m-%d} spans {int(days[index]):,} days; "
                                                               f"one incident's dates span at most {MAX_SPAN_DAYS}")


def _period_end(start: pd.Series, precision: pd.Series) -> pd.Series:
    month_end = start + pd.offsets.MonthEnd(0)
    year_end = start + pd.offsets.YearEnd(0)
    return start.where(precision == "day", month_end.where(precision == "month", year_end))


@rule("dates/precision-mismatch", Severity.ERROR, "date_start and date_end span exactly the stated precision (a day, a calendar month, a calendar year); a range spans more than one day.",
      "A month-precision date stored as one day would be counted as a precise date; coarse dates are intervals.", needs=("incidents",))
def precision_mismatch(ctx, rule):
    frame = ctx.table("incidents")
    if frame.empty:
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
      "A page cannot report an event that had not happened yet; the report is attached to the wrong incident or a date is wrong.", needs=("reports", "incidents"))
def published_before_incident(ctx, rule):
    reports, incidents = ctx.table("reports"), ctx.table("incidents")
    if reports.empty or incidents.empty:
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


@rule("dates/as-of-format", Severity.ERROR, f"as_of is a real date (and time), not before {EARLIEST_DAY} and not after today.",
      "The as-of moment orders statements (superseded_by) and identifies a repeated statement.", needs=("reports",))
def as_of_format(ctx, rule):
    frame = ctx.table("reports")
    from ..figures import as_of_span

    raw = frame["as_of"]
    outside = pd.Series(outside_days(arrow_text(raw)), index=frame.index)
    for index in rows_where(frame, outside):
        yield rule.at_row(ctx, "reports", index, "as_of", outside_message(raw[index]))
    parsed = pd.Series(as_of_span(raw)[0], index=frame.index)  # the reader that orders statements (NaT outside the days): one reading of as_of
    for index in frame.index[(raw.notna() & parsed.isna() & ~outside).to_numpy(dtype=bool)]:
        yield rule.at_row(ctx, "reports", index, "as_of", f"{raw[index]!r} is not a real date or date and time")
    late = parsed.notna() & (parsed.dt.normalize() > pd.Timestamp(ctx.today))
    for index in frame.index[late.to_numpy(dtype=bool)]:
        yield rule.at_row(ctx, "reports", index, "as_of", f"{raw[index]} is after today ({ctx.today:%Y-%m-%d})")


def _report_days(ctx) -> pd.DataFrame:
    """Per current report: the incident it counts toward, its stated publication date and precision, and its as_of day."""
    reports, current = ctx.table("reports"), ctx.current_reports()
    read = reports[["published_date", "published_precision", "as_of"]].take(current["row"].to_numpy())
    return pd.DataFrame({
        "carrier": current["carrier_id"].to_numpy(dtype=object, na_value=None),
        "published": read["published_date"].to_numpy(),
        "precision": read["published_precision"].to_numpy(dtype=object, na_value=None),
        "as_of": pd.to_datetime(read["as_of"].where(~outside_days(arrow_text(read["as_of"]))).str.slice(0, 10), format="%Y-%m-%d",
                                errors="coerce").to_numpy(),  # its day (a month-only as_of names none)
    })


def _supported(incidents: pd.DataFrame, days: pd.DataFrame) -> dict[str, pd.Series]:
    """For each checkable basis, whether some current report of each incident supports it (indexed like ``incidents``).

    An incident with no current report passes: ``links/no-current-report`` reports it, once.
    """
    found = incidents[["incident_id", "date_start", "date_end", "date_precision"]].drop_duplicates("incident_id")
    position = positions_in(days["carrier"], found["incident_id"])
    kept = position[position >= 0]  # -1: a report whose incident is missing (a foreign-key error, reported elsewhere)
    days = days[position >= 0].assign(date_start=found["date_start"].to_numpy()[kept], date_end=found["date_end"].to_numpy()[kept],
                                      date_precision=found["date_precision"].to_numpy(dtype=object, na_value=None)[kept])
    reach = pd.Series(pd.NaT, index=days.index, dtype="datetime64[ns]")
    for precision, offset in RELATIVE_REACH.items():
        chosen = (days["date_precision"] == precision).to_numpy(dtype=bool)
        reach[chosen] = days.loc[chosen, "date_end"] + offset
    stated_day = days["precision"] == "day"
    per_report = {
        "relative_to_publication": stated_day & (days["published"] >= days["date_start"]) & (days["published"] <= reach),
        "day_of_report": (days["date_precision"] == "day") & ((days["as_of"] == days["date_start"]) | (stated_day & (days["published"] == days["date_start"]))),
        "year_from_page": days["published"].dt.year.sub(days["date_start"].dt.year).isin([0, 1])
                          | (days["published"].isna() & ~among(days["carrier"], days.loc[days["published"].notna(), "carrier"])),
    }
    reported = among(incidents["incident_id"], days["carrier"])
    out = {}
    for basis in CHECKED_BASES:
        carriers = days.loc[per_report[basis].fillna(False).to_numpy(dtype=bool), "carrier"]
        out[basis] = pd.Series(among(incidents["incident_id"], carriers) | ~reported, index=incidents.index)  # no current report: links/no-current-report says so
    return out


def _basis_problem(basis: str, row: pd.Series) -> str:
    """Why the reports do not support ``basis`` for this incident (row of the incidents table)."""
    start, end, precision = row["date_start"], row["date_end"], row["date_precision"]
    if basis == "relative_to_publication":
        last = end + RELATIVE_REACH.get(precision, RELATIVE_REACH["day"])
        return (f"relative_to_publication needs a current report with a stated publication day from {start:%Y-%m-%d} to {last:%Y-%m-%d}, "
                "the reach of a relative day; none has one")
    if basis == "day_of_report":
        if precision != "day":
            return f"day_of_report gives the incident a day, so date_precision must be day, not {precision}"
        return f"day_of_report needs a current report whose as_of day or stated publication day is {start:%Y-%m-%d}; none is"
    return f"year_from_page needs the year {start.year} to follow from the page, but no current report is published in {start.year} or {start.year + 1}"


@rule("dates/basis-unsupported", Severity.ERROR, "An active incident's date_basis is one its current reports can support (see the date rule).",
      "A date derived from a page must be derivable from that page; a publication or report day is not the incident's day unless the page says so.", needs=("incidents", "reports"))
def basis_unsupported(ctx, rule):
    incidents = ctx.table("incidents")
    if incidents.empty:
        return
    supported = _supported(incidents, _report_days(ctx))
    active = pd.Series(ctx.active_incidents(), index=incidents.index) & incidents["date_start"].notna() & incidents["date_end"].notna()
    for basis, ok in supported.items():
        for index in rows_where(incidents, active & (incidents["date_basis"] == basis) & ~ok):
            yield rule.at_row(ctx, "incidents", index, "date_basis", _basis_problem(basis, incidents.loc[index]))
