"""civharm serve: Datasette metadata from the schema, hostile text shown as text, and the site (home, incidents list with map and search, incident pages) end to end in headless Chromium."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import time
from html import unescape
from pathlib import Path

import pytest

import site_screenshots
from civharm import serve
from civharm.package import load_package
from conftest import REPO, build_package, set_cell

CHROMIUM = site_screenshots.chromium()


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
    options = dict(zip(arguments[::2], arguments[1::2]))
    before = set(pm.get_plugins())
    site = Datasette(immutables=[options["-i"]], metadata=json.loads(Path(options["--metadata"]).read_text(encoding="utf-8")),
                     template_dir=options["--template-dir"], plugins_dir=options["--plugins-dir"])

    async def fetch(paths):
        return {path: (await site.client.get(path)) for path in paths}

    paths = ["/", "/civharm", f"/civharm/{serve.BROWSE_VIEW}", "/civharm/incidents", "/civharm/coverage"]
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
    assert "Summary &lt;img src=x onerror=alert(&#39;column&#39;)&gt; {{ 3*3 }}" in hostile_site["/civharm/incidents"]


def test_template_and_plugin_source_hold_nothing_from_the_data(tmp_path):
    """What Datasette runs as code (the index template, the plugin) is the same whatever the package says."""
    plain = serve.prepare(load_package(build_package(tmp_path / "plain")), tmp_path / "plain-site")
    hostile = serve.prepare(load_package(_hostile_package(tmp_path / "hostile")), tmp_path / "hostile-site")
    for option in ("--template-dir", "--plugins-dir"):
        folders = [Path(arguments[arguments.index(option) + 1]) for arguments in (plain, hostile)]
        files = [{p.name: p.read_bytes() for p in folder.iterdir()} for folder in folders]
        assert files[0] == files[1] and files[0], option


def test_search_takes_any_words_a_user_types(tmp_path):
    """Search words are quoted for SQLite's full-text syntax: stray quotes or operators find nothing, never an error."""
    from datasette.app import Datasette

    arguments = serve.prepare(load_package(REPO), tmp_path / "site")
    options = dict(zip(arguments[::2], arguments[1::2]))
    site = Datasette(immutables=[options["-i"]], metadata=json.loads(Path(options["--metadata"]).read_text(encoding="utf-8")))

    async def fetch(words):
        return [await site.client.get(f"/civharm/{serve.BROWSE_VIEW}.json", params={"_search": w, "_shape": "array"}) for w in words]

    kharkiv, quote, operator = asyncio.run(fetch(["Kharkiv", 'Kharkiv"', "Kharkiv AND"]))
    assert kharkiv.status_code == 200 and len(kharkiv.json()) >= 3
    assert quote.status_code == 200 and operator.status_code == 200


def test_the_coverage_page_holds_every_total_in_force_beside_the_incidents_sum(tmp_path):
    """The "Totals and coverage" table is `civharm coverage`'s comparison, one row per official figure."""
    import sqlite3

    from civharm import coverage

    package = load_package(REPO)
    db = sqlite3.connect(serve.prepare_database(package, tmp_path / "civharm.db"))
    try:
        rows = db.execute("SELECT aggregate_id, figure, official, this_dataset, incidents, caveats FROM coverage").fetchall()
    finally:
        db.close()
    expected = coverage.compare(package)
    assert len(rows) == len(expected) > 0
    for row, comparison in zip(rows, expected):
        assert row[:3] == (comparison.aggregate_id, comparison.figure, comparison.official)
        assert row[4] == comparison.incidents and row[5].startswith("recorded in this dataset, not a total")
        if comparison.ours_min is not None and comparison.ours_max == comparison.ours_min:
            assert row[3] == f"{comparison.ours_min:,}"


def test_only_web_links_become_the_licence_link():
    package = load_package(REPO)
    assert serve.metadata(package)["license_url"].startswith("https://")
    package.descriptor["licenses"] = [{"name": "x", "title": "X", "path": "javascript:alert(1)"}]
    assert serve.metadata(package)["license_url"] == ""


# --- the site in headless Chromium ------------------------------------------------------------

def _needs_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("Chromium not installed; .ci/run installs it")
    return CHROMIUM


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``civharm serve`` on the real package and one Chromium tab at 1400×1000."""
    executable = _needs_chromium()
    server = site_screenshots.Server(REPO)
    browser = site_screenshots.Browser(executable, tmp_path_factory.mktemp("chromium"))
    yield server.base, browser
    browser.close()
    server.stop()


def _rows(path: str) -> list[dict]:
    return list(csv.DictReader((REPO / path).open(encoding="utf-8")))


@pytest.fixture(scope="module")
def active_incidents():
    return {r["incident_id"]: r for r in _rows("data/incidents.csv") if r["status"] == "active"}


LISTED = "[...document.querySelectorAll('table.rows-and-columns tbody td.col-incident_id')].map(td => td.textContent.trim())"
MARKERS = ("[...document.querySelectorAll('.leaflet-marker-icon')]"
           ".map(m => m.classList.contains('marker-cluster') ? parseInt(m.textContent) : 1).reduce((a, b) => a + b, 0)")


def test_the_home_page_names_the_dataset_and_its_version(site):
    base, browser = site
    descriptor = json.loads((REPO / "datapackage.json").read_text(encoding="utf-8"))
    browser.open(base + "/")
    assert browser.evaluate("document.querySelector('h1').textContent") == descriptor["title"]
    text = browser.evaluate("document.body.innerText")
    assert f"Version {descriptor['version']}" in text and "Recorded in this dataset, not a total." in text
    assert "How to cite" in text and f"version {descriptor['version']}" in text
    links = browser.evaluate("Object.fromEntries([...document.querySelectorAll('a')].map(a => [a.textContent.trim(), a.getAttribute('href')]))")
    assert links["Codebook"] == "/civharm/_columns" and links["Corrections log"] == "/civharm/changes"
    assert links["The whole database"] == "/civharm.db" and links["Totals and coverage"] == "/civharm/coverage"


def test_the_list_shows_at_least_eight_incidents_above_the_fold_with_figures_as_ranges(site, active_incidents):
    base, browser = site
    located = sum(1 for r in active_incidents.values() if r["latitude"])
    browser.open(f"{base}/civharm/incidents_browse", f"{MARKERS} === {located}")
    above = browser.evaluate("[...document.querySelectorAll('table.rows-and-columns tbody tr')]"
                             ".filter(r => r.getBoundingClientRect().bottom <= window.innerHeight).length")
    assert browser.evaluate("[window.innerWidth, window.innerHeight]") == [1400, 1000]
    assert above >= 8, f"only {above} incidents above the fold"
    assert set(browser.evaluate(LISTED)) == set(active_incidents)
    cells = browser.evaluate("Object.fromEntries([...document.querySelectorAll('table.rows-and-columns tbody tr')].map(r => "
                             "[r.querySelector('.col-incident_id').textContent.trim(), [r.querySelector('.col-killed').textContent.trim(), "
                             "r.querySelector('.col-injured').textContent.trim(), r.querySelector('.col-summary').textContent.trim()]]))")
    belgorod = "inc_01M8BXYJ9MCRVM43F2SQCZ8B40"  # civilians killed 25–25, injured 101–(open)
    assert cells[belgorod][:2] == ["25", "101+"]
    assert len(cells[belgorod][2]) <= 90 and active_incidents[belgorod]["summary"].startswith(cells[belgorod][2].rstrip("…"))
    assert "unknown" in {c[0] for c in cells.values()}
    # the column help is there, folded away
    assert browser.evaluate("document.querySelector('details.column-help').open") is False
    assert browser.evaluate("getComputedStyle(document.querySelector('dl.column-descriptions')).display") == "none"


def test_searching_for_a_place_returns_its_incidents(site, active_incidents):
    base, browser = site
    browser.open(f"{base}/civharm/incidents_browse")
    browser.evaluate("document.querySelector('#_search').value = 'Kharkiv'; document.querySelector('form.filters').submit(); true")
    deadline = time.monotonic() + 30
    while not browser.evaluate("location.search.includes('_search=Kharkiv') && document.readyState === 'complete'"):
        assert time.monotonic() < deadline, "the search form did not submit"
        time.sleep(0.2)
    word = re.compile(r"\bKharkiv\b")
    expected = {i for i, r in active_incidents.items()
                if any(word.search(r[f]) for f in ("summary", "locality_en", "locality_original", "subdivision_name"))}
    assert len(expected) >= 3
    assert set(browser.evaluate(LISTED)) == expected


def test_a_facet_filters_the_list_and_the_map(site, active_incidents):
    base, browser = site
    browser.open(f"{base}/civharm/incidents_browse")
    link = browser.evaluate("[...document.querySelectorAll('.facet-info a')].map(a => a.href).find(h => h.includes('country_code=RU'))")
    assert link, "no country facet link"
    russia = {i for i, r in active_incidents.items() if r["country_code"] == "RU"}
    located = sum(1 for i in russia if active_incidents[i]["latitude"])
    assert 0 < located < sum(1 for r in active_incidents.values() if r["latitude"])
    browser.open(link, f"{MARKERS} === {located}")
    assert set(browser.evaluate(LISTED)) == russia
    time.sleep(1)  # the map loads every page of the filtered list: no more markers come
    assert browser.evaluate(MARKERS) == located


INCIDENT = "inc_01M8BY4Z1QKGH4MQDMDY28VR3P"  # Kyiv, 2024-07-08: five claimants, an open range


def _figure_words(report: dict) -> list[str]:
    words = {"exact": "", "about": "about ", "at_least": "at least ", "more_than": "more than ", "up_to": "up to "}
    return [f"{words[report[f + '_qualifier'] or 'exact']}{int(report[f]):,}"
            for f in ("civilians_killed", "civilians_injured", "children_killed", "children_injured", "all_killed", "all_injured")
            if report[f]]


def test_an_incident_page_shows_each_statement_its_figures_and_the_chart(site):
    base, browser = site
    browser.open(f"{base}/civharm/incidents/{INCIDENT}")
    reports = [r for r in _rows("data/reports.csv") if r["incident_id"] == INCIDENT]
    assert len(reports) >= 3
    for report in reports:
        row = browser.evaluate(f"document.getElementById({json.dumps(report['report_id'])}).innerText")
        assert report["claimant"] in row
        for words in _figure_words(report):
            assert words in row, (report["report_id"], words)
        state = "retracted" if report["status"] != "active" else "superseded" if report["superseded_by"] else "current"
        assert state in row
        links = browser.evaluate(f"[...document.getElementById({json.dumps(report['report_id'])}).querySelectorAll('a')].map(a => a.href)")
        assert report["url"] in links or unescape(report["url"]) in links
        if report["archive_url"]:
            assert report["archive_url"] in links
    charts = browser.evaluate("[...document.querySelectorAll('figure.incident-chart')].map(f => [f.dataset.figure, "
                              "f.querySelectorAll('circle.statement').length, f.querySelectorAll('rect.range').length])")
    dated = {f: sum(1 for r in reports if r[f] and r["status"] == "active") for f, *_ in charts}
    assert charts and all(circles == dated[figure] and ranges == 1 for figure, circles, ranges in charts), charts
    text = browser.evaluate("document.body.innerText")
    assert "Corrections that touched this incident" in text and "Damage" in text
    ids = {INCIDENT} | {r["report_id"] for r in reports}
    corrections = [c for c in _rows("data/changes.csv") if c["record_id"] in ids]
    assert corrections, "the shown incident was chosen for its corrections"
    shown = browser.evaluate("[...document.querySelectorAll('h2')].find(h => h.textContent.startsWith('Corrections'))"
                             ".nextElementSibling.querySelectorAll('tbody tr').length")
    assert shown == len(corrections)


def test_disputed_attribution_is_shown_as_disputed(site, active_incidents):
    base, browser = site
    disputed = next(i for i, r in active_incidents.items() if r["perpetrator_alleged"] == "disputed")
    browser.open(f"{base}/civharm/incidents/{disputed}")
    assert browser.evaluate("document.querySelector('.disputed').textContent") == "Disputed"


PLANTED = "<script>window.planted = 1</script><img src=x onerror=\"window.planted = 2\">"


def _planted_package(root: Path) -> Path:
    """valid-minimal with markup in every text cell a page shows, and a javascript: link as a report's page."""
    package = build_package(root)
    for name, fields in (("incidents", ("summary", "locality_en", "site_detail", "status_reason")),
                         ("reports", ("title", "claimant", "notes", "republished_from")),
                         ("damage", ("notes",)), ("changes", ("reason", "new_value"))):
        path = package / "data" / f"{name}.csv"
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        if name == "changes":  # one correction of the Belgorod incident, to be shown on its page
            rows.append({"change_id": "chg_01M8BXYJ9MCRVM43F2SQCZ8B49", "change_date": "2024-03-20", "table": "incidents",
                         "record_id": "inc_01M8BXYJ9MCRVM43F2SQCZ8B40", "record_version": "2", "field": "summary",
                         "old_value": "", "new_value": "", "reason": "", "report_id": ""})
        for row in rows:
            row.update({f: f"{f} {PLANTED}" for f in fields if f in row})
            if name == "reports":
                row["url"], row["archive_url"] = "javascript:window.planted=3", "javascript:window.planted=4"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return package


def test_a_planted_script_in_any_text_field_is_shown_as_text(tmp_path):
    executable = _needs_chromium()
    server = site_screenshots.Server(_planted_package(tmp_path / "pkg"))
    browser = site_screenshots.Browser(executable, tmp_path / "chromium")
    try:
        for path in ("/", "/civharm/incidents_browse", "/civharm/incidents/inc_01M8BXYJ9MCRVM43F2SQCZ8B40",
                     "/civharm/incidents/inc_01M8BXYJ9JXC1F8JK54GB4ADWP", "/civharm/reports"):
            browser.open(server.base + path)
            time.sleep(0.5)
            assert browser.evaluate("window.planted") is None, path
            assert browser.evaluate("document.querySelectorAll('img[src=x], a[href^=javascript]').length") == 0, path
            if path.startswith("/civharm/incidents/"):
                assert f"summary {PLANTED}" in browser.evaluate("document.body.innerText"), path
    finally:
        browser.close()
        server.stop()


def test_planted_markup_in_the_data_is_escaped_in_the_html(tmp_path):
    """The same, without a browser: Datasette renders the pages and no planted tag or javascript: link reaches the HTML."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    arguments = serve.prepare(load_package(_planted_package(tmp_path / "pkg")), tmp_path / "site")
    options = dict(zip(arguments[::2], arguments[1::2]))
    before = set(pm.get_plugins())
    datasette = Datasette(immutables=[options["-i"]], metadata=json.loads(Path(options["--metadata"]).read_text(encoding="utf-8")),
                          template_dir=options["--template-dir"], plugins_dir=options["--plugins-dir"])

    async def fetch(paths):
        return {path: (await datasette.client.get(path)).text for path in paths}

    paths = ["/", "/civharm/incidents_browse", "/civharm/incidents/inc_01M8BXYJ9MCRVM43F2SQCZ8B40"]
    pages = asyncio.run(fetch(paths))
    for plugin in set(pm.get_plugins()) - before:
        pm.unregister(plugin)
    for path, html in pages.items():
        assert "<script>window.planted" not in html and "<img src=x" not in html and 'href="javascript:' not in html, path
    assert "summary &lt;script&gt;window.planted = 1&lt;/script&gt;" in pages["/civharm/incidents/inc_01M8BXYJ9MCRVM43F2SQCZ8B40"]


def test_the_committed_screenshots_show_the_current_site_and_data():
    """docs/screenshot-*.png carry the hash of what their page shows; `python scripts/site_screenshots.py` retakes them."""
    assert site_screenshots.stale() == [], "run `PYTHONPATH=scripts python scripts/site_screenshots.py` (needs chromium)"


def test_a_changed_figure_makes_the_list_and_incident_screenshots_stale(tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(REPO, package, ignore=shutil.ignore_patterns(".git", "dist", "__pycache__", ".venv"))
    before = site_screenshots.data_hashes(package)
    assert before == site_screenshots.data_hashes(REPO)
    rows = _rows("data/incidents.csv")
    line = next(n for n, r in enumerate(rows, start=2) if r["incident_id"] == INCIDENT)
    set_cell(package / "data" / "incidents.csv", line, "all_injured_max", "17")
    after = site_screenshots.data_hashes(package)
    assert [shot for shot in before if before[shot] != after[shot]] == ["docs/screenshot-incidents.png", "docs/screenshot-incident.png"]


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_an_incident_page_shows_a_statement_dated_at_the_calendars_edge_as_text(as_of, tmp_path):
    """A chart pads a day on either side of its dates; a statement of 0001-01-01 or 9999-12-31 (invalid
    data, which `civharm serve` still shows) is left out of the chart and listed as text, never a 500."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    package = build_package(tmp_path / "pkg")
    set_cell(package / "data" / "reports.csv", 2, "as_of", as_of)  # a statement on the Belgorod incident of 14 March 2024
    arguments = serve.prepare(load_package(package), tmp_path / "site")
    options = dict(zip(arguments[::2], arguments[1::2]))
    before = set(pm.get_plugins())
    datasette = Datasette(immutables=[options["-i"]], metadata=json.loads(Path(options["--metadata"]).read_text(encoding="utf-8")),
                          template_dir=options["--template-dir"], plugins_dir=options["--plugins-dir"])

    async def fetch(path):
        return await datasette.client.get(path)

    page = asyncio.run(fetch("/civharm/incidents/inc_01M8BXYJ9JXC1F8JK54GB4ADWP"))
    for plugin in set(pm.get_plugins()) - before:
        pm.unregister(plugin)
    assert page.status_code == 200, page.text[-2000:]
    assert f"<td>{as_of}</td>" in page.text
