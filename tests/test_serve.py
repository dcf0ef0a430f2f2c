"""civharm serve: Datasette metadata from the schema, hostile titles and descriptions shown as text by Datasette itself, and an end-to-end run in headless Chromium."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from html import unescape
from pathlib import Path

import pytest

from civharm import serve
from civharm.package import load_package
from conftest import REPO, build_package

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_metadata_comes_from_the_descriptor_and_schemas():
    package = load_package(REPO)
    meta = serve.metadata(package)
    assert meta["title"] == package.descriptor["title"]
    assert meta["license"] == "Creative Commons Attribution 4.0"
    tables = meta["databases"]["civharm"]["tables"]
    for resource in package.resources.values():
        assert tables[resource.name]["columns"] == {f["name"]: f["description"] for f in resource.schema["fields"]}
    browse = tables[serve.BROWSE_VIEW]
    assert browse["facets"] == ["country_code", "subdivision_name", "month", "means_of_harm", "confidence"]
    assert browse["fts_table"] == "incidents_fts"


TEMPLATE_TITLE = "Harm {{ 7*7 }} {% if true %}branch{% endif %} <script>alert('title')</script>"
HOSTILE_DESCRIPTION = "Described {{ 6*7 }} <script>alert('description')</script>"
HOSTILE_TABLE = "Incidents <script>alert('table')</script> {{ 5*5 }}"
HOSTILE_COLUMN = "Summary <img src=x onerror=alert('column')> {{ 3*3 }}"


def _hostile_package(root: Path) -> Path:
    """valid-minimal whose title, description, a table's and a column's descriptions hold markup."""
    package = build_package(root)
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor.update(title=TEMPLATE_TITLE, description=HOSTILE_DESCRIPTION)
    descriptor["licenses"][0]["path"] = "javascript:alert('licence')"
    (package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    schema_file = package / "schema" / "incidents.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    schema["description"] = HOSTILE_TABLE
    next(f for f in schema["fields"] if f["name"] == "summary")["description"] = HOSTILE_COLUMN
    schema_file.write_text(json.dumps(schema), encoding="utf-8")
    return package


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """Pages of the site ``serve.prepare`` writes for a hostile package, rendered by Datasette itself."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    root = tmp_path_factory.mktemp("hostile")
    arguments = serve.prepare(load_package(_hostile_package(root / "pkg")), root / "site")
    options = dict(zip(arguments[1::2], arguments[2::2]))
    before = set(pm.get_plugins())
    site = Datasette([arguments[0]], metadata=json.loads(Path(options["--metadata"]).read_text(encoding="utf-8")),
                     template_dir=options["--template-dir"], plugins_dir=options["--plugins-dir"])

    async def fetch(paths):
        return {path: (await site.client.get(path)) for path in paths}

    paths = ["/", "/civharm", f"/civharm/{serve.BROWSE_VIEW}", "/civharm/incidents"]
    pages = asyncio.run(fetch(paths))
    for plugin in set(pm.get_plugins()) - before:  # the plugin module is process-wide: leave no trace
        pm.unregister(plugin)
    for path, response in pages.items():
        assert response.status_code == 200, (path, response.text[-2000:])
    return {path: response.text for path, response in pages.items()}


def test_title_is_shown_as_text_never_run_as_a_template(hostile_site):
    assert "<title>Harm {{ 7*7 }} {% if true %}branch{% endif %} " in hostile_site["/"]
    assert not [path for path, html in hostile_site.items() if "Harm 49" in html]


def test_markup_in_title_and_descriptions_is_escaped_on_every_page(hostile_site):
    assert "branch{% endif %} &lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;</title>" in hostile_site["/"]
    for path, html in hostile_site.items():
        assert "<script>alert(" not in html and "<img src=x" not in html, path
        assert "javascript:" not in html, path
    assert "&lt;script&gt;alert(&#39;table&#39;)&lt;/script&gt; {{ 5*5 }}" in hostile_site["/civharm/incidents"]
    assert "Summary &lt;img src=x onerror=alert(&#39;column&#39;)&gt; {{ 3*3 }}" in hostile_site[f"/civharm/{serve.BROWSE_VIEW}"]


def test_template_and_plugin_source_hold_nothing_from_the_data(tmp_path):
    """What Datasette runs as code (the index template, the plugin) is the same whatever the package says."""
    plain = serve.prepare(load_package(build_package(tmp_path / "plain")), tmp_path / "plain-site")
    hostile = serve.prepare(load_package(_hostile_package(tmp_path / "hostile")), tmp_path / "hostile-site")
    for option in ("--template-dir", "--plugins-dir"):
        folders = [Path(arguments[arguments.index(option) + 1]) for arguments in (plain, hostile)]
        files = [{p.name: p.read_bytes() for p in folder.iterdir()} for folder in folders]
        assert files[0] == files[1] and files[0], option


def test_only_web_links_become_the_licence_link():
    package = load_package(REPO)
    assert serve.metadata(package)["license_url"].startswith("https://")
    package.descriptor["licenses"] = [{"name": "x", "title": "X", "path": "javascript:alert(1)"}]
    assert serve.metadata(package)["license_url"] == ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    civharm = Path(sys.executable).with_name("civharm")
    process = subprocess.Popen([str(civharm), "serve", str(REPO), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"civharm serve did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    yield base
    process.terminate()
    process.wait(timeout=20)


def browse(url: str, tmp_path: Path) -> str:
    """The DOM Chromium renders for ``url`` (after scripts and redirects)."""
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _links(dom: str, pattern: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]+)"', dom) if re.search(pattern, unescape(h))]


@pytest.fixture(scope="module")
def active_incidents():
    rows = list(csv.DictReader((REPO / "data" / "incidents.csv").open(encoding="utf-8")))
    return {r["incident_id"]: r for r in rows if r["status"] == "active"}


def test_end_to_end_in_headless_chromium(server, tmp_path, active_incidents):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("Chromium not installed; .ci/run installs it")
    # the default way in is the list of active incidents, showing the real incidents
    dom = browse(server + "/", tmp_path)
    assert "Active incidents" in dom
    shown = set(re.findall(r"inc_[0-9A-HJKMNP-TV-Z]{26}", dom))
    assert shown == set(active_incidents)
    # a facet filters them
    facet = _links(dom, r"country_code=UA")
    assert facet, "no country facet link"
    filtered = browse(server + facet[0] if facet[0].startswith("/") else facet[0], tmp_path)
    shown_ua = set(re.findall(r"inc_[0-9A-HJKMNP-TV-Z]{26}", filtered))
    assert shown_ua == {i for i, r in active_incidents.items() if r["country_code"] == "UA"}
    # an incident links to its reports, and the reports link to their pages
    incident_id = sorted(shown_ua)[0]
    incident_page = browse(f"{server}/civharm/incidents/{incident_id}", tmp_path)
    to_reports = _links(incident_page, rf"reports\?incident_id={incident_id}")
    assert to_reports, "the incident page does not link to its reports"
    reports_page = browse(server + to_reports[0], tmp_path)
    urls = {r["url"] for r in csv.DictReader((REPO / "data" / "reports.csv").open(encoding="utf-8")) if r["incident_id"] == incident_id}
    assert urls and all(_links(reports_page, re.escape(u)) for u in urls)
