"""The figure rule: how an incident's min–max figures follow from its statements (active reports).

Declared once here; the codebook prints ``RULE_TEXT``, the ``figures/rule-mismatch`` check
and ``civharm build`` both call ``compute_incident_figures``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .package import arrow_text, outside_days, positions_in

# The status of a row that counts (the others: merged, retracted): declared once for every stage.
ACTIVE = "active"


def active(frame: pd.DataFrame) -> np.ndarray:
    """Which rows have status ``active`` (a missing status is not); a table without a status column: every row."""
    if "status" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return (frame["status"] == ACTIVE).fillna(False).to_numpy(dtype=bool)


def counted(frame: pd.DataFrame) -> np.ndarray:
    """Which rows people count: ``active`` and not superseded by a later row (where the table has ``superseded_by``).

    The same rows as the SQLite views ``active_incidents`` and ``current_reports`` of a build.
    """
    mask = active(frame)
    if "superseded_by" in frame.columns:
        mask &= frame["superseded_by"].isna().to_numpy(dtype=bool)
    return mask


FIGURES = ("civilians_killed", "civilians_injured", "children_killed", "children_injured", "all_killed", "all_injured",
           "civilians_casualties", "all_casualties")  # casualties: a combined toll when the statement gives no split

RULE_TEXT = """\
For each figure (civilians killed, civilians injured, children killed, children injured,
killed/injured of all or unknown status, and the combined tolls "civilians killed or injured"
and "people killed or injured" that a statement gives when it does not split them):

1. Take the incident's **statements**: reports with status `active` whose `incident_id` is the
   incident itself or an incident that was merged into it (merging moves nothing: a merged
   incident's reports count toward the incident it was merged into).
2. **Supersession, per figure.** A statement's figure counts unless a later statement in its
   `superseded_by` chain states that same figure (an active one: a retracted statement
   supersedes nothing). `superseded_by` always links statements of **the same originator**
   (the claimant, or for an outlet speaking in its own voice the outlet it is or copies; see
   below), so each originator is counted by its latest statement that gives the figure: a
   later statement that says nothing about children leaves the earlier children figure in
   force. Statements of different originators never supersede each other; they stand side by
   side and their disagreement is the range.
3. Keep those that count for the figure, and turn each stated value into a range by its qualifier:
   `exact` and `about` N → N–N; `at_least` N → N–(open); `more_than` N → N+1–(open);
   `up_to` N → (open)–N.
4. The incident's **min** is the lowest of those minimums; its **max** is the highest of those
   maximums when every one of them states a maximum, and empty (open) otherwise.
5. No statement counts for the figure → both stay empty (unknown, never 0).

**Originator.** A governor quoted by five outlets is one originator (the claimant, compared
case-insensitively); a wire story republished by five sites is one originator
(`republished_from`); two outlets reporting in their own voice (`claimant_type`
`media_outlet`) are two.

**Order of statements.** `as_of` is a month, a day, or a day and a time (`YYYY-MM-DDTHH:MM`);
each stands for the span it names (a whole month, a whole day, one minute). A statement is
*later* than another when its span begins after the other's ends: two statements of one day
are ordered only when both give a time. Every statement of an originator that has a later
statement of the same originator on the same incident names a successor in `superseded_by`
(`links/not-superseded`); statements whose spans overlap may be linked either way, as the page
tells.

The stored figures of an active incident must equal the rule's result unless
`figures_override_reason` explains why they differ; `civharm recompute` rewrites them."""


def bounds(values: pd.Series, qualifiers: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Map stated values and qualifiers to (min, max), both nullable integers."""
    values = values.astype("Int64")
    low = values.copy()
    high = values.copy()
    low = low.mask(qualifiers == "more_than", values + 1)
    low = low.mask(qualifiers == "up_to", pd.NA)
    high = high.mask(qualifiers.isin(["at_least", "more_than"]), pd.NA)
    return low.astype("Int64"), high.astype("Int64")


def carrier_of(incidents: pd.DataFrame) -> pd.Series:
    """Map every incident ID to the incident that carries its reports (itself, or its merge target)."""
    unique = incidents[["incident_id", "status", "merged_into"]].drop_duplicates("incident_id")  # a repeated ID is a structural error, reported elsewhere
    ids = unique["incident_id"]
    target = unique["merged_into"].where(unique["status"] == "merged")
    return pd.Series(target.fillna(ids).to_numpy(dtype=object), index=ids.to_numpy(dtype=object), dtype=object)


def carrier_ids(incident_ids: pd.Series, incidents: pd.DataFrame) -> pd.Series:
    """For each incident ID, the incident that carries its reports (an unknown ID carries itself).

    Looked up by Arrow (a hash of the incident IDs, then a take), not by a Python dict per row.
    """
    carriers = carrier_of(incidents)
    carriers = carriers[carriers.index.notna()]
    position = positions_in(incident_ids, carriers.index)
    found = pa.array(carriers.to_numpy(), type=pa.large_string(), from_pandas=True).take(pa.array(position, mask=position < 0))
    mapped = pc.coalesce(found, arrow_text(incident_ids))
    return pd.Series(pd.arrays.ArrowStringArray(mapped), index=incident_ids.index)


def originators(reports: pd.DataFrame) -> pd.Series:
    """Who originated each statement: the claimant, or for an outlet's own voice the outlet it copies or is.

    A governor quoted by five outlets is one originator; a wire story republished by five
    sites is one originator (``republished_from``); two outlets reporting in their own
    voice are two. Supersession links statements of one originator only.
    """
    outlet = reports["republished_from"].fillna(reports["source_id"])
    claimant = reports["claimant"].str.casefold().str.strip()
    key = ("claimant:" + claimant).where(reports["claimant_type"] != "media_outlet", "outlet:" + outlet)
    return key


def as_of_span(as_of: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The first and last minute each ``as_of`` stands for (a month, a day, or one minute); NaT when unreadable.

    Spans, not points, order statements: "2024-10-25" is not earlier than "2024-10-25T14:30",
    and a month-only statement is not earlier than a day inside that month.
    """
    text = as_of.astype("string")
    text = text.where(text.str.fullmatch(r"[0-9]{4}-[0-9]{2}(?:-[0-9]{2}(?:T[0-9]{2}:[0-9]{2})?)?").fillna(False)  # ASCII digits only
                      & ~outside_days(arrow_text(text)))  # a day outside the days a date may name: unreadable, never wrapped
    length = text.str.len().to_numpy(dtype="float64", na_value=np.nan)
    month = pd.to_datetime(text.where(length == 7) + "-01", format="%Y-%m-%d", errors="coerce")
    day = pd.to_datetime(text.where(length == 10), format="%Y-%m-%d", errors="coerce")
    minute = pd.to_datetime(text.where(length == 16), format="%Y-%m-%dT%H:%M", errors="coerce")
    one = pd.Timedelta(minutes=1)
    start = month.fillna(day).fillna(minute)
    end = (month + pd.DateOffset(months=1) - one).fillna(day + pd.Timedelta(days=1) - one).fillna(minute)
    return start.to_numpy(dtype="datetime64[ns]"), end.to_numpy(dtype="datetime64[ns]")


def current_reports(incidents: pd.DataFrame, reports: pd.DataFrame) -> pd.DataFrame:
    """Active, not superseded reports: ``row`` (their position in ``reports``) and ``carrier_id``
    (the incident they count toward), indexed like ``reports``.

    Callers take the other columns they read for the rows they need (a copy of every column
    of every current report is costly on a large package).
    """
    rows = np.flatnonzero(counted(reports))
    return pd.DataFrame({"row": rows, "carrier_id": carrier_ids(reports["incident_id"].take(rows), incidents)}, index=reports.index[rows])


def active_reports(incidents: pd.DataFrame, reports: pd.DataFrame) -> pd.DataFrame:
    """Every active report, superseded or not (the incident's statements): ``row`` and ``carrier_id`` as in ``current_reports``."""
    rows = np.flatnonzero(active(reports))
    return pd.DataFrame({"row": rows, "carrier_id": carrier_ids(reports["incident_id"].take(rows), incidents)}, index=reports.index[rows])


def successors(reports: pd.DataFrame) -> np.ndarray:
    """Per report, the position of the report its ``superseded_by`` names; -1 when none (or unknown)."""
    if not reports["superseded_by"].notna().any():
        return np.full(len(reports), -1, dtype=np.int64)
    return positions_in(reports["superseded_by"], reports["report_id"])


def stated_later(successor: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Per report, whether a report later in its ``superseded_by`` chain has ``states`` true.

    Pointer jumping: after step k each report has looked 2^k links ahead, so a chain of any
    length (or a cycle, which ``links/superseded-by`` reports) takes log2(n) vector steps.
    """
    linked = successor >= 0
    if not linked.any():
        return np.zeros(len(successor), dtype=bool)
    pointer = successor.copy()
    seen = np.where(linked, states[np.where(linked, successor, 0)], False)
    for _ in range(max(1, int(np.ceil(np.log2(len(successor) + 1))))):
        ahead = pointer >= 0
        if not ahead.any():
            break
        safe = np.where(ahead, pointer, 0)
        seen = seen | np.where(ahead, seen[safe], False)
        pointer = np.where(ahead, pointer[safe], -1)
    return seen


def counting(reports: pd.DataFrame, active: pd.DataFrame, figure: str, successor: np.ndarray | None = None) -> np.ndarray:
    """Positions in ``reports`` of the statements whose ``figure`` counts: active, given, not restated later in their chain."""
    successor = successors(reports) if successor is None else successor
    states = np.zeros(len(reports), dtype=bool)
    rows = active["row"].to_numpy()
    states[rows] = reports[figure].notna().to_numpy(dtype=bool)[rows]
    return np.flatnonzero(states & ~stated_later(successor, states))


def _unknown(length: int) -> pd.arrays.IntegerArray:
    """``length`` missing nullable integers, built from arrays (not from a list of ``pd.NA``, one object per cell)."""
    return pd.arrays.IntegerArray(np.zeros(length, dtype="int64"), np.ones(length, dtype=bool))


def compute_incident_figures(incidents: pd.DataFrame, reports: pd.DataFrame, active: pd.DataFrame | None = None) -> pd.DataFrame:
    """The figure rule over typed tables; one row per carrying incident ID, ``<figure>_min``/``_max`` columns.

    ``active`` may pass ``active_reports(incidents, reports)`` when the caller has it already.
    """
    active = active_reports(incidents, reports) if active is None else active
    ids = pd.Index(incidents["incident_id"].dropna().unique(), name="incident_id")
    carrier_of_row = np.full(len(reports), -1, dtype=np.int64)
    carrier_of_row[active["row"].to_numpy()] = positions_in(active["carrier_id"], ids)  # -1: not active, or a carrier that is not an incident
    successor = successors(reports)
    out = pd.DataFrame(index=ids)
    for figure in FIGURES:
        rows = counting(reports, active, figure, successor)
        rows = rows[carrier_of_row[rows] >= 0]
        low, high = bounds(reports[figure].take(rows), reports[f"{figure}_qualifier"].take(rows))
        position = carrier_of_row[rows]
        grouped_low, grouped_high = low.groupby(position), high.groupby(position)
        minimum, maximum = _unknown(len(ids)), _unknown(len(ids))
        lowest = grouped_low.min()
        minimum[lowest.index.to_numpy()] = lowest.to_numpy()
        highest = grouped_high.max()
        open_ended = high.isna().groupby(position).any()
        highest = highest[~open_ended.reindex(highest.index, fill_value=False).to_numpy(dtype=bool)]
        maximum[highest.index.to_numpy()] = highest.to_numpy()
        out[f"{figure}_min"], out[f"{figure}_max"] = minimum, maximum
    return out
