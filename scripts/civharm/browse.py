"""What Datasette needs to browse the release database, written into the release itself.

``civharm build`` puts the browse view and the full-text indexes into the SQLite file and
writes the Datasette metadata beside it; ``civharm serve`` shows that same database with that
same metadata, so a downloaded release gives the site ``serve`` gives. The metadata (title,
licence, source, column descriptions, facets) comes from ``datapackage.json`` and the Table
Schemas, so it never drifts; the bookkeeping tables are hidden.
"""
from __future__ import annotations

import re
from pathlib import Path

import sqlite_utils

from . import coverage
from .package import Package

BROWSE_VIEW = "incidents_browse"
SEARCH_KEY = "search_rowid"
FACETS = ["country_code", "subdivision_name", "month", "means_of_harm", "confidence"]
FULL_TEXT = {"incidents": ["summary", "locality_en", "locality_original", "subdivision_name"],
             "reports": ["title", "claimant", "notes"]}
HIDDEN = ("_columns", "_package")  # bookkeeping read by tools, not browsed
WEB_LINK = re.compile(r"https?://[^\s]+", re.IGNORECASE)
# The site's templates and plugin: source files of this package, shipped with each release
# (civharm-X.Y.Z-site/) and used by ``civharm serve``, so both show the same site.
SITE = Path(__file__).with_name("site")
SITE_PARTS = ("templates", "plugins")
# What the site runs on: the templates extend Datasette 0.65's own; the map is datasette-cluster-map's.
SITE_REQUIREMENTS = "datasette==0.65.5 datasette-cluster-map==0.18.1"
SUMMARY_CHARACTERS = 90  # the list's summary is cut here; the incident page has the whole text
COVERAGE_TABLE = "coverage"
UNKNOWN = "unknown"


def _range(prefix: str) -> str:
    """SQL for a min–max pair as text: "25", "101+" (no upper bound), "up to 5", "1–3"; NULL when both are empty."""
    low, high = f"{prefix}_min", f"{prefix}_max"
    return (f"CASE WHEN {low} IS NULL AND {high} IS NULL THEN NULL WHEN {low} = {high} THEN CAST({low} AS TEXT) "
            f"WHEN {high} IS NULL THEN {low} || '+' WHEN {low} IS NULL THEN 'up to ' || {high} "
            f"ELSE {low} || '–' || {high} END")


def _harmed(what: str) -> str:
    """Civilians' range; else the all-status range marked "(all)"; else "unknown" (never 0)."""
    return f"COALESCE({_range('civilians_' + what)}, {_range('all_' + what)} || ' (all)', '{UNKNOWN}')"


# The browse view: what a researcher scans, one short line per incident, plus the columns the
# facets, the map (latitude, longitude, popup) and the full-text search (search_rowid) need.
# Every piece is a constant of this module; nothing from the data becomes SQL.
BROWSE_SELECT = {
    "incident_id": "incident_id",
    "date": "CASE WHEN date_start = date_end THEN date_start WHEN date_precision = 'month' THEN substr(date_start, 1, 7) "
            "WHEN date_precision = 'year' THEN substr(date_start, 1, 4) ELSE date_start || ' – ' || date_end END",
    "place": "trim(COALESCE(locality_en || ', ', '') || COALESCE(subdivision_name || ', ', '') || country_code)",
    "means_of_harm": "means_of_harm",
    "killed": _harmed("killed"),
    "injured": _harmed("injured"),
    "confidence": "confidence",
    "sources": "(SELECT count(DISTINCT r.source_id) FROM reports r WHERE r.incident_id = incidents.incident_id AND r.status = 'active')",
    "summary": f"CASE WHEN length(summary) > {SUMMARY_CHARACTERS} THEN rtrim(substr(summary, 1, {SUMMARY_CHARACTERS - 1})) || '…' "
               "ELSE summary END",
    "date_start": "date_start",
    "month": "substr(date_start, 1, 7)",
    "country_code": "country_code",
    "subdivision_name": "subdivision_name",
    "perpetrator_alleged": "perpetrator_alleged",
    "latitude": "latitude",
    "longitude": "longitude",
    "popup": "json_object('title', incident_id, 'description', COALESCE(locality_en, subdivision_name, country_code) || ', ' || "
             "date_start || ': ' || " + _harmed("killed") + " || ' killed', 'link', 'incidents/' || incident_id)",
    SEARCH_KEY: "rowid",
}
LIST_COLUMNS = ["incident_id", "date", "place", "means_of_harm", "killed", "injured", "confidence", "sources", "summary"]
COLUMN_HELP = {
    "date": "When it happened: a day, a month (YYYY-MM), a year, or a range of days, as precisely as the sources date it.",
    "place": "Settlement, first-level subdivision and country (ISO code), as far as the sources name them.",
    "killed": "Civilians killed, as the range the statements that count give (each figure from its latest statement per originator): \"25\", \"101+\" (at least 101, no upper bound), "
              "\"1–3\", \"unknown\". \"(all)\": the sources do not separate civilians, so the figure counts everyone killed.",
    "injured": "Civilians injured, as a range, like killed.",
    "sources": "How many publishers' statements (active reports) describe the incident.",
    "summary": f"The first {SUMMARY_CHARACTERS} characters of the summary; the incident's page has the whole text.",
    "date_start": "First day the incident may have happened on.",
    "month": "Month of date_start (YYYY-MM); an incident dated only to a year shows its first month.",
    "popup": "What the map shows for the incident (JSON).",
    SEARCH_KEY: "Row number of the incident in the incidents table (the full-text index's key).",
}
# datasette-cluster-map draws the listed incidents (the list's own query, filters included) in the
# list page's map box; Leaflet comes from the datasette-leaflet wheel, not a CDN. The tiles are
# OpenStreetMap's, fetched by the browser when online; markers are drawn without them.
MAP = {"latitude_column": "latitude", "longitude_column": "longitude", "container": "#incident-map"}
COVERAGE_COLUMNS = {
    "area": "Country code, then the subdivision, area or city the total covers.",
    "period": "The span the total covers, or the day a running total was stated for.",
    "claimant": "Who states the total.",
    "population": "Whom the total counts (civilians, children, all).",
    "figure": "killed or injured.",
    "official": "The total as the claimant states it, with its qualifier.",
    "this_dataset": "Sum of the active incidents of this dataset over the same area and period, min–max "
                    "(\"open\": some incident states no upper bound; \"not recorded\": the dataset does not count this population).",
    "incidents": "How many incidents are in the sum.",
    "coarse_dates": "Incidents whose coarse dates straddle the period's bounds: counted apart, never in the sum.",
    "ratio": "This dataset's sum divided by the official figure.",
    "caveats": "What the comparison leaves out.",
    "aggregate_id": "The total's row in the aggregates table.",
}


def add_browsing(db: sqlite_utils.Database, package: Package) -> None:
    """The browse view of active incidents, full-text indexes, the coverage table and what the home page shows."""
    if "incidents" in package.resources:
        columns = ", ".join(f"{sql} AS {name}" for name, sql in BROWSE_SELECT.items())
        # search_rowid is the incidents' rowid, which the full-text index is keyed on: Datasette's search on a
        # view filters ``fts_pk in (select rowid from incidents_fts …)``, so fts_pk must be that rowid.
        reports = "reports" in package.resources
        select = columns if reports else columns.replace(BROWSE_SELECT["sources"], "NULL")
        db.create_view(BROWSE_VIEW, f"SELECT {select} FROM incidents WHERE status = 'active' "
                       "ORDER BY date_start, incident_id", replace=True)
    for table, columns in FULL_TEXT.items():
        if table in package.resources:
            db[table].enable_fts(columns, create_triggers=False, replace=True)
    if {"aggregates", "incidents"} <= set(package.resources):
        db[COVERAGE_TABLE].create({c: (int if c in ("incidents", "coarse_dates") else str) for c in COVERAGE_COLUMNS}, replace=True)
        db[COVERAGE_TABLE].insert_all(coverage_rows(package))
    descriptor = package.descriptor
    licence = (descriptor.get("licenses") or [{}])[0]
    people = "; ".join(c.get("title", "") for c in descriptor.get("contributors", []) if isinstance(c, dict))
    db["_package"].upsert_all([{"key": "title", "value": str(descriptor.get("title", ""))},
                               {"key": "authors", "value": people},
                               {"key": "licence", "value": str(licence.get("title") or licence.get("name", ""))}], pk="key")


def coverage_rows(package: Package) -> list[dict]:
    """``civharm coverage``'s comparison as rows of text, for the "Totals and coverage" page."""
    rows = []
    for row in coverage.compare(package):
        if row.ours_min is None:
            ours = "not recorded"
        elif row.ours_max is None:
            ours = f"{row.ours_min:,}–(open)"
        else:
            ours = f"{row.ours_min:,}" if row.ours_max == row.ours_min else f"{row.ours_min:,}–{row.ours_max:,}"
        low, high = row.ratio
        ratio = "" if low is None else f"{low:.1%}" if high == low else f"{low:.1%}–{high:.1%}" if high is not None else f"≥ {low:.1%}"
        rows.append({"area": row.area, "period": row.period, "claimant": row.claimant, "population": row.population,
                     "figure": row.figure, "official": row.official, "this_dataset": ours, "incidents": row.incidents,
                     "coarse_dates": row.coarse, "ratio": ratio, "caveats": "; ".join(row.caveats),
                     "aggregate_id": row.aggregate_id})
    return rows


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
            "columns": {c: COLUMN_HELP.get(c) or incidents_columns.get(c, "") for c in BROWSE_SELECT},
            "facets": FACETS,
            "fts_table": "incidents_fts",
            "fts_pk": SEARCH_KEY,
            "sort": "date_start",
            "size": 50,
            "plugins": {"datasette-cluster-map": MAP},
        }
    if {"aggregates", "incidents"} <= set(package.resources):
        tables[COVERAGE_TABLE] = {
            "title": "Totals and coverage",
            "description": "Each official total in force beside what this dataset's active incidents add up to over the same "
                           "area and period. Recorded in this dataset, not a total: an incident list holds the events someone "
                           "wrote up, a monitor's total counts everything it verified. Incidents with coarse dates are counted apart.",
            "columns": COVERAGE_COLUMNS,
            "facets": ["area", "claimant", "figure"],
        }
    return {
        "title": descriptor.get("title", "civharm"),
        "description": descriptor.get("description", ""),
        "license": licence.get("title") or licence.get("name", ""),
        "license_url": web_link(licence.get("path")),
        "source": "; ".join(s.get("title", "") for s in descriptor.get("sources", [])),
        "databases": {database: {"tables": tables}},
    }


def site_files() -> list[tuple[str, bytes]]:
    """The site's files as (path relative to the site folder, bytes), sorted; no caches."""
    files = [p for part in SITE_PARTS for p in (SITE / part).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted((p.relative_to(SITE).as_posix(), p.read_bytes()) for p in files)


def datasette_command(database: str, metadata_file: str, site: str) -> str:
    """The command that shows a release's site, as the release README and README.md give it."""
    return (f"datasette -i {database} -m {metadata_file} --template-dir {site}/templates --plugins-dir {site}/plugins")


def web_link(value: object) -> str:
    """``value`` when it is an http(s) address, else "": Datasette puts it in an href, where ``javascript:`` would run."""
    return value if isinstance(value, str) and WEB_LINK.fullmatch(value) else ""
