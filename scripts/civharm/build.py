"""Release artifacts for the package's current version: zip, SQLite, Parquet, XLSX, GeoJSON, HXL CSV, charts.

Why it is built this way:

- **Reproducible.** Every file comes from the loaded package in a fixed order, and every
  timestamp inside a file comes from ``SOURCE_DATE_EPOCH``, else the last commit of the
  package folder, else ``FALLBACK_EPOCH``; the same commit gives the same bytes, so anyone
  can rebuild a release and compare ``SHA256SUMS``.
- **Counted right.** Records are never deleted: merged and retracted incidents keep their rows.
  The files people count from (XLSX, GeoJSON, HXL CSV) hold active rows only and say so; the
  zip, the SQLite database and the Parquet files hold every row.
- **All or nothing.** Everything is written into a temporary folder beside the output and
  swapped in at the end; a failure at any point leaves the output folder as it was.

Why it is over 500 lines: it has one job, the release files, and each format's writer is
short; what could stand alone already does (charts, the browse view, versions). Splitting
the writers from the build that orders, checks and swaps them in would put the rules above
(reproducible, counted right, all or nothing) in two places.
"""
from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlite_utils
import xlsxwriter

from . import browse, charts
from .atomic import LOCK_FILE, FaultHook
from .archive import CHECKSUMS
from .figures import counted
from .findings import CivharmError, quote
from .versions import git_text, read_releases
from .package import DESCRIPTOR, Package, Resource, load_package
from .rules.text import FORMULA

# 1980-01-01T00:00:00Z, the earliest time a zip entry can record: used when neither
# SOURCE_DATE_EPOCH nor a git commit says when the package was last changed.
FALLBACK_EPOCH = 315532800
# 2107-12-31T23:59:59Z, the last time a zip entry can record: a later SOURCE_DATE_EPOCH is refused.
LAST_EPOCH = 4354819199
# Documents of the package folder that travel inside the zip when present.
COMPANIONS = ("CHANGELOG.md", "CITATION.cff")
SQL_TYPES = {"integer": int, "number": float}
ARROW_TYPES = {"integer": pa.int64(), "number": pa.float64(), "date": pa.date32()}
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")
README_SHEET = "README"
XLSX_SHEET_CHARS = 31  # Excel's limit on a sheet name
NAME_MAX = 255  # bytes in one file name (ext4, APFS, NTFS)


@dataclass(frozen=True)
class Release:
    """What every writer needs: the package, its version, and where the timestamps come from."""

    package: Package
    version: str
    epoch: int
    provenance: str
    records: dict[str, list[dict]]

    @property
    def created(self) -> dt.datetime:
        """The build time as naive UTC (zip and XLSX store no time zone)."""
        return dt.datetime.fromtimestamp(self.epoch, tz=dt.timezone.utc).replace(tzinfo=None)

    @property
    def zip_time(self) -> tuple[int, int, int, int, int, int]:
        stamp = max(self.created, dt.datetime(1980, 1, 1))
        return (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second // 2 * 2)

    def name(self, suffix: str) -> str:
        return f"civharm-{self.version}{suffix}"


# --- where the timestamps come from -------------------------------------------------------

def source_date_epoch(root: Path, environ: dict | None = None) -> tuple[int, str]:
    """The build time in seconds and a sentence saying where it came from.

    Order, as in reproducible-builds.org's SOURCE_DATE_EPOCH: the environment variable, else
    the last commit that touched the package folder, else ``FALLBACK_EPOCH``.
    """
    environ = os.environ if environ is None else environ
    commit = git_text(root, "log", "-1", "--format=%H %ct", "--", ".")
    hash_, _, seconds = (commit or "").partition(" ")
    dirty = bool(git_text(root, "status", "--porcelain", "--", ".", f":(exclude){LOCK_FILE}")) if commit else False  # held by the build
    source = f"commit {hash_}{' with uncommitted changes' if dirty else ''}" if commit else "a folder outside git"
    raw = environ.get("SOURCE_DATE_EPOCH")
    if raw not in (None, ""):
        digits = raw.strip()
        if not (digits.isascii() and digits.isdigit()):  # isdigit alone takes '²', which int() refuses
            raise CivharmError(f"SOURCE_DATE_EPOCH: {quote(raw)} is not a whole number of seconds since 1970")
        if len(digits.lstrip("0")) > len(str(LAST_EPOCH)) or int(digits) > LAST_EPOCH:  # length first: int() refuses 4,300+ digits
            raise CivharmError(f"SOURCE_DATE_EPOCH: {quote(digits)} is after 2107-12-31T23:59:59Z, the last time a zip file can record")
        return int(digits), f"Built from {source}; timestamps from SOURCE_DATE_EPOCH={int(digits)}."
    if seconds.isdigit():
        return int(seconds), f"Built from {source}; timestamps from that commit."
    return FALLBACK_EPOCH, f"Built from {source}; timestamps fixed at 1980-01-01T00:00:00Z (no SOURCE_DATE_EPOCH, no commit)."


# --- inputs -------------------------------------------------------------------------------

def _version(package: Package) -> str:
    version = package.descriptor.get("version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise CivharmError(f"{DESCRIPTOR}#/version: {version!r} cannot name release files; "
                           "set a version such as \"1.2.0\"")
    return version


def _records(resource: Resource) -> list[dict]:
    """Rows as Python values of the schema's types; refuses cells that do not convert.

    ``Resource.typed`` turns a bad cell into NA; writing that would lose data silently. A text
    cell a spreadsheet would run as a formula is refused here too, so none reaches any file
    even when the package was not validated first (``text/formula-prefix``).
    """
    fields = resource.schema.get("fields", [])
    missing = [f["name"] for f in fields if f["name"] not in resource.frame.columns]
    if missing:
        raise CivharmError(f"{resource.path}: no column {', '.join(missing)}; run `civharm validate`")
    typed = resource.typed
    columns = {}
    for f in fields:
        name = f["name"]
        raw, values = resource.frame[name], typed[name]
        lost = (raw != "") & values.isna()
        if lost.any():
            index = int(lost.to_numpy().nonzero()[0][0])
            raise CivharmError(f"{resource.path}:{resource.line_of(index)}: {name}: {raw.iloc[index]!r} "
                               f"is not a valid {f.get('type')}; run `civharm validate`")
        kind = f.get("type", "string")
        out = []
        for value in values.tolist():
            if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
                out.append(None)
            elif kind == "integer":
                out.append(int(value))
            elif kind == "number":
                out.append(float(value))
            elif kind == "date":
                out.append(value.date())
            else:
                out.append(_not_formula(resource, name, len(out), str(value)))
        columns[name] = out
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())] if names else []


def _not_formula(resource: Resource, name: str, index: int, value: str) -> str:
    if FORMULA.match(value):
        raise CivharmError(f"{resource.path}:{resource.line_of(index)}: {name}: {quote(value, 60)} starts with "
                           f"{value[0]!r}, which spreadsheets run as a formula [text/formula-prefix]; run `civharm validate`")
    return value


def _active(release: Release, name: str) -> list[dict]:
    """The rows people count (``figures.counted``); a table without status (the corrections log) whole."""
    return [row for row, keep in zip(release.records[name], counted(release.package[name].typed)) if keep]


def prepare(package: Package, version: str | None = None) -> Release:
    """Typed rows and release metadata; ``version`` labels the files (default: datapackage.json's)."""
    if package.findings:
        first = package.findings[0]
        raise CivharmError(f"cannot build: {len(package.findings)} problem(s) while reading the package, "
                           f"first {first.as_text()}; run `civharm validate`")
    version = _version(package) if version is None else version
    epoch, provenance = source_date_epoch(package.root)
    records = {name: _records(resource) for name, resource in package.resources.items()}
    return Release(package, version, epoch, provenance, records)


# Every file ``build`` writes, declared once: (name after ``civharm-<version>``, or a whole name; what it holds). The
# release's own README and the repository README (through cog) list them from here; a test holds them to what
# ``build`` writes. ``{v}`` in a description is the version.
RELEASE_FILES = (
    (".zip", "this data package (CSV, schemas, descriptor with a sha256 and size per file): every row"),
    (".sqlite", "every row; keys and indexes; column descriptions in `_columns`; views `active_incidents`, `current_reports` "
                "and `incidents_browse`; full-text search"),
    ("-datasette.json", "Datasette metadata (with `civharm-{v}-site/`: the site `civharm serve` shows)"),
    ("-site/*", f"the site's Datasette templates and plugin: after `pip install {browse.SITE_REQUIREMENTS}`, "
               f"`{browse.datasette_command('civharm-{v}.sqlite', 'civharm-{v}-datasette.json', 'civharm-{v}-site')}` "
               "shows the site `civharm serve` shows"),
    ("-parquet/<table>.parquet", "every row, one file per table, types from the schema (a plain `pd.read_parquet` gives "
                                 "nullable integers and dates)"),
    (".xlsx", "active rows only, one sheet per table, after a README sheet; every text cell stored as text"),
    ("-incidents.geojson", "active incidents that have coordinates, figures as properties"),
    ("-incidents-ogr-schema.json", "the GeoJSON's property types for GDAL's `OGR_SCHEMA` open option (GDAL 3.11+, "
                                   "geopandas): integers stay integers even where every value is empty"),
    ("-incidents-hxl.csv", "active incidents with HXL hashtags (for HDX): every column tagged, codes with their vocabulary "
                           "(`+v_iso2`, `+v_iso3166_2`), ISO alpha-3 beside alpha-2, and after each `_max` a `_max_open` "
                           "flag: sum a `+max` column only where no flag is 1 (the codebook's \"HXL files\")"),
    ("-aggregates-hxl.csv", "current period and running totals (active, not superseded) with HXL hashtags (for HDX), "
                            "ISO alpha-3 beside alpha-2"),
    ("-charts/*.png", "charts of active incidents: civilians killed and injured per month (min–max band), overall and per "
                      "country by subdivision; incidents by means of harm; `incident-<id>.png`, each claimant's figures "
                      "over time with the incident's range; `coverage.png`, official totals beside the share of them "
                      "this dataset records (as `civharm coverage`)"),
    (CHECKSUMS, f"sha256 of every file above, for `sha256sum -c {CHECKSUMS}`"),
)


def release_files_table(version: str) -> list[str]:
    """The Markdown table of ``RELEASE_FILES`` for a version (``X.Y.Z`` in the repository README)."""
    rows = [(name if name == CHECKSUMS else f"civharm-{version}{name}", text.replace("{v}", version)) for name, text in RELEASE_FILES]
    return ["| file | holds |", "|---|---|", *(f"| `{name}` | {text} |" for name, text in rows)]


def active_only_note(package: Package, version: str | None = None) -> str:
    """The sentence every count-from artifact carries, and the build prints."""
    version = package.descriptor.get("version", "") if version is None else version
    incidents = package.get("incidents")
    total = len(incidents.frame) if incidents is not None else 0
    active = int(counted(incidents.typed).sum()) if incidents is not None and total else 0
    return (f"Active incidents only ({active} of {total}): the XLSX, GeoJSON and HXL CSV files leave out "
            "merged incidents (their reports count toward the incident they were merged into) and retracted "
            "ones (withdrawn), so that nothing is counted twice or counted after withdrawal; the same goes for "
            f"retracted reports, damage and sources, and for reports superseded by a later one. civharm-{version}.zip, civharm-{version}.sqlite and the Parquet "
            "files hold every row.")


# --- writers ------------------------------------------------------------------------------

def _zip(entries: list[tuple[str, bytes]], when: tuple[int, ...]) -> bytes:
    """A zip whose bytes depend only on the entries: fixed time, mode and host system."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever machine builds it
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def _readme(release: Release) -> str:
    package, v = release.package, release.version
    d = package.descriptor
    lines = [f"# civharm {v}", "", d.get("title", ""), "", d.get("description", ""), "",
             release.provenance, "", "## Files of this release", "",
             *release_files_table(v),
             "", "## Active incidents only", "", active_only_note(package, release.version), "",
             "Records are never deleted: a merged or retracted incident keeps its row, with its status and reason, "
             "so the history stays checkable. Counting those rows would count one event twice or count a withdrawn one.",
             "", "## Tables", "", "| table | rows | active rows | description |", "|---|---|---|---|"]
    for name, resource in package.resources.items():
        rows = release.records[name]
        description = resource.schema.get("description", "").replace("|", "\\|")
        lines.append(f"| `{name}` | {len(rows)} | {len(_active(release, name))} | {description} |")
    licences = ", ".join(l.get("name", "") for l in d.get("licenses", []))
    lines += ["", "## Licence and citation", "", f"Data: {licences}. Cite the dataset with its version ({v}) and the "
              "original sources of the figures you use: each report row names its page and publisher.", ""]
    return "\n".join(lines)


def release_created(release: Release) -> str:
    """The descriptor's ``created``: the release date recorded in releases.json (as CITATION.cff's
    ``date-released``), else, for a build between releases, the build time."""
    for entry in read_releases(release.package.root):
        if entry.get("version") == release.version and re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(entry.get("date", ""))):
            return f"{entry['date']}T00:00:00Z"
    return release.created.strftime("%Y-%m-%dT%H:%M:%SZ")


def data_package_zip(release: Release) -> bytes:
    """The package as published: the CSV bytes as committed, a descriptor with hash and bytes per resource."""
    package = release.package
    descriptor = copy.deepcopy(package.descriptor)
    descriptor["created"] = release_created(release)
    files: dict[str, bytes] = {}
    for index, spec in enumerate(descriptor["resources"]):
        resource = package[spec["name"]]
        if "description" not in spec and resource.schema.get("description"):
            spec["description"] = resource.schema["description"]  # declared once, in the Table Schema
        for key, path in (("path", resource.path), ("schema", resource.schema_path)):
            if path and _leaves_folder(path):
                raise CivharmError(f"{DESCRIPTOR}#/resources/{index}/{key}: {quote(path)} would unpack outside the folder "
                                   "the release zip is unpacked in; write it without '..' or '.' parts")
        spec["bytes"] = len(resource.raw)
        spec["hash"] = "sha256:" + hashlib.sha256(resource.raw).hexdigest()
        files[resource.path] = resource.raw
        if resource.schema_path:
            files[resource.schema_path] = (package.root / resource.schema_path).read_bytes()
    for name in COMPANIONS:
        if (package.root / name).is_file():
            files[name] = (package.root / name).read_bytes()
    entries = [(DESCRIPTOR, (json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n").encode("utf-8")),
               ("README.md", _readme(release).encode("utf-8"))]
    return _zip(entries + sorted(files.items()), release.zip_time)


def _creation_order(package: Package) -> list[str]:
    """Tables in descriptor order, each after the tables its foreign keys point to."""
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in order or name in seen or name not in package.resources:
            return
        for fk in package[name].schema.get("foreignKeys", []):
            visit(fk.get("reference", {}).get("resource") or name, seen + (name,))
        order.append(name)

    for name in package.resources:
        visit(name, ())
    return order


def write_sqlite(release: Release, path: Path) -> None:
    """Every row with keys, indexes, column descriptions in ``_columns``, two views, and what Datasette browses."""
    package = release.package
    db = sqlite_utils.Database(str(path))
    try:
        described = []
        for name in _creation_order(package):
            schema = package[name].schema
            fields = schema.get("fields", [])
            columns = {f["name"]: SQL_TYPES.get(f.get("type"), str) for f in fields}
            keys = schema.get("primaryKey") or None
            keys = keys[0] if isinstance(keys, list) and len(keys) == 1 else (tuple(keys) if keys else None)
            foreign = [(fk["fields"][0], fk["reference"].get("resource") or name, fk["reference"]["fields"][0])
                       for fk in schema.get("foreignKeys", []) if len(fk["fields"]) == 1]
            required = {f["name"] for f in fields if f.get("constraints", {}).get("required")}
            db[name].create(columns, pk=keys, foreign_keys=foreign, not_null=required)
            rows = [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
                    for row in release.records[name]]
            db[name].insert_all(rows, batch_size=500)
            for column in [fk[0] for fk in foreign] + (["status"] if "status" in columns else []):
                db[name].create_index([column])
            described += [{"table": name, "column": f["name"], "title": f.get("title"), "description": f.get("description"),
                           "type": f.get("type", "string"), "hxl": f.get("hxl")} for f in fields]
        db["_columns"].create({"table": str, "column": str, "title": str, "description": str, "type": str, "hxl": str},
                              pk=("table", "column"))
        db["_columns"].insert_all(described)
        db["_package"].create({"key": str, "value": str}, pk="key")
        db["_package"].insert_all([{"key": k, "value": v} for k, v in (
            ("name", package.descriptor.get("name")), ("version", release.version),
            ("created", release.created.isoformat() + "Z"), ("provenance", release.provenance),
            ("note", active_only_note(package, release.version)))])
        if "incidents" in package.resources:
            db.create_view("active_incidents", "SELECT * FROM incidents WHERE status = 'active'")
        if {"incidents", "reports"} <= set(package.resources):
            db.create_view("current_reports", (
                "SELECT reports.*, CASE WHEN incidents.status = 'merged' AND incidents.merged_into IS NOT NULL "
                "THEN incidents.merged_into ELSE reports.incident_id END AS counts_toward\n"
                "FROM reports LEFT JOIN incidents ON incidents.incident_id = reports.incident_id\n"
                "WHERE reports.status = 'active' AND reports.superseded_by IS NULL"))
        browse.add_browsing(db, package)
        db.conn.commit()
        db.vacuum()
    except sqlite3.IntegrityError as exc:
        raise CivharmError(f"cannot build the SQLite database: {exc}; run `civharm validate`")
    finally:
        db.close()


# The pandas types a default ``pd.read_parquet`` should give: nullable integers, not float64 with
# NaN, and dates, not Python objects.
PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.date32(): pd.ArrowDtype(pa.date32())}


def _with_pandas_metadata(table: pa.Table) -> pa.Table:
    """The table with the ``pandas`` schema metadata that pyarrow writes for these pandas types.

    pandas restores a column's dtype from that metadata; without it a default read turns an
    integer column with empty cells into float64 and dates into objects.
    """
    frame = table.to_pandas(types_mapper=PANDAS_TYPES.get)
    return pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)


def datasette_metadata_bytes(release: Release) -> bytes:
    """The metadata ``civharm serve`` uses, for ``datasette civharm-X.Y.Z.sqlite -m civharm-X.Y.Z-datasette.json``."""
    meta = browse.metadata(release.package, release.name(""))
    return (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def parquet_bytes(release: Release, name: str) -> bytes:
    """One table with Arrow types from the schema; descriptions travel as field metadata."""
    schema = release.package[name].schema
    fields = [pa.field(f["name"], ARROW_TYPES.get(f.get("type"), pa.string()),
                       nullable=not f.get("constraints", {}).get("required", False),
                       metadata={"description": f.get("description", ""), "hxl": f.get("hxl", ""),
                                 "title": f.get("title", "")})
              for f in schema.get("fields", [])]
    arrow_schema = pa.schema(fields, metadata={"description": schema.get("description", ""),
                                               "primaryKey": json.dumps(schema.get("primaryKey", []))})
    try:
        table = _with_pandas_metadata(pa.Table.from_pylist(release.records[name], schema=arrow_schema))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CivharmError(f"{release.package[name].path}: cannot write Parquet: {exc}; run `civharm validate`")
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _sheet_names(package: Package) -> dict[str, str]:
    """Each table's XLSX sheet name (its first 31 characters), or a located refusal when two would be one sheet.

    Excel compares sheet names without case, and the README sheet comes first.
    """
    taken = {README_SHEET.casefold(): README_SHEET}
    sheets = {}
    for index, spec in enumerate(package.descriptor.get("resources", [])):
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in package.resources or name in sheets:
            continue
        sheet = name[:XLSX_SHEET_CHARS]
        if sheet.casefold() in taken:
            raise CivharmError(f"{DESCRIPTOR}#/resources/{index}/name: {name!r} would name the same XLSX sheet as "
                               f"{taken[sheet.casefold()]!r} (Excel ignores case and keeps {XLSX_SHEET_CHARS} characters); "
                               "rename the resource")
        taken[sheet.casefold()] = name
        sheets[name] = sheet
    return sheets


def xlsx_bytes(release: Release) -> bytes:
    """Active rows, one sheet per table; every text cell through ``write_string`` so none runs as a formula."""
    package = release.package
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False,
                                        "strings_to_urls": False, "strings_to_numbers": False})
    book.set_properties({"title": f"civharm {release.version} (active rows only)", "author": "civharm contributors",
                         "comments": active_only_note(package, release.version), "created": release.created})
    bold = book.add_format({"bold": True})
    date = book.add_format({"num_format": "yyyy-mm-dd"})

    def text(sheet, row: int, column: int, value: str, style=None) -> None:
        if sheet.write_string(row, column, value, style) == -2:
            raise CivharmError(f"XLSX: a cell of sheet {sheet.name!r} is longer than Excel's 32,767 characters")

    sheets = _sheet_names(package)
    readme = book.add_worksheet(README_SHEET)
    readme.set_column(0, 0, 24)
    readme.set_column(1, 3, 60)
    intro = [f"civharm {release.version}", package.descriptor.get("title", ""), active_only_note(package, release.version),
             release.provenance, ""]
    for row, line in enumerate(intro):
        text(readme, row, 0, line, bold if row == 0 else None)
    row = len(intro)
    for cells in [["table", "rows in this workbook", "rows in the zip and SQLite", "description"]] + [
            [name, str(len(_active(release, name))), str(len(release.records[name])),
             resource.schema.get("description", "")] for name, resource in package.resources.items()]:
        for column, value in enumerate(cells):
            text(readme, row, column, value, bold if cells[0] == "table" else None)
        row += 1
    row += 1
    for cells in [["column", "title", "type", "description"]] + [
            [f"{name}.{f['name']}", f.get("title", ""), f.get("type", "string"), f.get("description", "")]
            for name, resource in package.resources.items() for f in resource.schema.get("fields", [])]:
        for column, value in enumerate(cells):
            text(readme, row, column, value, bold if cells[0] == "column" else None)
        row += 1

    for name, resource in package.resources.items():
        sheet = book.add_worksheet(sheets[name])
        fields = resource.schema.get("fields", [])
        for column, f in enumerate(fields):
            text(sheet, 0, column, f["name"], bold)
        rows = _active(release, name)
        for row, record in enumerate(rows, start=1):
            for column, f in enumerate(fields):
                value = record[f["name"]]
                if value is None:
                    continue
                if isinstance(value, (int, float)):
                    sheet.write_number(row, column, value)
                elif isinstance(value, dt.date):
                    sheet.write_datetime(row, column, value, date)
                else:
                    text(sheet, row, column, value)
        sheet.freeze_panes(1, 0)
        if fields:
            sheet.autofilter(0, 0, max(len(rows), 1), len(fields) - 1)
    book.close()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as packed:
        entries = [(info.filename, packed.read(info)) for info in packed.infolist()]
    return _zip(entries, release.zip_time)


def _json_value(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def geojson_bytes(release: Release) -> bytes:
    """Active incidents with coordinates as RFC 7946 points ([longitude, latitude])."""
    features, unplaced = [], 0
    resource = release.package["incidents"]
    for index, (row, keep) in enumerate(zip(release.records["incidents"], counted(resource.typed))):
        if not keep:
            continue
        lat, lon = row.get("latitude"), row.get("longitude")
        if lat is None or lon is None:
            unplaced += 1
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CivharmError(f"{resource.path}:{resource.line_of(index)}: latitude {lat}, longitude {lon} "
                               "is not a place on Earth; run `civharm validate`")
        properties = {k: _json_value(v) for k, v in row.items() if k not in ("latitude", "longitude")}
        features.append({"type": "Feature", "id": row.get("incident_id"),
                         "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": properties})
    note = active_only_note(release.package, release.version) + (
        f" Property types for GDAL 3.11+ and geopandas (a property empty in every feature is read as text without them): "
        f"open with OGR_SCHEMA={release.name('-incidents-ogr-schema.json')}.")
    if unplaced:
        note += f" {unplaced} active incident(s) without coordinates are not in this file."
    head = {"type": "FeatureCollection", "name": release.name("-incidents"),
            "civharm:version": release.version, "civharm:note": note}
    # One feature per line: small diffs between releases, and still one JSON document.
    lines = ",\n".join(json.dumps(feature, ensure_ascii=False) for feature in features)
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n' + lines + ("\n" if lines else "") + "]}\n"
    return text.encode("utf-8")


# Table Schema type → OGR field type, for GDAL's OGR_SCHEMA open option (GDAL 3.11 and later).
OGR_TYPES = {"integer": "Integer64", "number": "Real", "date": "Date", "string": "String"}


def geojson_schema_bytes(release: Release) -> bytes:
    """The GeoJSON's property types for GDAL's ``OGR_SCHEMA`` open option.

    GDAL guesses a GeoJSON property's type from its values, and a property that is empty in
    every feature has none to guess from, so it becomes a string. JSON cannot type a null, so
    the types travel beside the file: ``ogr2ogr -oo OGR_SCHEMA=<this file>`` or
    ``geopandas.read_file(..., OGR_SCHEMA=<this file>)`` read every integer as an integer.
    """
    fields = [{"name": f["name"], "type": OGR_TYPES.get(f.get("type", "string"), "String")}
              for f in release.package["incidents"].schema.get("fields", []) if f["name"] not in ("latitude", "longitude")]
    schema = {"layers": [{"name": release.name("-incidents"), "schemaType": "Patch", "fields": fields}]}
    return (json.dumps(schema, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


# Tables published as HXL CSV for HDX: the records people count (incidents) and the totals to compare them with.
HXL_TABLES = ("incidents", "aggregates")
ISO3_COLUMN = ("country_iso3", "#country+code+v_iso3")  # HDX keys countries by ISO 3166-1 alpha-3
OPEN_MAX_SUFFIX = "_max_open"
HXL_OPEN_RANGE_TEXT = (
    "An open range is a figure with a minimum and no stated maximum (\"at least 10\"); its `_max` cell is empty, "
    "which HXL tools sum as 0, so a plain sum of a `+max` column can come out below the sum of the `+min` column. "
    "The HXL CSV of incidents therefore carries, after each `<figure>_max`, a column `<figure>_max_open` "
    "(tagged `#meta+max_open` with the figure's attributes): `1` when that row's maximum is open, `0` when it is "
    "stated, empty when the row gives no figure at all. To sum a range over rows: the lower bound is the sum of "
    "`+min` (an empty minimum adds 0); the upper bound is the sum of `+max` only when the sum of `_max_open` is 0, "
    "and is open (no upper bound: write \"at least\" the lower bound) otherwise. Never sum the figures of a "
    "merged or retracted incident; the file holds active incidents only.")


def _iso3(alpha_2: str) -> str:
    """ISO 3166-1 alpha-3 for an alpha-2 code, from pycountry's copy of the ISO tables; '' when ISO has none."""
    import pycountry

    country = pycountry.countries.get(alpha_2=alpha_2) if alpha_2 else None
    return country.alpha_3 if country is not None else ""


def _open_flag(low: str, high: str) -> str:
    if high:
        return "0"
    return "1" if low else ""


def hxl_columns(fields: list[dict]) -> list[tuple[str, str, str, Callable[[dict], str]]]:
    """The HXL file's columns: each schema field, plus the derived ones, as (header, hashtag, source, value).

    Derived columns exist only in the HXL file (the CSV keeps one fact per cell): ISO alpha-3 after
    the alpha-2 country code, and after each ``<figure>_max`` whether that maximum is open.
    """
    names = {f["name"] for f in fields}
    columns: list[tuple[str, str, str, Callable[[dict], str]]] = []
    for f in fields:
        name = f["name"]
        columns.append((name, f.get("hxl", ""), name, lambda row, n=name: row[n]))
        if name == "country_code":
            columns.append((ISO3_COLUMN[0], ISO3_COLUMN[1], "derived from country_code",
                            lambda row: _iso3(row["country_code"])))
        if name.endswith("_max") and f"{name[:-4]}_min" in names:
            figure = name[:-4]
            attributes = [a for a in f.get("hxl", "").split("+")[1:] if a != "max"]
            header = f"{figure}{OPEN_MAX_SUFFIX} (1 = no maximum stated: a sum of {name} is then open)"
            columns.append((header, "+".join(["#meta", "max_open", *attributes]), f"derived from {figure}_min and {name}",
                            lambda row, lo=f"{figure}_min", hi=name: _open_flag(row[lo], row[hi])))
    return columns


def hxl_csv_bytes(release: Release, name: str = "incidents") -> bytes:
    """The rows of the views (active, not superseded) as committed, with a second row of HXL hashtags (for HDX)."""
    resource = release.package[name]
    columns = hxl_columns(resource.schema.get("fields", []))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header for header, _, _, _ in columns])
    writer.writerow([tag for _, tag, _, _ in columns])
    names = [f["name"] for f in resource.schema.get("fields", [])]
    for raw, keep in zip(resource.frame[names].itertuples(index=False, name=None), counted(resource.typed)):
        if keep:
            row = dict(zip(names, raw))
            writer.writerow([value(row) for _, _, _, value in columns])
    return out.getvalue().encode("utf-8")


# --- the build ----------------------------------------------------------------------------

def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _artifacts(release: Release) -> list[tuple[str, Callable[[Path], None]]]:
    """Every artifact as (path relative to the output folder, writer); order is the build order."""
    steps: list[tuple[str, Callable[[Path], None]]] = [
        (release.name(".zip"), lambda p: _write(p, data_package_zip(release))),
        (release.name(".sqlite"), lambda p: write_sqlite(release, p)),
    ]
    for name in release.package.resources:
        steps.append((f"{release.name('-parquet')}/{name}.parquet", lambda p, n=name: _write(p, parquet_bytes(release, n))))
    steps.append((release.name("-datasette.json"), lambda p: _write(p, datasette_metadata_bytes(release))))
    for relative, data in browse.site_files():
        steps.append((f"{release.name('-site')}/{relative}", lambda p, d=data: _write(p, d)))
    steps.append((release.name(".xlsx"), lambda p: _write(p, xlsx_bytes(release))))
    for name in HXL_TABLES:
        if name in release.package.resources:
            steps.append((release.name(f"-{name}-hxl.csv"), lambda p, n=name: _write(p, hxl_csv_bytes(release, n))))
    if "incidents" in release.package.resources:
        steps.append((release.name("-incidents.geojson"), lambda p: _write(p, geojson_bytes(release))))
        steps.append((release.name("-incidents-ogr-schema.json"), lambda p: _write(p, geojson_schema_bytes(release))))
        for file, content in charts.contents(release.package, release.version).items():
            steps.append((f"{release.name('-charts')}/{file}", lambda p, c=content: _write(p, charts.draw(c))))
    return steps


def _leaves_folder(relative: str) -> bool:
    """Whether a relative path written or unpacked in a folder could land outside it.

    It stays inside when each of its parts is a plain name: no '..', '.', empty part or
    backslash, and no leading '/'. A folder made new holds no link that could lead out.
    """
    parts = relative.split("/")
    return PurePosixPath(relative).parts != tuple(parts) or ".." in parts or "\\" in relative


def _check_inside(relatives: list[str], out: Path) -> None:
    """Refuse before writing anything when an artifact path would leave ``out``.

    Resource names become file names; loading already reports a name that breaks the Data
    Package name rule, and this check holds for any package handed to ``build``.
    """
    for relative in relatives:
        parts = relative.split("/")
        if _leaves_folder(relative):
            raise CivharmError(f"cannot build: {relative} would be written outside {out}; resource names must be "
                               "lowercase letters, digits, '-', '.' and '_' only")
        if max(len(part.encode("utf-8")) for part in parts) > NAME_MAX:
            raise CivharmError(f"cannot build: {quote(relative)} has a file name longer than {NAME_MAX} bytes; "
                               "file names come from the version and the resource names: shorten them")


def _check_out_dir(out: Path, root: Path) -> None:
    """The output folder is replaced whole, so refuse one that holds anything else."""
    if out.exists() and not out.is_dir():
        raise CivharmError(f"{out}: exists and is not a folder")
    resolved = out.resolve()
    if root.resolve() == resolved or resolved in root.resolve().parents:
        raise CivharmError(f"{out}: holds the package itself; choose an output folder such as dist/")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not (p.name.startswith("civharm-") or p.name == CHECKSUMS))
        if foreign:
            raise CivharmError(f"{out}: holds {', '.join(foreign)}, which `civharm build` did not write; "
                               "it replaces the whole folder, so move them or choose another --out")


def _swap_in(staging: Path, out: Path, fault: FaultHook | None, index: int) -> None:
    """Put ``staging`` where ``out`` is; on any failure put the old folder back."""
    backup = staging.with_name(staging.name + ".old")
    had_old = out.exists()
    if had_old:
        os.rename(out, backup)
    try:
        if fault is not None:
            fault(index, out)
        os.rename(staging, out)
    except BaseException:
        if had_old:
            os.rename(backup, out)
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)


def build(package_path: str | Path | Package, out_dir: str | Path, *, fault: FaultHook | None = None,
          version: str | None = None) -> list[Path]:
    """Write every artifact and ``SHA256SUMS`` into ``out_dir``, replacing it whole, or change nothing.

    ``fault(index, path)`` is called before each file is written and before the final swap;
    tests raise from it to prove that a failure leaves ``out_dir`` as it was.
    """
    package = package_path if isinstance(package_path, Package) else load_package(package_path)
    release = prepare(package, version)
    out = Path(out_dir)
    _check_out_dir(out, package.root)
    steps = _artifacts(release)
    _check_inside([relative for relative, _ in steps], out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for index, (relative, write) in enumerate(steps):
            if fault is not None:
                fault(index, out / relative)
            write(staging / relative)
        relatives = sorted(relative for relative, _ in steps)
        sums = "".join(f"{hashlib.sha256((staging / r).read_bytes()).hexdigest()}  {r}\n" for r in relatives)
        if fault is not None:
            fault(len(steps), out / CHECKSUMS)
        _write(staging / CHECKSUMS, sums.encode("ascii"))
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a release folder is not
        _swap_in(staging, out, fault, len(steps) + 1)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tops = sorted({relative.split("/", 1)[0] for relative in relatives} | {CHECKSUMS})
    return [out / top for top in tops]
