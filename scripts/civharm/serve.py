"""``civharm serve``: the built SQLite database in Datasette, described from the schema.

The database is the one ``civharm build`` writes, with what browsing needs already in it
(``civharm.browse``: full-text search, a view of active incidents with a month to facet on)
and the same Datasette metadata the release carries; serve adds only the front page and the
links between pages.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import browse, build
from .package import Package

DATABASE = "civharm"
BROWSE_VIEW = browse.BROWSE_VIEW
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


def prepare_database(package: Package, path: Path) -> Path:
    """Write the release SQLite database: browse view and full-text search included, as released."""
    build.write_sqlite(build.prepare(package), path)
    return path


def metadata(package: Package) -> dict:
    """Datasette metadata from the descriptor and the schemas (the release's, for the database served here)."""
    return browse.metadata(package, DATABASE)


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
