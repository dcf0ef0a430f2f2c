"""`civharm build`: every artifact read back, reproducible bytes, active-only files, all-or-nothing writes."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import time
import zipfile
from pathlib import Path

import frictionless
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from civharm.build import FALLBACK_EPOCH, build, source_date_epoch
from civharm.cli import main
from civharm.findings import CivharmError
from conftest import REPO, build_package, set_cell

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z
ARROW = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "date": pa.date32()}
FIRST = "inc_01M8BXYJ9JXC1F8JK54GB4ADWP"
FORMULA = '=HYPERLINK("http://example.org/x","click") looks like a formula but is a summary'


def csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def tables(package: Path) -> dict[str, list[dict]]:
    """Every table as the CSV module reads it: the reference the artifacts are counted against."""
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    return {r["name"]: csv_rows(package / r["path"]) for r in descriptor["resources"]}


def schema(package: Path, name: str) -> dict:
    return json.loads((package / "schema" / f"{name}.json").read_text(encoding="utf-8"))


def active(rows: list[dict]) -> list[dict]:
    """The rows people count: active and not superseded."""
    return [row for row in rows if row.get("status", "active") == "active" and not row.get("superseded_by")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def fixed_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The repository's real records, built once: (package folder, dist folder)."""
    root = tmp_path_factory.mktemp("real")
    package = build_package(root / "pkg", REPO / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
        build(package, root / "dist")
    return package, root / "dist"


@pytest.fixture
def mixed(tmp_path) -> Path:
    """valid-minimal with a merged incident and a retracted damage row."""
    package = build_package(tmp_path / "pkg")
    incidents = package / "data" / "incidents.csv"
    set_cell(incidents, 3, "status", "merged")
    set_cell(incidents, 3, "merged_into", FIRST)
    set_cell(incidents, 3, "status_reason", "Duplicate of the first incident")
    set_cell(package / "data" / "damage.csv", 3, "status", "retracted")
    return package


def version_of(package: Path) -> str:
    return json.loads((package / "datapackage.json").read_text(encoding="utf-8"))["version"]


# --- reproducibility and checksums -------------------------------------------------------------

def test_two_builds_give_identical_files_and_sha256sums(real, tmp_path):
    package, first = real
    time.sleep(1.1)  # a wall-clock timestamp anywhere would now differ
    again = build(package, tmp_path / "elsewhere" / "dist")
    assert (first / "SHA256SUMS").read_bytes() == (tmp_path / "elsewhere" / "dist" / "SHA256SUMS").read_bytes()
    assert snapshot(first) == snapshot(tmp_path / "elsewhere" / "dist")
    assert [p.name for p in again] == sorted(p.name for p in first.iterdir())


def test_build_writes_the_declared_release_files_and_no_other(real):
    """build.RELEASE_FILES (which the README and the release's README list) is what build writes: every
    file matches one declared name, and every declared name is written."""
    import fnmatch

    from civharm.build import CHECKSUMS, RELEASE_FILES

    package, dist = real
    version = version_of(package)
    patterns = {name: name if name == CHECKSUMS else f"civharm-{version}{name}".replace("<table>", "*") for name, _ in RELEASE_FILES}
    written = [p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()]
    assert [f for f in written if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns.values())] == []
    assert [name for name, pattern in patterns.items() if not fnmatch.filter(written, pattern)] == []


def test_sha256sums_cover_every_file_and_match(real):
    _, dist = real
    listed = {}
    for line in (dist / "SHA256SUMS").read_text(encoding="ascii").splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {name: data for name, data in snapshot(dist).items() if name != "SHA256SUMS"}
    assert listed == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    v = version_of(real[0])
    assert {f"civharm-{v}.zip", f"civharm-{v}.sqlite", f"civharm-{v}.xlsx", f"civharm-{v}-incidents.geojson",
            f"civharm-{v}-incidents-hxl.csv", f"civharm-{v}-parquet/incidents.parquet"} <= set(listed)


def test_timestamps_inside_zip_and_xlsx_come_from_source_date_epoch(real):
    package, dist = real
    v = version_of(package)
    expected = time.gmtime(EPOCH)[:6]
    expected = expected[:5] + (expected[5] // 2 * 2,)
    for name in (f"civharm-{v}.zip", f"civharm-{v}.xlsx"):
        with zipfile.ZipFile(dist / name) as archive:
            assert {info.date_time for info in archive.infolist()} == {expected}, name
    with zipfile.ZipFile(dist / f"civharm-{v}.xlsx") as archive:
        core = archive.read("docProps/core.xml").decode()
    assert "<dcterms:created xsi:type=\"dcterms:W3CDTF\">2023-11-14T22:13:20Z</dcterms:created>" in core
    with zipfile.ZipFile(dist / f"civharm-{v}.zip") as archive:
        assert json.loads(archive.read("datapackage.json"))["created"] == "2023-11-14T22:13:20Z"


def test_another_epoch_changes_the_zip(real, tmp_path, monkeypatch):
    package, dist = real
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 86400))
    build(package, tmp_path / "dist")
    v = version_of(package)
    assert (dist / f"civharm-{v}.zip").read_bytes() != (tmp_path / "dist" / f"civharm-{v}.zip").read_bytes()


def test_epoch_from_last_commit_of_the_package_folder_else_fixed(tmp_path):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "datapackage.json").write_text("{}", encoding="utf-8")
    assert source_date_epoch(folder, environ={})[0] == FALLBACK_EPOCH
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {"GIT_COMMITTER_DATE": "1600000000 +0000", "GIT_AUTHOR_DATE": "1600000000 +0000",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git[:3] + ["init", "-q"], check=True, env=env)
    subprocess.run(git + ["add", "."], check=True, env=env)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True, env=env)
    epoch, provenance = source_date_epoch(folder, environ={})
    assert epoch == 1600000000
    assert provenance.startswith("Built from commit ") and "timestamps from that commit" in provenance
    assert source_date_epoch(folder, environ={"SOURCE_DATE_EPOCH": "42"})[0] == 42


def test_bad_source_date_epoch_is_an_error(valid_package, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(CivharmError, match="SOURCE_DATE_EPOCH: 'yesterday' is not a whole number"):
        build(valid_package, tmp_path / "dist")


@pytest.mark.parametrize("value, reason", [
    ("4354819200", "is after 2107-12-31T23:59:59Z, the last time a zip file can record"),
    ("9" * 5000, "is after 2107-12-31T23:59:59Z, the last time a zip file can record"),
    ("\u00b2", "is not a whole number of seconds since 1970"),
], ids=["year-2108", "5000-digits", "superscript-two"])
def test_source_date_epoch_out_of_range_is_one_line_exit_2_and_writes_nothing(valid_package, tmp_path, monkeypatch, value, reason):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    result = CliRunner().invoke(main, ["build", str(valid_package), "--out", str(tmp_path / "dist")])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith("Error: SOURCE_DATE_EPOCH: ") and reason in result.stderr
    assert len(result.stderr.splitlines()[-1]) < 200
    assert not (tmp_path / "dist").exists()


def test_the_last_epoch_a_zip_can_record_still_builds(valid_package, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "4354819199")
    build(valid_package, tmp_path / "dist")
    with zipfile.ZipFile(next((tmp_path / "dist").glob("*.zip"))) as archive:
        assert archive.infolist()[0].date_time == (2107, 12, 31, 23, 59, 58)


# --- each artifact read back ---------------------------------------------------------------------

def test_zip_validates_with_frictionless_and_carries_hash_and_bytes(real):
    package, dist = real
    v = version_of(package)
    report = frictionless.validate(str(dist / f"civharm-{v}.zip"))
    assert report.valid, report.flatten(["type", "note"])
    reference = tables(package)
    assert {task.name: task.stats.get("rows") or 0 for task in report.tasks} == {n: len(r) for n, r in reference.items()}
    with zipfile.ZipFile(dist / f"civharm-{v}.zip") as archive:
        descriptor = json.loads(archive.read("datapackage.json"))
        readme = archive.read("README.md").decode()
        for spec in descriptor["resources"]:
            data = (package / spec["path"]).read_bytes()
            assert archive.read(spec["path"]) == data
            assert spec["bytes"] == len(data)
            assert spec["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert "Active incidents only" in readme and "hold every row" in readme


def test_a_changed_byte_in_the_zip_fails_the_hash_check(real, tmp_path):
    package, dist = real
    v = version_of(package)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(dist / f"civharm-{v}.zip") as source, zipfile.ZipFile(tampered, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            out.writestr(info, data.replace(b",active,", b",Active,", 1) if info.filename == "data/incidents.csv" else data)
    report = frictionless.validate(str(tampered))
    assert "hash-count" in {error.type for task in report.tasks for error in task.errors}


def test_sqlite_holds_every_row_with_keys_indexes_descriptions_and_views(real):
    package, dist = real
    reference = tables(package)
    db = sqlite3.connect(dist / f"civharm-{version_of(package)}.sqlite")
    try:
        for name, rows in reference.items():
            assert db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] == len(rows), name
            keys = [row[1] for row in sorted(db.execute(f'PRAGMA table_info("{name}")'), key=lambda r: r[5]) if row[5]]
            assert keys == schema(package, name)["primaryKey"], name
            declared = {fk["fields"][0] for fk in schema(package, name).get("foreignKeys", [])}
            assert {row[3] for row in db.execute(f'PRAGMA foreign_key_list("{name}")')} == declared, name
            indexed = {row[2] for index in db.execute(f'PRAGMA index_list("{name}")')
                       for row in db.execute(f'PRAGMA index_info("{index[1]}")')}
            assert declared <= indexed, name
        described = {(t, c): d for t, c, d in db.execute('SELECT "table", "column", description FROM _columns')}
        expected = {(n, f["name"]): f["description"] for n in reference for f in schema(package, n)["fields"]}
        assert described == expected
        incidents, reports = reference["incidents"], reference["reports"]
        assert db.execute("SELECT count(*) FROM active_incidents").fetchone()[0] == len(active(incidents))
        current = [r for r in reports if r["status"] == "active" and not r["superseded_by"]]
        assert db.execute("SELECT count(*) FROM current_reports").fetchone()[0] == len(current)
        killed = db.execute("SELECT civilians_killed_min FROM incidents WHERE incident_id = ?", (FIRST,)).fetchone()[0]
        assert killed == (int(incidents[0]["civilians_killed_min"]) if incidents[0]["civilians_killed_min"] else None)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_datasette_on_the_released_sqlite_gives_the_serve_site(real):
    """`datasette civharm-V.sqlite -m civharm-V-datasette.json`: metadata, search and facets as `civharm serve` has them."""
    import asyncio

    from datasette.app import Datasette
    from datasette.utils import tilde_encode

    from datasette.plugins import pm

    from civharm import browse as browsing

    package, dist = real
    v = version_of(package)
    url = "/" + tilde_encode(f"civharm-{v}")  # Datasette's URL form of a name with dots
    meta = json.loads((dist / f"civharm-{v}-datasette.json").read_text(encoding="utf-8"))
    folder = dist / f"civharm-{v}-site"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        [relative for relative, _ in browsing.site_files()]
    before = set(pm.get_plugins())
    site = Datasette(immutables=[str(dist / f"civharm-{v}.sqlite")], metadata=meta,
                     template_dir=str(folder / "templates"), plugins_dir=str(folder / "plugins"))

    async def fetch(*paths):
        return [await site.client.get(path) for path in paths]

    database, browse, search, home, incident = asyncio.run(fetch(
        f"{url}.json", f"{url}/incidents_browse.json?_facet=country_code", f"{url}/incidents_browse.json?_search=Belgorod",
        "/", f"{url}/incidents/{FIRST}"))
    for plugin in set(pm.get_plugins()) - before:  # the site's plugin is process-wide: leave no trace
        pm.unregister(plugin)
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    assert meta["title"] == descriptor["title"]
    assert f"Version <strong>{v}</strong>" in home.text and "Recorded in this dataset, not a total." in home.text
    assert incident.status_code == 200 and 'class="incident-chart"' in incident.text and "Statements (" in incident.text
    assert meta["license_url"].startswith("https://")
    shown = {t["name"] for t in database.json()["tables"] if not t["hidden"]}
    assert shown == set(tables(package)) | {"coverage"}  # _columns, _package and the full-text tables are hidden
    incidents_meta = meta["databases"][f"civharm-{v}"]["tables"]["incidents"]
    assert incidents_meta["columns"]["summary"] == next(f["description"] for f in schema(package, "incidents")["fields"]
                                                         if f["name"] == "summary")
    assert browse.status_code == 200 and "country_code" in browse.json()["facet_results"]
    assert search.status_code == 200 and search.json()["rows"]
    assert all("Belgorod" in " ".join(str(c) for c in row) for row in search.json()["rows"])


def test_parquet_has_every_row_and_the_schema_types(real):
    package, dist = real
    for name, rows in tables(package).items():
        table = pq.read_table(dist / f"civharm-{version_of(package)}-parquet" / f"{name}.parquet")
        assert table.num_rows == len(rows), name
        fields = schema(package, name)["fields"]
        assert table.schema.names == [f["name"] for f in fields]
        for f in fields:
            column = table.schema.field(f["name"])
            assert column.type == ARROW[f["type"]], (name, f["name"])
            assert column.nullable == (not f.get("constraints", {}).get("required", False)), (name, f["name"])
            assert column.metadata[b"description"].decode() == f["description"]
    incidents = pq.read_table(dist / f"civharm-{version_of(package)}-parquet" / "incidents.parquet").to_pylist()
    assert [row["incident_id"] for row in incidents] == [row["incident_id"] for row in tables(package)["incidents"]]
    assert str(incidents[0]["date_start"]) == tables(package)["incidents"][0]["date_start"]


def test_a_default_pandas_read_of_parquet_gives_nullable_integers_and_dates(real):
    """`pd.read_parquet(path)`, no arguments: integer columns with empty cells stay integers, dates are dates."""
    package, dist = real
    import pandas as pd

    for name in tables(package):
        frame = pd.read_parquet(dist / f"civharm-{version_of(package)}-parquet" / f"{name}.parquet")
        for f in schema(package, name)["fields"]:
            dtype = frame[f["name"]].dtype
            if f["type"] == "integer":
                assert dtype == pd.Int64Dtype(), (name, f["name"], dtype)
            elif f["type"] == "date":
                assert pd.api.types.is_datetime64_any_dtype(dtype) or str(dtype).startswith("date32"), (name, f["name"], dtype)
    incidents = pd.read_parquet(dist / f"civharm-{version_of(package)}-parquet" / "incidents.parquet")
    assert incidents["civilians_killed_min"].isna().any()  # empty cells are <NA>, in an integer column
    assert str(incidents["date_start"].iloc[0]) == tables(package)["incidents"][0]["date_start"]


def test_xlsx_has_a_readme_first_then_active_rows_of_every_table(real):
    package, dist = real
    book = openpyxl.load_workbook(dist / f"civharm-{version_of(package)}.xlsx", read_only=True)
    try:
        assert book.sheetnames[0] == "README"
        readme = " ".join(str(c) for row in book["README"].iter_rows(values_only=True) for c in row if c)
        assert "Active incidents only" in readme and "hold every row" in readme
        for name, rows in tables(package).items():
            found = list(book[name].iter_rows(values_only=True))
            assert list(found[0]) == [f["name"] for f in schema(package, name)["fields"]], name
            assert len(found) - 1 == len(active(rows)), name
    finally:
        book.close()


def test_geojson_parses_and_its_points_are_in_range(real):
    package, dist = real
    collection = json.loads((dist / f"civharm-{version_of(package)}-incidents.geojson").read_text(encoding="utf-8"))
    placed = [r for r in active(tables(package)["incidents"]) if r["latitude"] and r["longitude"]]
    assert collection["type"] == "FeatureCollection"
    assert collection["civharm:note"].startswith("Active incidents only")
    assert [f["id"] for f in collection["features"]] == [r["incident_id"] for r in placed]
    for feature, row in zip(collection["features"], placed):
        lon, lat = feature["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert (lat, lon) == (float(row["latitude"]), float(row["longitude"]))
        for figure in ("civilians_killed_min", "all_killed_max"):
            assert feature["properties"][figure] == (int(row[figure]) if row[figure] else None)


def hxl_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def schema_part(rows: list[list[str]], fields: list[dict]) -> list[list[str]]:
    """The columns of an HXL CSV that are the schema's fields (the rest are derived for HDX)."""
    names = [f["name"] for f in fields]
    where = [rows[0].index(name) for name in names]
    return [[row[i] for i in where] for row in rows]


def test_hxl_csv_has_tags_from_the_schema_and_active_incidents(real):
    package, dist = real
    rows = hxl_rows(dist / f"civharm-{version_of(package)}-incidents-hxl.csv")
    fields = schema(package, "incidents")["fields"]
    ours = schema_part(rows, fields)
    assert ours[0] == [f["name"] for f in fields] and ours[1] == [f["hxl"] for f in fields]
    assert ours[2:] == [list(r.values()) for r in active(tables(package)["incidents"])]
    assert all(rows[1]), "every column of the HXL file has a hashtag"


def _hxl(path: Path):
    import hxl

    return hxl.data(str(path), hxl.InputOptions(allow_local=True)).cache()


@pytest.mark.parametrize("which", ["real", "fixture"])
def test_libhxl_reads_codes_with_their_vocabulary_and_sums_open_ranges_as_the_file_says(which, real, valid_package, tmp_path):
    """libhxl, as HDX tools use it: ISO codes named by +v_ attributes, alpha-3 beside alpha-2, and the
    sum recipe of the file (lower bound = sum of +min; upper bound = sum of +max only when no +max_open)."""
    import pycountry

    from civharm import charts

    if which == "real":
        package, dist = real
    else:  # valid-minimal: its second incident has civilians injured 101–(open)
        package, dist = valid_package, tmp_path / "dist"
        build(package, dist)
    source = _hxl(dist / f"civharm-{version_of(package)}-incidents-hxl.csv")
    assert all(column.tag for column in source.columns)
    rows = active(tables(package)["incidents"])
    assert [r.get("#country+code+v_iso2") for r in source] == [row["country_code"] for row in rows]
    assert [r.get("#country+code+v_iso3") for r in source] == [pycountry.countries.get(alpha_2=row["country_code"]).alpha_3
                                                              for row in rows]
    assert all(code.startswith(r.get("#country+code+v_iso2") + "-")
               for r in source for code in [r.get("#adm1+code+v_iso3166_2")] if code)
    for figure, attributes in (("civilians_killed", "+killed+civilians"), ("civilians_injured", "+injured+civilians"),
                               ("all_killed", "+killed+all")):
        totals = source.count("#country+code+v_iso3", aggregators=[
            f"sum(#affected{attributes}+min) as lo#x_lo", f"sum(#affected{attributes}+max) as hi#x_hi",
            f"sum(#meta+max_open{attributes}) as open#x_open"]).cache()
        expected = {}
        for row in rows:
            expected.setdefault(pycountry.countries.get(alpha_2=row["country_code"]).alpha_3, []).append(
                (int(row[f"{figure}_min"]) if row[f"{figure}_min"] else None, int(row[f"{figure}_max"]) if row[f"{figure}_max"] else None))
        for total in totals:
            band = charts.band(expected[total.get("#country")])
            low, high, opened = (float(total.get(t) or 0) for t in ("#x_lo", "#x_hi", "#x_open"))
            assert low == (band["low"] or 0), (figure, total.values)
            assert (opened > 0) == (band["open_max"] > 0), (figure, total.values)
            if not opened:  # a closed range: the sum of the maximums is the upper bound
                assert high == (band["high"] or 0), (figure, total.values)
    if which == "fixture":
        injured = [r.get("#meta+max_open+injured+civilians") for r in source]
        assert injured == ["", "1"] or injured == [None, "1"]


def test_hxl_aggregates_hold_the_rows_of_the_views_not_superseded_ones(valid_package, tmp_path):
    set_cell(valid_package / "data" / "aggregates.csv", 2, "superseded_by", "agg_01M8BXYJA0AAAAAAAAAAAAAAA3")
    build(valid_package, tmp_path / "dist")
    source = _hxl(tmp_path / "dist" / f"civharm-{version_of(valid_package)}-aggregates-hxl.csv")
    ids = [r.get("#meta+id") for r in source]
    assert ids == [r["aggregate_id"] for r in active(tables(valid_package)["aggregates"])]
    assert "agg_01M8BXYJA0AAAAAAAAAAAAAAA1" not in ids and len(ids) == 4
    assert {r.get("#country+code+v_iso3") for r in source} == {"RUS"}


# --- active rows only where people count ---------------------------------------------------------

def _view_ids(db, view: str, key: str) -> list[str]:
    return [row[0] for row in db.execute(f'SELECT "{key}" FROM "{view}" ORDER BY rowid')]


def test_every_file_people_count_from_holds_the_rows_of_the_views(real):
    """XLSX sheets, GeoJSON and HXL CSV hold exactly the rows of active_incidents and current_reports."""
    package, dist = real
    v = version_of(package)
    db = sqlite3.connect(dist / f"civharm-{v}.sqlite")
    try:
        incidents = _view_ids(db, "active_incidents", "incident_id")
        reports = _view_ids(db, "current_reports", "report_id")
        placed = {row[0] for row in db.execute("SELECT incident_id FROM active_incidents WHERE latitude IS NOT NULL")}
    finally:
        db.close()
    assert len(reports) < len(tables(package)["reports"])  # the real data has superseded and retracted reports
    book = openpyxl.load_workbook(dist / f"civharm-{v}.xlsx", read_only=True)
    try:
        assert [row[0] for row in book["incidents"].iter_rows(min_row=2, values_only=True)] == incidents
        assert [row[0] for row in book["reports"].iter_rows(min_row=2, values_only=True)] == reports
        readme = {row[0]: row[1] for row in book["README"].iter_rows(values_only=True) if row and row[0] in ("incidents", "reports")}
    finally:
        book.close()
    assert readme == {"incidents": str(len(incidents)), "reports": str(len(reports))}
    collection = json.loads((dist / f"civharm-{v}-incidents.geojson").read_text(encoding="utf-8"))
    assert [f["id"] for f in collection["features"]] == [i for i in incidents if i in placed]
    hxl = list(csv.reader(io.StringIO((dist / f"civharm-{v}-incidents-hxl.csv").read_text(encoding="utf-8"))))
    assert [row[0] for row in hxl[2:]] == incidents


def test_merged_and_retracted_rows_stay_out_of_count_files_but_not_the_zip_or_sqlite(mixed, tmp_path):
    dist = tmp_path / "dist"
    build(mixed, dist)
    v = version_of(mixed)
    collection = json.loads((dist / f"civharm-{v}-incidents.geojson").read_text(encoding="utf-8"))
    assert [f["id"] for f in collection["features"]] == [FIRST]
    assert "(1 of 2)" in collection["civharm:note"]
    assert len((dist / f"civharm-{v}-incidents-hxl.csv").read_text(encoding="utf-8").splitlines()) == 3
    book = openpyxl.load_workbook(dist / f"civharm-{v}.xlsx")
    assert book["incidents"].max_row == 2 and book["damage"].max_row == 2
    db = sqlite3.connect(dist / f"civharm-{v}.sqlite")
    try:
        assert db.execute("SELECT count(*) FROM incidents").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM damage").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM active_incidents").fetchone()[0] == 1
        # the merged incident's report counts toward the incident it was merged into
        assert {row[0] for row in db.execute("SELECT counts_toward FROM current_reports")} == {FIRST}
    finally:
        db.close()
    with zipfile.ZipFile(dist / f"civharm-{v}.zip") as archive:
        assert archive.read("data/incidents.csv") == (mixed / "data" / "incidents.csv").read_bytes()
    assert pq.read_table(dist / f"civharm-{v}-parquet" / "incidents.parquet").num_rows == 2


def test_formula_like_text_stops_the_build_with_its_place_and_reaches_no_file(mixed, tmp_path):
    """Even a package handed to build() without validation: no release file gets a formula cell."""
    set_cell(mixed / "data" / "incidents.csv", 2, "summary", FORMULA)
    with pytest.raises(CivharmError) as caught:
        build(mixed, tmp_path / "dist")
    assert str(caught.value) == ("data/incidents.csv:2: summary: '=HYPERLINK(\"http://example.org/x\",\"click\") looks like a for… "
                                 "(80 characters) starts with '=', which spreadsheets run as a formula [text/formula-prefix]; "
                                 "run `civharm validate`")
    assert list(tmp_path.iterdir()) == [mixed]


def test_text_cells_are_written_as_text_in_the_xlsx(mixed, tmp_path):
    build(mixed, tmp_path / "dist")
    path = tmp_path / "dist" / f"civharm-{version_of(mixed)}.xlsx"
    with zipfile.ZipFile(path) as archive:
        sheets = [archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
    assert not any(b"<f>" in xml or b"<f " in xml for xml in sheets)


# --- all or nothing ------------------------------------------------------------------------------

class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("at", [1, 2, 5, "checksums", "swap"])
def test_a_fault_between_two_files_leaves_dist_byte_identical(mixed, tmp_path, at):
    dist = tmp_path / "out" / "dist"
    steps = []
    build(mixed, dist, fault=lambda index, path: steps.append((index, path.name)))
    before = snapshot(dist)
    set_cell(mixed / "data" / "incidents.csv", 2, "summary", "A different summary, so the next build differs.")
    index = {"checksums": len(steps) - 2, "swap": len(steps) - 1}.get(at, at)

    def fault(i, path):
        if i == index:
            raise Boom(f"injected at {i} ({path.name})")

    with pytest.raises(Boom):
        build(mixed, dist, fault=fault)
    assert snapshot(dist) == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dist"]  # no temporary folder left behind
    build(mixed, dist)
    assert snapshot(dist) != before


def test_a_fault_on_the_first_build_leaves_no_dist(mixed, tmp_path):
    def fault(index, path):
        if index == 3:
            raise Boom("injected")

    with pytest.raises(Boom):
        build(mixed, tmp_path / "out" / "dist", fault=fault)
    assert list((tmp_path / "out").iterdir()) == []


def test_refuses_to_replace_a_folder_holding_other_files(valid_package, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(CivharmError, match="holds notes.txt, which `civharm build` did not write"):
        build(valid_package, dist)
    assert (dist / "notes.txt").read_text(encoding="utf-8") == "mine"
    with pytest.raises(CivharmError, match="holds the package itself"):
        build(valid_package, valid_package.parent)


def test_a_cell_that_does_not_convert_stops_the_build_with_its_place(valid_package, tmp_path):
    set_cell(valid_package / "data" / "incidents.csv", 3, "geonames_id", "abc")
    with pytest.raises(CivharmError) as caught:
        build(valid_package, tmp_path / "dist")
    assert str(caught.value) == "data/incidents.csv:3: geonames_id: 'abc' is not a valid integer; run `civharm validate`"
    assert not (tmp_path / "dist").exists()


# --- the command -----------------------------------------------------------------------------------

def test_cli_build_prints_the_files_and_says_active_only(valid_package):
    result = CliRunner().invoke(main, ["build", str(valid_package)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    dist = valid_package / "dist"
    assert result.stdout.splitlines() == [str(p) for p in sorted(dist.iterdir())]
    first, second = result.stderr.splitlines()[:2]
    version = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))["version"]
    assert first == f"building version {version}-dev.nogit"  # not a git repository: no commit to name
    assert second.startswith("Active incidents only (2 of 2)") and f"civharm-{version}-dev.nogit.zip" in second


@pytest.mark.parametrize(("cell", "value", "rule"), [
    ("summary", FORMULA, "text/formula-prefix"),
    ("date_end", "2020-01-01", "dates/end-before-start"),
], ids=["formula", "dates"])
def test_cli_build_refuses_a_package_that_does_not_validate(valid_package, tmp_path, cell, value, rule):
    """Exit 1, the findings printed as `validate` prints them, nothing written."""
    set_cell(valid_package / "data" / "incidents.csv", 2, cell, value)
    result = CliRunner().invoke(main, ["build", str(valid_package), "--out", str(tmp_path / "dist")])
    assert result.exit_code == 1, result.output
    assert f"data/incidents.csv:2: {cell}: " in result.stdout and f"[{rule}]" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("invalid: ")
    assert result.stderr.splitlines()[-1].startswith("Error: cannot build: the package does not validate (")
    assert list(tmp_path.iterdir()) == [valid_package]


def test_cli_build_error_is_one_line_and_exit_2(valid_package, tmp_path):
    out = tmp_path / "dist"
    out.mkdir()
    (out / "keep.me").write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(valid_package), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] + "\n" == (f"Error: {out}: holds keep.me, which `civharm build` did not write; "
                             "it replaces the whole folder, so move them or choose another --out\n")


# --- names from the data never become paths outside --out -------------------------------------------

ESCAPING_NAME = "../../escaped"  # civharm-V-parquet/../../escaped.parquet: beside --out, not in it


def _rename_resource(package: Path, index: int, name: str) -> None:
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"][index]["name"] = name
    (package / "datapackage.json").write_text(json.dumps(descriptor, indent=2), encoding="utf-8")


def test_a_resource_name_that_leaves_out_is_a_located_error_and_nothing_is_written(valid_package, tmp_path):
    _rename_resource(valid_package, 2, ESCAPING_NAME)
    out = tmp_path / "out" / "dist"
    result = CliRunner().invoke(main, ["build", str(valid_package), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        "Error: cannot build: 1 problem(s) while reading the package, first datapackage.json#/resources/2/name: name: "
        "resource name '../../escaped' must be lowercase letters, digits, '-', '.' and '_' only (the Data Package "
        "name rule): it names tables and release files; run `civharm validate`")
    assert list(tmp_path.iterdir()) == [valid_package] and not list(tmp_path.rglob("escaped*"))


def test_every_output_path_is_checked_to_stay_inside_out(valid_package, tmp_path):
    """A package whose names were not checked on loading (built in memory) still cannot write outside --out."""
    from civharm.package import load_package

    _rename_resource(valid_package, 2, ESCAPING_NAME)
    package = load_package(valid_package)
    package.findings.clear()
    with pytest.raises(CivharmError) as caught:
        build(package, tmp_path / "out" / "dist")
    assert str(caught.value) == (f"cannot build: civharm-{version_of(valid_package)}-parquet/../../escaped.parquet would be "
                                 f"written outside {tmp_path / 'out' / 'dist'}; resource names must be lowercase letters, "
                                 "digits, '-', '.' and '_' only")
    assert list(tmp_path.iterdir()) == [valid_package] and not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize(("names", "message"), [
    (["readme"], "datapackage.json#/resources/5/name: 'readme' would name the same XLSX sheet as 'README'"),
    (["x" * 31 + "-one", "x" * 31 + "-two"], f"datapackage.json#/resources/5/name: '{'x' * 31}-one' would name the same XLSX sheet as '{'x' * 31}-two'"),
    (["x" * 250], "has a file name longer than 255 bytes; file names come from the version and the resource names: shorten them"),
], ids=["readme", "same-31-characters", "too-long"])
def test_a_name_that_cannot_name_a_file_or_sheet_is_refused_and_nothing_is_written(valid_package, tmp_path, names, message):
    """Names that follow the Data Package rule can still clash in Excel or exceed a file name's length."""
    for index, name in zip((5, 4), names):
        _rename_resource(valid_package, index, name)
    result = CliRunner().invoke(main, ["build", str(valid_package), "--out", str(tmp_path / "dist")])
    assert result.exit_code == 2, result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: ") and message in last and "internal error" not in last
    assert list(tmp_path.iterdir()) == [valid_package]


def test_a_data_path_that_climbs_out_and_back_in_is_not_written_into_the_zip(valid_package, tmp_path):
    """'data/../../pkg/…' resolves inside the package here, but unpacked elsewhere it would land beside the folder."""
    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"][2]["path"] = f"data/../../{valid_package.name}/data/damage.csv"
    (valid_package / "datapackage.json").write_text(json.dumps(descriptor, indent=2), encoding="utf-8")
    with pytest.raises(CivharmError) as caught:  # build() itself, since `civharm build` stops at validation first
        build(valid_package, tmp_path / "dist")
    assert str(caught.value) == (  # the Data Package spec forbids `..`: reading the package refuses it before build's own check
        "cannot build: 1 problem(s) while reading the package, first datapackage.json#/resources/2/path: path: "
        "path 'data/../../pkg/data/damage.csv' must be a relative path inside the package; run `civharm validate`")
    assert list(tmp_path.iterdir()) == [valid_package]
    result = CliRunner().invoke(main, ["build", str(valid_package), "--out", str(tmp_path / "dist")])
    assert result.exit_code == 2 and "must be a relative path inside the package" in result.stderr, result.output
    assert list(tmp_path.iterdir()) == [valid_package]


def test_the_readme_lists_every_file_build_writes(real):
    """README's "Releases and downloads" table names each file and folder of dist/, and nothing else."""
    package, dist = real
    v = version_of(package)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Releases and downloads", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    listed = {name.split("/")[0] + ("/" if "/" in name else "") for name in listed}  # a folder's row names its files
    written = {p.name.replace(v, "X.Y.Z") + ("/" if p.is_dir() else "") for p in dist.iterdir()}
    assert listed == written


def test_aggregates_are_in_every_release_file(valid_package, tmp_path):
    """The totals table travels like the others: zip, SQLite, Parquet, XLSX, and an HXL CSV of its own."""
    build(valid_package, tmp_path / "dist")
    dist, v = tmp_path / "dist", version_of(valid_package)
    rows = tables(valid_package)["aggregates"]
    assert len(rows) == 5
    with zipfile.ZipFile(dist / f"civharm-{v}.zip") as archive:
        assert any(n.endswith("data/aggregates.csv") for n in archive.namelist())
    db = sqlite3.connect(dist / f"civharm-{v}.sqlite")
    try:
        assert db.execute("SELECT count(*) FROM aggregates").fetchone()[0] == 5
    finally:
        db.close()
    assert pq.read_table(dist / f"civharm-{v}-parquet" / "aggregates.parquet").num_rows == 5
    book = openpyxl.load_workbook(dist / f"civharm-{v}.xlsx", read_only=True)
    try:
        assert len(list(book["aggregates"].iter_rows(values_only=True))) == 6
    finally:
        book.close()
    hxl = schema_part(hxl_rows(dist / f"civharm-{v}-aggregates-hxl.csv"), schema(valid_package, "aggregates")["fields"])
    fields = schema(valid_package, "aggregates")["fields"]
    assert hxl[0] == [f["name"] for f in fields] and hxl[1] == [f.get("hxl", "") for f in fields]
    assert hxl[2:] == [list(r.values()) for r in active(rows)]


def test_geojson_with_its_ogr_schema_reads_integers_as_integers_in_gdal_and_geopandas(valid_package, tmp_path):
    """GDAL (through pyogrio, geopandas' engine) types a property empty in every feature as text; the
    companion OGR_SCHEMA file types every property from the Table Schema."""
    import geopandas
    import pyogrio

    build(valid_package, tmp_path / "dist")
    v = version_of(valid_package)
    path = tmp_path / "dist" / f"civharm-{v}-incidents.geojson"
    types = tmp_path / "dist" / f"civharm-{v}-incidents-ogr-schema.json"
    fields = {f["name"]: f["type"] for f in schema(valid_package, "incidents")["fields"] if f["name"] not in ("latitude", "longitude")}
    assert not any(row["children_killed_min"] for row in tables(valid_package)["incidents"])  # empty in every feature

    def ogr_types(**options) -> dict[str, str]:
        info = pyogrio.read_info(path, **options)
        return dict(zip(info["fields"], info["ogr_types"]))

    guessed = ogr_types()
    assert guessed["children_killed_min"] == "OFTString"  # why the companion file exists
    typed = ogr_types(OGR_SCHEMA=str(types))
    wanted = {"integer": "OFTInteger64", "number": "OFTReal", "date": "OFTDate", "string": "OFTString"}
    assert {name: typed[name] for name in fields} == {name: wanted[kind] for name, kind in fields.items()}
    frame = geopandas.read_file(path, OGR_SCHEMA=str(types), use_arrow=True,
                                arrow_to_pandas_kwargs={"types_mapper": {pa.int64(): pd.Int64Dtype()}.get})
    assert {name: str(frame[name].dtype) for name, kind in fields.items() if kind == "integer"} == \
        {name: "Int64" for name, kind in fields.items() if kind == "integer"}
    assert frame["children_killed_min"].isna().all() and frame["civilians_killed_min"].tolist()[1] == 25
    collection = json.loads(path.read_text(encoding="utf-8"))
    assert f"OGR_SCHEMA=civharm-{v}-incidents-ogr-schema.json" in collection["civharm:note"]
