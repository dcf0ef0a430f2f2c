"""``civharm serve``: the built SQLite database in Datasette, with the site the release ships.

The database is the one ``civharm build`` writes, with what browsing needs already in it
(``civharm.browse``: full-text search, the incidents list view, the coverage table) and the
same Datasette metadata the release carries. The templates and the plugin are the files in
``civharm/site/`` that ``build`` copies into ``civharm-X.Y.Z-site/``: they are source files of
this package, never written from data, so a downloaded release shows what ``serve`` shows.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import browse, build
from .package import Package

DATABASE = "civharm"
BROWSE_VIEW = browse.BROWSE_VIEW
SITE = Path(__file__).with_name("site")
TEMPLATES, PLUGINS = SITE / "templates", SITE / "plugins"


def prepare_database(package: Package, path: Path) -> Path:
    """Write the release SQLite database: browse view and full-text search included, as released."""
    build.write_sqlite(build.prepare(package), path)
    return path


def metadata(package: Package) -> dict:
    """Datasette metadata from the descriptor and the schemas (the release's, for the database served here)."""
    return browse.metadata(package, DATABASE)


def datasette_arguments(database: Path, metadata_file: Path, site: Path = SITE) -> list[str]:
    """The datasette command line for ``database``: immutable (so it can be downloaded), metadata, templates, plugin."""
    return ["-i", str(database), "--metadata", str(metadata_file), "--template-dir", str(site / "templates"),
            "--plugins-dir", str(site / "plugins")]


def prepare(package: Package, folder: Path) -> list[str]:
    """Write database and metadata into ``folder``; return the datasette arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    database = prepare_database(package, folder / f"{DATABASE}.db")
    (folder / "metadata.json").write_text(json.dumps(metadata(package), indent=2, ensure_ascii=False), encoding="utf-8")
    return datasette_arguments(database, folder / "metadata.json")
