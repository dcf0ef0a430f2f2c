"""The attribution rule: how an incident's alleged perpetrator follows from its current reports.

Declared once here; the codebook prints ``RULE_TEXT`` and the ``attribution/rule-mismatch``
check calls ``compute_incident_attribution``, the way the figure rule works for figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import current_reports

UNKNOWN = "unknown"
DISPUTED = "disputed"
NOT_ATTRIBUTED = "not_attributed"
DELIMITER = ";"
FIELDS = ("perpetrator_alleged", "alleged_parties")

RULE_TEXT = """\
1. Take the incident's **current reports**: active, not superseded (an originator's attribution is
   the one of its latest statement), and those of incidents merged into it.
2. Collect the parties they hold responsible (`responsibility_claimed`), leaving out `unknown`:
   a statement that names nobody does not dispute one that names someone.
3. `alleged_parties` lists those parties, each once, in alphabetical order, separated by `;`;
   it is empty when no current report names a party.
4. `perpetrator_alleged` is that party when there is exactly one, `disputed` when there are
   several, and `unknown` when there is none.
5. `attribution_basis` says who makes the attributions: `not_attributed`, alone, exactly when
   `perpetrator_alleged` is `unknown`; when the parties of a disputed incident are named by
   different kinds of claimant, each kind is listed (separated by `;`).

The stored `perpetrator_alleged` and `alleged_parties` of an active incident must equal the
rule's result. A report that names another party makes the incident `disputed`: the dataset
records the disagreement between its sources and never settles it by choosing one of them."""


def compute_incident_attribution(incidents: pd.DataFrame, reports: pd.DataFrame, current: pd.DataFrame | None = None) -> pd.DataFrame:
    """The attribution rule over typed tables; one row per incident ID, columns ``FIELDS`` (missing: empty).

    ``current`` may pass ``current_reports(incidents, reports)`` when the caller has it already.
    Only the incidents whose reports name several parties are joined in Python.
    """
    current = current_reports(incidents, reports) if current is None else current
    ids = pd.Index(incidents["incident_id"].dropna().unique(), name="incident_id")
    claimed = reports["responsibility_claimed"].to_numpy(dtype=object, na_value=None)[current["row"].to_numpy()]
    named = pd.DataFrame({"carrier": current["carrier_id"].to_numpy(dtype=object, na_value=None), "party": claimed})
    named = named[named["carrier"].notna() & named["party"].notna() & (named["party"] != UNKNOWN)].drop_duplicates()
    several = named["carrier"].duplicated(keep=False).to_numpy(dtype=bool)
    single = named[~several]
    joined = named[several].sort_values("party").groupby("carrier", sort=False)["party"].agg(DELIMITER.join)
    parties = pd.concat([pd.Series(single["party"].to_numpy(), index=single["carrier"].to_numpy(), dtype=object), joined.astype(object)])
    verdict = pd.Series(np.where(parties.index.isin(joined.index), DISPUTED, parties.to_numpy(dtype=object)), index=parties.index, dtype=object)
    out = pd.DataFrame(index=ids)
    out["perpetrator_alleged"] = verdict.reindex(ids).fillna(UNKNOWN).to_numpy(dtype=object)
    out["alleged_parties"] = parties.reindex(ids).to_numpy(dtype=object)
    return out
