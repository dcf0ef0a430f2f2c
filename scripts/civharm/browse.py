"""What Datasette needs to browse the release database, written into the release itself.

``civharm build`` puts the browse view and the full-text indexes into the SQLite file and
writes the Datasette metadata beside it; ``civharm serve`` shows that same database with that
same metadata, so a downloaded release gives the site ``serve`` gives. The metadata (title,
licence, source, column descriptions, facets) comes from ``datapackage.json`` and the Table
Schemas, so it never drifts; the bookkeeping tables are hidden.
"""
from __future__ import annotations

import re

import sqlite_utils

from .package import Package

BROWSE_COLUMNS = ["incident_id", "month", "date_start", "date_end", "date_precision", "time_of_day", "country_code", "subdivision_name", "area",
                  "locality_en", "site_type", "means_of_harm", "perpetrator_alleged", "civilians_killed_min", "civilians_killed_max",
                  "civilians_injured_min", "civilians_injured_max", "children_killed_min", "children_killed_max",
                  "all_killed_min", "all_killed_max", "all_injured_min", "all_injured_max", "confidence", "summary"]
BROWSE_VIEW = "incidents_browse"
SEARCH_KEY = "search_rowid"
FACETS = ["country_code", "subdivision_name", "month", "means_of_harm", "confidence"]
FULL_TEXT = {"incidents": ["summary", "locality_en", "locality_original", "subdivision_name"],
             "reports": ["title", "claimant", "notes"]}
HIDDEN = ("_columns", "_package")  # bookkeeping read by tools, not browsed
WEB_LINK = re.compile(r"https?://[^\s]+", re.IGNORECASE)


def add_browsing(db: sqlite_utils.Database, package: Package) -> None:
    """The browse view of active incidents (with a month to facet on) and full-text indexes."""
    if "incidents" in package.resources:
        columns = ", ".join("substr(date_start, 1, 7) AS month" if c == "month" else c for c in BROWSE_COLUMNS)
        # The incidents' rowid, which the full-text index is keyed on: Datasette's search on a view
        # filters ``fts_pk in (select rowid from incidents_fts …)``, so fts_pk must be that rowid.
        db.create_view(BROWSE_VIEW, f"SELECT {columns}, rowid AS {SEARCH_KEY} FROM incidents WHERE status = 'active' "
                       "ORDER BY date_start, incident_id", replace=True)
    for table, columns in FULL_TEXT.items():
        if table in package.resources:
            db[table].enable_fts(columns, create_triggers=False, replace=True)


def metadata(package: Package, database: str) -> dict:
    """Datasette metadata from the descriptor and the schemas, for the database named ``database``."""
    descriptor = package.descriptor
    licence = (descriptor.get("licenses") or [{}])[0]
    tables = {}
    for resource in package.resources.values():
        tables[resource.name] = {
            "description": resource.schema.get("description", ""),
            "columns": {f["name"]: f.get("description", "") for f in resource.schema.get("fields", [])},
        }
    tables.update({name: {"hidden": True} for name in HIDDEN})
    if "incidents" in package.resources:
        incidents_columns = tables["incidents"]["columns"]
        tables["incidents"]["facets"] = ["status", "country_code", "subdivision_name", "means_of_harm", "confidence"]
        tables[BROWSE_VIEW] = {
            "title": "Active incidents",
            "description": "Incidents in force (merged and retracted incidents are left out; they are in the incidents table). "
                           "Figures are min–max ranges from the current reports; empty means unknown. Recorded in this dataset, not a total.",
            "columns": {**{c: incidents_columns.get(c, "Month of date_start (YYYY-MM); an incident dated only to a year shows its first month.")
                           for c in BROWSE_COLUMNS}, SEARCH_KEY: "Row number of the incident in the incidents table (the full-text index's key)."},
            "facets": FACETS,
            "fts_table": "incidents_fts",
            "fts_pk": SEARCH_KEY,
            "searchmode": "raw",
            "sort": "date_start",
        }
    return {
        "title": descriptor.get("title", "civharm"),
        "description": descriptor.get("description", ""),
        "license": licence.get("title") or licence.get("name", ""),
        "license_url": web_link(licence.get("path")),
        "source": "; ".join(s.get("title", "") for s in descriptor.get("sources", [])),
        "databases": {database: {"tables": tables}},
    }


def web_link(value: object) -> str:
    """``value`` when it is an http(s) address, else "": Datasette puts it in an href, where ``javascript:`` would run."""
    return value if isinstance(value, str) and WEB_LINK.fullmatch(value) else ""
