"""The attribution rule: how an incident's alleged perpetrator follows from its statements.

Declared once here; the codebook prints ``RULE_TEXT`` and the ``attribution/rule-mismatch``
check calls ``compute_incident_attribution``, the way the figure rule works for figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import active_reports, stated_later, successors

UNKNOWN = "unknown"
DISPUTED = "disputed"
NOT_ATTRIBUTED = "not_attributed"
DELIMITER = ";"
FIELDS = ("perpetrator_alleged", "alleged_parties")

RULE_TEXT = """\
1. Take the incident's **statements**: active reports of the incident and of incidents merged
   into it, and of them those that name a party (`responsibility_claimed` other than `unknown`):
   a statement that names nobody does not dispute one that names someone.
2. **Supersession, as for a figure.** A statement's party counts unless a later statement in its
   `superseded_by` chain (the same originator) names a party: each originator is counted by its
   latest statement that names one, and a later statement that names nobody leaves the earlier
   one in force.
3. `alleged_parties` lists the parties that count, each once, in alphabetical order, separated
   by `;`; it is empty when no statement names a party.
4. `perpetrator_alleged` is that party when there is exactly one, `disputed` when there are
   several, and `unknown` when there is none.
5. `attribution_basis` says who makes the attributions: `not_attributed`, alone, exactly when
   `perpetrator_alleged` is `unknown`; when the parties of a disputed incident are named by
   different kinds of claimant, each kind is listed (separated by `;`).

The stored `perpetrator_alleged` and `alleged_parties` of an active incident must equal the
rule's result. A report that names another party makes the incident `disputed`: the dataset
records the disagreement between its sources and never settles it by choosing one of them."""


def naming(reports: pd.DataFrame, active: pd.DataFrame) -> np.ndarray:
    """Which of the ``active`` statements (rows of ``active_reports``) count for attribution: they name a party and
    no later statement in their ``superseded_by`` chain does (rules 1 and 2)."""
    claimed = reports["responsibility_claimed"]
    names = np.zeros(len(reports), dtype=bool)
    rows = active["row"].to_numpy()
    names[rows] = (claimed.notna() & (claimed != UNKNOWN)).to_numpy(dtype=bool)[rows]
    counts = names & ~stated_later(successors(reports), names)
    return counts[rows]


def compute_incident_attribution(incidents: pd.DataFrame, reports: pd.DataFrame, active: pd.DataFrame | None = None) -> pd.DataFrame:
    """The attribution rule over typed tables; one row per incident ID, columns ``FIELDS`` (missing: empty).

    ``active`` may pass ``active_reports(incidents, reports)`` when the caller has it already.
    Only the incidents whose reports name several parties are joined in Python.
    """
    active = active_reports(incidents, reports) if active is None else active
    ids = pd.Index(incidents["incident_id"].dropna().unique(), name="incident_id")
    counting = active[naming(reports, active)]
    claimed = reports["responsibility_claimed"].to_numpy(dtype=object, na_value=None)[counting["row"].to_numpy()]
    named = pd.DataFrame({"carrier": counting["carrier_id"].to_numpy(dtype=object, na_value=None), "party": claimed})
    named = named[named["carrier"].notna()].drop_duplicates()
    several = named["carrier"].duplicated(keep=False).to_numpy(dtype=bool)
    single = named[~several]
    joined = named[several].sort_values("party").groupby("carrier", sort=False)["party"].agg(DELIMITER.join)
    parties = pd.concat([pd.Series(single["party"].to_numpy(), index=single["carrier"].to_numpy(), dtype=object), joined.astype(object)])
    verdict = pd.Series(np.where(parties.index.isin(joined.index), DISPUTED, parties.to_numpy(dtype=object)), index=parties.index, dtype=object)
    out = pd.DataFrame(index=ids)
    out["perpetrator_alleged"] = verdict.reindex(ids).fillna(UNKNOWN).to_numpy(dtype=object)
    out["alleged_parties"] = parties.reindex(ids).to_numpy(dtype=object)
    return out
