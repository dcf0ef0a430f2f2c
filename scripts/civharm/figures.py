"""The figure rule: how an incident's min–max figures follow from its current reports.

Declared once here; the codebook prints ``RULE_TEXT``, the ``figures/rule-mismatch`` check
and ``civharm build`` both call ``compute_incident_figures``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .package import arrow_text, positions_in

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


FIGURES = ("civilians_killed", "civilians_injured", "children_killed", "children_injured", "all_killed", "all_injured")

RULE_TEXT = """\
For each figure (civilians killed, civilians injured, children killed, children injured, and
killed/injured of all or unknown status):

1. Take the incident's **current reports**: reports with status `active` and an empty
   `superseded_by`, whose `incident_id` is the incident itself or an incident that was merged
   into it (merging moves nothing: a merged incident's reports count toward the incident it
   was merged into).
2. Keep those that give the figure, and turn each stated value into a range by its qualifier:
   `exact` and `about` N → N–N; `at_least` N → N–(open); `more_than` N → N+1–(open);
   `up_to` N → (open)–N.
3. The incident's **min** is the lowest of those minimums; its **max** is the highest of those
   maximums when every one of them states a maximum, and empty (open) otherwise.
4. No current report gives the figure → both stay empty (unknown, never 0).

The stored figures of an active incident must equal the rule's result unless
`figures_override_reason` explains why they differ."""


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


def current_reports(incidents: pd.DataFrame, reports: pd.DataFrame) -> pd.DataFrame:
    """Active, not superseded reports: ``row`` (their position in ``reports``) and ``carrier_id``
    (the incident they count toward), indexed like ``reports``.

    Callers take the other columns they read for the rows they need (a copy of every column
    of every current report is costly on a large package).
    """
    rows = np.flatnonzero(counted(reports))
    return pd.DataFrame({"row": rows, "carrier_id": carrier_ids(reports["incident_id"].take(rows), incidents)}, index=reports.index[rows])


def _unknown(length: int) -> pd.arrays.IntegerArray:
    """``length`` missing nullable integers, built from arrays (not from a list of ``pd.NA``, one object per cell)."""
    return pd.arrays.IntegerArray(np.zeros(length, dtype="int64"), np.ones(length, dtype=bool))


def compute_incident_figures(incidents: pd.DataFrame, reports: pd.DataFrame, current: pd.DataFrame | None = None) -> pd.DataFrame:
    """The figure rule over typed tables; one row per carrying incident ID, ``<figure>_min``/``_max`` columns.

    ``current`` may pass ``current_reports(incidents, reports)`` when the caller has it already.
    """
    current = current_reports(incidents, reports) if current is None else current
    ids = pd.Index(incidents["incident_id"].dropna().unique(), name="incident_id")
    carrier = positions_in(current["carrier_id"], ids)  # -1: a carrier that is not an incident
    out = pd.DataFrame(index=ids)
    current_rows = current["row"].to_numpy()
    for figure in FIGURES:
        given = reports[figure].notna().to_numpy(dtype=bool)[current_rows] & (carrier >= 0)
        rows = current_rows[given]
        low, high = bounds(reports[figure].take(rows), reports[f"{figure}_qualifier"].take(rows))
        position = carrier[given]
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
