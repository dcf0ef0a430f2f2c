"""`civharm download` against a loopback HTTP server, and `civharm.load` from every kind of copy."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import civharm
from civharm.cli import main
from civharm.findings import CivharmError
from conftest import REPO, build_package, loopback

VERSION = "1.0.0"
ZIP = f"civharm-{VERSION}.zip"
MINIMAL_ROWS = {"incidents": 2, "reports": 2, "damage": 2, "sources": 1, "changes": 0}


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def zip_package(package: Path, zip_path: Path, top: str | None = f"civharm-{VERSION}") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(package.rglob("*")):
            if file.is_file():
                relative = file.relative_to(package).as_posix()
                archive.write(file, f"{top}/{relative}" if top else relative)
    return zip_path


def publish(site: Path, zip_bytes: bytes, listed_digest: str | None = None) -> None:
    """Lay out one release as the download expects: <site>/<VERSION>/{SHA256SUMS, civharm-VERSION.zip}."""
    folder = site / VERSION
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ZIP).write_bytes(zip_bytes)
    digest = listed_digest or hashlib.sha256(zip_bytes).hexdigest()
    (folder / "SHA256SUMS").write_text(f"{digest}  {ZIP}\n", encoding="utf-8")


class ReleaseHandler(SimpleHTTPRequestHandler):
    """Serves a folder; for paths in ``cut``, promises the full length but sends half and hangs up."""

    cut: set[str] = set()

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        if self.path.lstrip("/") in self.cut:
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A threaded HTTP server on 127.0.0.1 (port chosen by the OS) serving tmp_path/site."""
    site = tmp_path / "site"
    site.mkdir()
    handler = type("Handler", (ReleaseHandler,), {"cut": set()})
    with loopback(partial(handler, directory=str(site))) as (base, _):
        yield site, base, handler


@pytest.fixture
def release_zip(tmp_path) -> bytes:
    package = build_package(tmp_path / "release-src")
    return zip_package(package, tmp_path / "release.zip").read_bytes()


@pytest.fixture(autouse=True)
def no_configured_location(monkeypatch, tmp_path):
    """Tests never see the developer's own settings or cache."""
    monkeypatch.delenv("CIVHARM_RELEASES_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def assert_nothing_left(out: Path) -> None:
    assert not out.exists(), sorted(p.name for p in out.iterdir())


# --- download ---------------------------------------------------------------------------------


def test_download_verifies_and_unpacks(server, release_zip, tmp_path):
    site, base, _ = server
    publish(site, release_zip)
    target = tmp_path / "out" / VERSION
    result = invoke("download", VERSION, "--base-url", base, "--to", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{target}\n"
    assert f"({len(release_zip)} bytes, sha256 {hashlib.sha256(release_zip).hexdigest()} verified)" in result.stderr
    assert (target / "datapackage.json").is_file()
    assert sorted(p.name for p in (target / "data").iterdir()) == sorted(
        p.name for p in (REPO / "tests/fixtures/packages/valid-minimal/data").iterdir())
    assert [p.name for p in (tmp_path / "out").iterdir()] == [VERSION]  # no staging folder left


def test_download_uses_the_environment_variable_and_the_cache(server, release_zip, tmp_path, monkeypatch):
    site, base, _ = server
    publish(site, release_zip)
    monkeypatch.setenv("CIVHARM_RELEASES_URL", base + "/")
    result = invoke("download", VERSION)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'cache' / 'civharm' / VERSION}\n"
    again = invoke("download", VERSION)
    assert again.exit_code == 0
    assert "already there; pass --force to fetch it again" in again.stderr


def test_corrupted_file_is_refused_and_nothing_is_left(server, release_zip, tmp_path):
    site, base, _ = server
    publish(site, release_zip)
    corrupted = bytearray(release_zip)
    corrupted[len(corrupted) // 2] ^= 0xFF
    (site / VERSION / ZIP).write_bytes(bytes(corrupted))
    out = tmp_path / "out"
    result = invoke("download", VERSION, "--base-url", base, "--to", str(out / VERSION))
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {base}/{VERSION}/{ZIP}: checksum mismatch (SHA256SUMS says {hashlib.sha256(release_zip).hexdigest()}, "
        f"the file has {hashlib.sha256(bytes(corrupted)).hexdigest()}); nothing was kept\n")
    assert_nothing_left(out)


def test_truncated_file_is_refused_and_nothing_is_left(server, release_zip, tmp_path):
    site, base, handler = server
    publish(site, release_zip)
    handler.cut.add(f"{VERSION}/{ZIP}")
    out = tmp_path / "out"
    result = invoke("download", VERSION, "--base-url", base, "--to", str(out / VERSION))
    assert result.exit_code == 2
    assert result.output == f"Error: {base}/{VERSION}/{ZIP}: connection cut after {len(release_zip) // 2} of {len(release_zip)} bytes\n"
    assert_nothing_left(out)


def test_failed_download_keeps_an_existing_target_untouched(server, release_zip, tmp_path):
    site, base, handler = server
    publish(site, release_zip)
    target = tmp_path / "out" / VERSION
    assert invoke("download", VERSION, "--base-url", base, "--to", str(target)).exit_code == 0
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    handler.cut.add(f"{VERSION}/{ZIP}")
    result = invoke("download", VERSION, "--base-url", base, "--to", str(target), "--force")
    assert result.exit_code == 2
    assert {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == [VERSION]


def test_missing_base_url_says_how_to_set_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("download", VERSION, "--to", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output == ('Error: no release location configured: set "civharm:releases" in datapackage.json, '
                             "set CIVHARM_RELEASES_URL or pass --base-url\n")
    assert_nothing_left(tmp_path / "out")


def test_download_with_nothing_set_uses_the_address_in_the_descriptor(server, release_zip, tmp_path, monkeypatch):
    """Inside a package whose descriptor names its releases address, `civharm download VERSION` needs no setting."""
    site, base, _ = server
    publish(site, release_zip)
    package = build_package(tmp_path / "checkout")
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["civharm:releases"] = base
    (package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    monkeypatch.chdir(package / "data")
    result = invoke("download", VERSION)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'cache' / 'civharm' / VERSION}\n"
    publish_as = site / f"v{VERSION}"  # GitHub's layout: …/releases/download/v1.0.0/FILE
    (site / VERSION).rename(publish_as)
    descriptor["civharm:releases"] = base + "/v{version}"
    (package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    assert invoke("download", VERSION, "--force").exit_code == 0
    monkeypatch.setenv("CIVHARM_RELEASES_URL", "http://127.0.0.1:9/unused")  # the variable still overrides
    assert "127.0.0.1:9" in invoke("download", VERSION, "--force").output


def test_unknown_version_reports_the_http_status(server, tmp_path):
    _, base, _ = server
    result = invoke("download", "9.9.9", "--base-url", base, "--to", str(tmp_path / "out" / "9.9.9"))
    assert result.exit_code == 2
    assert result.output == f"Error: {base}/9.9.9/SHA256SUMS: HTTP 404 File not found\n"
    assert_nothing_left(tmp_path / "out")


def test_zip_slip_member_is_refused(server, tmp_path):
    site, base, _ = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("datapackage.json", "{}")
        archive.writestr("../escaped.txt", "outside")
    publish(site, buffer.getvalue())
    out = tmp_path / "out"
    result = invoke("download", VERSION, "--base-url", base, "--to", str(out / VERSION))
    assert result.exit_code == 2
    assert result.output == f"Error: {base}/{VERSION}/{ZIP}: refusing unsafe member path '../escaped.txt'\n"
    assert_nothing_left(out)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_version_cannot_walk_out_of_the_cache(tmp_path):
    result = invoke("download", "../1.0.0", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert result.output == "Error: '../1.0.0' is not a release version (expected e.g. 1.0.0)\n"


# --- load -------------------------------------------------------------------------------------


def assert_typed(tables: dict[str, pd.DataFrame], rows: dict[str, int]) -> None:
    assert {name: len(tables[name]) for name in rows} == rows
    incidents = tables["incidents"]
    assert incidents["geonames_id"].dtype == "Int64"
    assert incidents["latitude"].dtype == "Float64"
    assert pd.api.types.is_datetime64_any_dtype(incidents["date_start"])
    assert isinstance(incidents["summary"].dtype, pd.StringDtype)
    assert incidents["civilians_killed_min"].isna().sum() == 1  # empty stays NA, never 0


def test_load_from_the_repository_finds_the_package_upwards(monkeypatch):
    monkeypatch.chdir(REPO / "scripts" / "civharm")
    tables = civharm.load()
    rows = {name: sum(1 for _ in csv.reader(open(REPO / f"data/{name}.csv", encoding="utf-8", newline=""))) - 1
            for name in ("incidents", "reports", "damage", "sources")}
    assert {name: len(tables[name]) for name in rows} == rows
    assert tables["reports"]["civilians_killed"].dtype == "Int64"


def test_load_from_a_folder_and_from_a_zip(tmp_path):
    package = build_package(tmp_path / "pkg")
    assert_typed(civharm.load(package), MINIMAL_ROWS)
    assert_typed(civharm.load(str(package / "datapackage.json")), MINIMAL_ROWS)
    assert_typed(civharm.load(zip_package(package, tmp_path / "nested.zip")), MINIMAL_ROWS)
    assert_typed(civharm.load(zip_package(package, tmp_path / "flat.zip", top=None)), MINIMAL_ROWS)


def test_load_a_downloaded_version(server, release_zip):
    site, base, _ = server
    publish(site, release_zip)
    assert invoke("download", VERSION, "--base-url", base).exit_code == 0
    assert_typed(civharm.load(VERSION), MINIMAL_ROWS)


def test_load_a_version_not_downloaded_says_how(tmp_path):
    with pytest.raises(CivharmError) as caught:
        civharm.load("2.0.0")
    folder = tmp_path / "cache" / "civharm" / "2.0.0"
    assert str(caught.value) == f"version 2.0.0 is not downloaded (looked in {folder}); run `civharm download 2.0.0` first"


def test_load_outside_any_repository_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CivharmError, match="no datapackage.json in .* or any folder above it"):
        civharm.load()


def test_load_refuses_a_table_it_cannot_read_instead_of_returning_it_empty(tmp_path):
    """A ';' dialect: the table is not read as one column-less frame (shape (2, 0)), load says why."""
    package = build_package(tmp_path / "pkg")
    incidents = package / "data" / "incidents.csv"
    rows = list(csv.reader(io.StringIO(incidents.read_text(encoding="utf-8"), newline="")))
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(rows)
    incidents.write_text(out.getvalue(), encoding="utf-8")
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"][0]["dialect"] = {"delimiter": ";"}
    (package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    with pytest.raises(CivharmError) as caught:
        civharm.load(package)
    assert str(caught.value) == (
        f"{package}: cannot load: datapackage.json#/resources/0/dialect/delimiter: dialect: delimiter ';' is not supported: "
        "save the file as plain CSV and remove the dialect; civharm reads each table from an uncompressed, comma-separated "
        "UTF-8 CSV file in the package; run `civharm validate` for details")


def _append_row(path: Path, base_line: int, **changes: str) -> None:
    """Copy the row at a physical line (header = 1), change some cells and append it."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    row = dict(rows[base_line - 2], **changes)
    out = io.StringIO()
    csv.DictWriter(out, fieldnames=list(row), lineterminator="\n").writerow(row)
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(out.getvalue())


def test_active_only_keeps_reports_of_merged_incidents_and_drops_the_rest(tmp_path):
    package = build_package(tmp_path / "pkg")
    data = package / "data"
    first = "inc_01M8BXYJ9JXC1F8JK54GB4ADWP"
    _append_row(data / "incidents.csv", 2, incident_id="inc_MERGED", status="merged", merged_into=first)
    _append_row(data / "incidents.csv", 2, incident_id="inc_RETRACTED", status="retracted")
    _append_row(data / "reports.csv", 2, report_id="rep_OF_MERGED", incident_id="inc_MERGED")
    _append_row(data / "reports.csv", 2, report_id="rep_OF_RETRACTED", incident_id="inc_RETRACTED")
    _append_row(data / "reports.csv", 2, report_id="rep_WITHDRAWN", status="retracted")
    _append_row(data / "damage.csv", 2, damage_id="dmg_OF_MERGED", report_id="rep_OF_MERGED")
    _append_row(data / "damage.csv", 2, damage_id="dmg_OF_RETRACTED", report_id="rep_OF_RETRACTED")
    _append_row(data / "damage.csv", 2, damage_id="dmg_OF_WITHDRAWN", report_id="rep_WITHDRAWN")
    _append_row(data / "damage.csv", 2, damage_id="dmg_WITHDRAWN", status="retracted")

    everything = civharm.load(package)
    assert {name: len(everything[name]) for name in MINIMAL_ROWS} == {
        "incidents": 4, "reports": 5, "damage": 6, "sources": 1, "changes": 0}
    active = civharm.load(package, active_only=True)
    assert list(active["incidents"]["incident_id"]) == list(everything["incidents"]["incident_id"][:2])
    assert set(active["reports"]["report_id"]) == {
        "rep_01M8BXYJ9P0XGT2FTQ1QYM61M7", "rep_01M8BXYJ9RBRZVQEHZNH3KMSF4", "rep_OF_MERGED"}
    assert set(active["damage"]["damage_id"]) == {
        "dmg_01M8BXYJ9VFHQ5PYNKZBCCV73M", "dmg_01M8BXYJ9XXQRJMV5D81ZWMNPX", "dmg_OF_MERGED"}
    assert len(active["sources"]) == 1
    assert active["reports"]["civilians_killed"].dtype == "Int64"


def test_import_civharm_does_not_import_pandas():
    code = "import sys, civharm; assert callable(civharm.load); print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "False\n"
