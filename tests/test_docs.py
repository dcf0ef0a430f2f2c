"""Generated documents are up to date, and everything in the schema is documented."""
from __future__ import annotations

import json

import pytest

from civharm.docs import render_all
from civharm.package import load_package
from conftest import REPO

PACKAGE = load_package(REPO)
SCHEMAS = sorted((REPO / "schema").glob("*.json"))


@pytest.mark.parametrize("path", sorted(render_all(PACKAGE)))
def test_generated_document_is_fresh(path):
    committed = (REPO / path).read_text(encoding="utf-8")
    assert committed == render_all(PACKAGE)[path], f"{path} is out of date: run `civharm docs`"


@pytest.mark.parametrize("schema_path", SCHEMAS, ids=lambda p: p.stem)
def test_every_field_is_documented_and_vocabularies_are_declared_once(schema_path):
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    for field in schema["fields"]:
        assert field.get("description"), field["name"]
        definitions = field.get("civharm:definitions")
        if not definitions:
            continue
        assert all(text.strip() for text in definitions.values()), field["name"]
        constraints = field["constraints"]
        if "civharm:delimiter" in field:
            alternatives = "|".join(definitions)
            assert constraints["pattern"] == f"({alternatives})(;({alternatives}))*", field["name"]
        else:
            assert constraints["enum"] == list(definitions), field["name"]


def test_readme_load_example_runs(monkeypatch, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(REPO)
    exec(compile(block, "README.md", "exec"), {})
    assert "inc_" in capsys.readouterr().out


def test_readme_two_commands_are_the_ones_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [block.split("```", 1)[0].strip() for block in readme.split("```sh\n")[1:3]]
    assert commands[0].endswith("civharm validate") and commands[1].endswith("pytest")
    assert commands[1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_benchmark_table_is_the_latest_run_in_results():
    """benchmarks/run.py appends each run to benchmarks/RESULTS.md; the README shows the latest one."""
    results = (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    latest = results.rsplit("\n## ", 1)[1]
    table = latest[latest.index("| reports"):].strip()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert table in readme, "copy the latest table of benchmarks/RESULTS.md into the README's Performance section"


def test_documents_are_not_generated_from_a_table_that_was_not_read(valid_package):
    """sources refused (a ';' dialect): docs/sources.md would list no source at all; `civharm docs` stops instead."""
    from click.testing import CliRunner

    from civharm.cli import main

    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"][3]["dialect"] = {"delimiter": ";"}
    (valid_package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    result = CliRunner().invoke(main, ["docs", str(valid_package)], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot generate the documents: datapackage.json#/resources/3/dialect/delimiter: dialect: ")
    assert not (valid_package / "docs").exists()


def test_citation_and_zenodo_metadata_say_what_the_descriptor_says():
    """datapackage.json is the one source: CITATION.cff and .zenodo.json (generated) carry the same metadata."""
    import json

    import yaml

    descriptor = json.loads((REPO / "datapackage.json").read_text(encoding="utf-8"))
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    zenodo = json.loads((REPO / ".zenodo.json").read_text(encoding="utf-8"))
    expected = {"title": descriptor["title"], "abstract": descriptor["description"], "keywords": descriptor["keywords"],
                "license": descriptor["licenses"][0]["name"], "version": descriptor["version"],
                "authors": [{"name": c["title"]} for c in descriptor["contributors"]]}
    assert {key: citation.get(key) for key in expected} == expected
    if descriptor.get("homepage"):
        assert citation.get("repository-code") == descriptor["homepage"]
    assert (zenodo["title"], zenodo["description"], zenodo["keywords"], zenodo["creators"]) == (
        descriptor["title"], descriptor["description"], descriptor["keywords"], expected["authors"])
    assert zenodo["license"] == descriptor["licenses"][0]["name"].lower() and zenodo["upload_type"] == "dataset"


COVERAGE_LABELS = {"stated": "stated", "relative": "relative_to_publication", "day of report": "day_of_report",
                   "year from page": "year_from_page", "on or before publication": "on_or_before_publication"}
COVERAGE_DATE = r"(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4})"


def _coverage_section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _coverage_entries(section: str) -> list[tuple[str, str | None]]:
    """(ISO date, date_basis or None) of each incident the produced-records table names, in its own words."""
    import datetime as dt
    import re

    entries = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| page", "|---")):
            continue
        incidents_cell = line.rstrip(" |").rsplit(" | ", 1)[1]
        for part in incidents_cell.split("; "):
            for match in re.finditer(COVERAGE_DATE + r"[^(;]*(?:\(([a-z ]+?)[:)])?", part):
                day = dt.datetime.strptime(" ".join(match.group(1, 2, 3)), "%d %b %Y").date().isoformat()
                entries.append((day, COVERAGE_LABELS.get(match.group(4) or "")))
    return entries


def test_coverage_md_agrees_with_the_incidents():
    """docs/coverage.md is written by hand: each active incident is listed under the page it came from, with its
    date basis, and it names no incident day the data does not have."""
    import pandas as pd

    text = (REPO / "docs" / "coverage.md").read_text(encoding="utf-8")
    entries = _coverage_entries(_coverage_section(text, "Pages that produced records"))
    incidents = pd.read_csv(REPO / "data" / "incidents.csv", dtype=str, keep_default_na=False)
    bases = incidents.groupby("date_start")["date_basis"].agg(set).to_dict()
    listed = {day for day, _ in entries}
    active = set(incidents.loc[incidents["status"] == "active", "date_start"])
    assert sorted(active - listed) == [], "active incidents whose day docs/coverage.md does not list"
    assert sorted(listed - set(bases)) == [], "days docs/coverage.md lists that no incident has"
    wrong = [(day, basis, sorted(bases[day])) for day, basis in entries if basis and basis not in bases[day]]
    assert wrong == [], "date bases in docs/coverage.md that differ from data/incidents.csv"


def test_coverage_md_totals_are_in_the_aggregates_table():
    """Every killed or injured total docs/coverage.md says was entered is a figure of data/aggregates.csv."""
    import re

    import pandas as pd

    text = (REPO / "docs" / "coverage.md").read_text(encoding="utf-8")
    section = _coverage_section(text, "UN and national period totals: the aggregates table")
    entered = [line.split(" | ")[2] for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| page", "|---"))]
    said = {int(n.replace(",", "")) for cell in entered for n in re.findall(r"(\d[\d,]*) (?:children )?(?:killed|injured)", cell)}
    aggregates = pd.read_csv(REPO / "data" / "aggregates.csv", dtype=str, keep_default_na=False)
    figures = {int(v) for column in ("killed", "injured") for v in aggregates.loc[aggregates["url"] != "", column] if v}
    assert said and sorted(said - figures) == []
