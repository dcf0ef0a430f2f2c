"""``civharm serve``: the built SQLite database in Datasette, described from the schema.

The database is the same one ``civharm build`` writes, plus what browsing needs: full-text
search on incident summaries and a view of active incidents with a month column to facet
on. Datasette's metadata (title, licence, source, column descriptions, default facets) is
generated from ``datapackage.json`` and the Table Schemas, so it never drifts.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import sqlite_utils

from . import build
from .package import Package

DATABASE = "civharm"
BROWSE_COLUMNS = ["incident_id", "month", "date_start", "date_end", "date_precision", "time_of_day", "country_code", "subdivision_name", "area",
                  "locality_en", "site_type", "means_of_harm", "perpetrator_alleged", "civilians_killed_min", "civilians_killed_max",
                  "civilians_injured_min", "civilians_injured_max", "children_killed_min", "children_killed_max",
                  "all_killed_min", "all_killed_max", "all_injured_min", "all_injured_max", "confidence", "summary"]
BROWSE_VIEW = "incidents_browse"
FACETS = ["country_code", "subdivision_name", "month", "means_of_harm", "confidence"]
LINK_PLUGIN = '''"""Datasette plugin written by civharm serve: incident IDs in the browse view link to the incident's page."""
from datasette import hookimpl
from markupsafe import Markup, escape


@hookimpl
def render_cell(value, column, table, database):
    if table == "{view}" and column == "incident_id" and isinstance(value, str):
        return Markup(\'<a href="/{db}/incidents/{{0}}">{{0}}</a>\'.format(escape(value)))
    return None
'''
TARGET = f"/{DATABASE}/{BROWSE_VIEW}"
# Jinja source that Datasette renders for "/", made of constants only (``{{{{`` is a literal
# ``{{``): the title comes from the template context (``metadata.title``), which Datasette's
# autoescaping shows as text. Data is never formatted into template source.
INDEX_TEMPLATE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={TARGET}">
<title>{{{{ metadata.title or "civharm" }}}}</title></head>
<body><p><a href="{TARGET}">Active incidents</a> · <a href="/{DATABASE}">all tables</a></p></body></html>
"""
WEB_LINK = re.compile(r"https?://[^\s]+", re.IGNORECASE)


def prepare_database(package: Package, path: Path) -> Path:
    """Write the release SQLite database, then add the browse view and full-text search."""
    build.write_sqlite(build.prepare(package), path)
    db = sqlite_utils.Database(str(path))
    try:
        columns = ", ".join("substr(date_start, 1, 7) AS month" if c == "month" else c for c in BROWSE_COLUMNS)
        db.create_view(BROWSE_VIEW, f"SELECT {columns} FROM incidents WHERE status = 'active' ORDER BY date_start, incident_id", replace=True)
        db["incidents"].enable_fts(["summary", "locality_en", "locality_original", "subdivision_name"], create_triggers=False, replace=True)
        db["reports"].enable_fts(["title", "claimant", "notes"], create_triggers=False, replace=True)
    finally:
        db.close()
    return path


def metadata(package: Package) -> dict:
    """Datasette metadata from the descriptor and the schemas."""
    descriptor = package.descriptor
    licence = (descriptor.get("licenses") or [{}])[0]
    tables = {}
    for resource in package.resources.values():
        tables[resource.name] = {
            "description": resource.schema.get("description", ""),
            "columns": {f["name"]: f.get("description", "") for f in resource.schema.get("fields", [])},
        }
    incidents_columns = tables.get("incidents", {}).get("columns", {})
    tables["incidents"]["facets"] = ["status", "country_code", "subdivision_name", "means_of_harm", "confidence"]
    tables[BROWSE_VIEW] = {
        "title": "Active incidents",
        "description": "Incidents in force (merged and retracted incidents are left out; they are in the incidents table). "
                       "Figures are min–max ranges from the current reports; empty means unknown. Recorded in this dataset, not a total.",
        "columns": {c: incidents_columns.get(c, "Month of date_start (YYYY-MM); an incident dated only to a year shows its first month.") for c in BROWSE_COLUMNS},
        "facets": FACETS,
        "fts_table": "incidents_fts",
        "fts_pk": "incident_id",
        "searchmode": "raw",
        "sort": "date_start",
    }
    return {
        "title": descriptor.get("title", "civharm"),
        "description": descriptor.get("description", ""),
        "license": licence.get("title") or licence.get("name", ""),
        "license_url": _web_link(licence.get("path")),
        "source": "; ".join(s.get("title", "") for s in descriptor.get("sources", [])),
        "databases": {DATABASE: {"tables": tables}},
    }


def _web_link(value: object) -> str:
    """``value`` when it is an http(s) address, else "": Datasette puts it in an href, where ``javascript:`` would run."""
    return value if isinstance(value, str) and WEB_LINK.fullmatch(value) else ""


def prepare(package: Package, folder: Path) -> list[str]:
    """Write database, metadata and templates into ``folder``; return the datasette arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    database = prepare_database(package, folder / f"{DATABASE}.db")
    (folder / "metadata.json").write_text(json.dumps(metadata(package), indent=2, ensure_ascii=False), encoding="utf-8")
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "index.html").write_text(INDEX_TEMPLATE, encoding="utf-8")
    plugins = folder / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "civharm_links.py").write_text(LINK_PLUGIN.format(view=BROWSE_VIEW, db=DATABASE), encoding="utf-8")
    return [str(database), "--metadata", str(folder / "metadata.json"), "--template-dir", str(templates), "--plugins-dir", str(plugins)]
