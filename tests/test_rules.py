"""Every rule of the one catalogue fails its fixture exactly where and how it promises, and is documented.

The catalogue (``findings.CATALOGUE``, complete after ``docs.rule_catalogue()``) holds every rule
id any stage can emit: the loader's ``package/``, the structure stage's ``structure/`` and
``frictionless/``, the semantic rules, ``duplicates/``, ``history/`` and ``evidence/``.

A fixture is ``tests/fixtures/rules/<module>/<rule-name>[-<variant>]/case.json``: edits to a
copy of valid-minimal (see ``conftest.apply_edit``), the exact findings as sorted
[file, line or JSON pointer, field, rule_id] in ``expect``, their messages in ``message``,
and ``xfail`` when a known bug keeps the rule from firing. A history fixture also has
``base_edits``: the base version is valid-minimal with those edits, and the package is
validated against it (``--base``). An evidence fixture has ``pages`` (URL → an invented page
text) and runs ``verify-sources`` against a page store of them instead of ``validate``.
Every fixture's findings must be in the catalogue, and every catalogue rule needs a fixture
and a codebook entry: a new rule, in any stage, that lacks one fails here by name.

Every run costs about a second, so the fixtures run up front in forked workers; each test
then reads its own outcome.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from civharm.cli import main
from civharm.docs import rule_catalogue
from civharm.findings import Report, Severity
from civharm.validate import Options, run
from conftest import FIXTURES, Outcomes, REPO, TODAY, apply_edit, build_package, case_dirs, materialise

RULE_FIXTURES = FIXTURES / "rules"
CASES = case_dirs("rules")
REGISTRY = rule_catalogue()
# Rules no fixture package can trigger, each with the test that does instead.
WITHOUT_FIXTURE = {"package/unreadable-csv": "test_a_csv_the_csv_module_cannot_parse_is_a_finding"}
IN_FUTURE = RULE_FIXTURES / "dates" / "in-future" / "case.json"  # sources.csv last_updated 2026-11-27
TIMEOUT = 60


def load(case_file: Path) -> dict:
    return json.loads(case_file.read_text(encoding="utf-8"))


class RaisingOutcomes(Outcomes):
    """Outcomes that fail the test when validation raised instead of reporting."""

    def __getitem__(self, item) -> dict:
        result = super().__getitem__(item)
        if "raised" in result:
            pytest.fail(f"validation raised:\n{result['raised']}")
        return result


def rule_of(case_file: Path) -> str:
    """``dates/end-before-start`` for ``rules/dates/end-before-start-variant/case.json``."""
    module, name = case_file.parent.parent.name, case_file.parent.name
    names = [rule_id.split("/", 1)[1] for rule_id in REGISTRY if rule_id.startswith(module + "/")]
    owners = [n for n in names if name == n or name.startswith(n + "-")]
    return f"{module}/{max(owners, key=len)}" if owners else f"{module}/?{name}"


def outcome(job: tuple) -> dict:
    """Run one job and return plain data, so it can leave a worker.

    ``("run", case_file, today)`` validates through the Python API; ``("cli", case_file,
    env_today, flag_today)`` through ``civharm validate --format json``.
    """
    kind, case_file, *dates = job
    with tempfile.TemporaryDirectory() as tmp:
        try:
            root, case = materialise(case_file, Path(tmp))
            if kind == "run":
                options = Options(today=dt.date.fromisoformat(dates[0]), base=base_version(case, Path(tmp)))
                report = verify_sources(root, case, Path(tmp)) if "pages" in case else run(root, options)
                return {"exit_code": report.exit_code(), "findings": [
                    (f.file, f.line if f.line is not None else f.pointer, f.field, f.rule_id, f.message, f.severity.value)
                    for f in report.findings]}
            env_today, flag_today = dates
            args = ["validate", str(root), "--format", "json"] + (["--today", flag_today] if flag_today else [])
            result = CliRunner(env={"CIVHARM_TODAY": env_today}).invoke(main, args, catch_exceptions=False)
            return {"exit_code": result.exit_code, "stdout": result.stdout}
        except Exception:  # noqa: BLE001 - reported by the test as a failure with its traceback
            return {"raised": traceback.format_exc()}


def base_version(case: dict, tmp: Path) -> str | None:
    """For a history fixture, valid-minimal with the case's ``base_edits``: the version validated against."""
    if "base_edits" not in case:
        return None
    base = build_package(tmp / "base")
    for edit in case["base_edits"]:
        apply_edit(base, edit)
    return str(base)


class InventedWeb:
    """A urllib opener that answers the case's ``live_pages`` (URL → invented text) and nothing else."""

    def __init__(self, pages: dict[str, str]):
        self.pages = pages

    def open(self, request, timeout=None):
        import io
        import urllib.error

        if request.full_url not in self.pages:
            raise urllib.error.URLError("not among the fixture's live pages")
        response = io.BytesIO(self.pages[request.full_url].encode("utf-8"))
        response.headers = {"Content-Type": "text/plain; charset=utf-8"}
        return response


def verify_sources(root: Path, case: dict, tmp: Path) -> Report:
    """``verify-sources`` of the package against a page store of the case's ``pages`` and, fetched, its ``live_pages``."""
    from civharm import evidence
    from civharm.package import load_package
    from civharm.pages import Fetcher, PageStore

    folder = tmp / "pages"
    folder.mkdir()
    index = ["n\turl\ttitle"]
    for number, (url, text) in enumerate(case["pages"].items(), start=1):
        (folder / f"{number}.txt").write_text(f"{url}\n\n{text}\n", encoding="utf-8")
        index.append(f"{number}\t{url}\tinvented")
    (tmp / "pages_index.tsv").write_text("\n".join(index) + "\n", encoding="utf-8")
    fetcher = Fetcher(tmp / "cache", opener=InventedWeb(case["live_pages"])) if "live_pages" in case else None
    found = evidence.check(load_package(root), PageStore.open(folder), fetcher).findings
    return Report([f._replace(message=f.message.replace(str(folder), "pages")) for f in found])  # no temporary path in a message


TODAY_JOBS = [
    ("run", IN_FUTURE, "2026-11-27"),
    ("cli", IN_FUTURE, "2026-11-26", None),
    ("cli", IN_FUTURE, "2026-11-27", None),
    ("cli", IN_FUTURE, "2026-11-27", TODAY),
]


@pytest.fixture(scope="module")
def outcomes(request):
    """Jobs of this module's selected tests: each fixture at TODAY, plus the today-switch runs."""
    jobs = {}  # in the order the tests will ask for them
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module:
            if spec is not None and "case_file" in spec.params:
                jobs[("run", spec.params["case_file"], TODAY)] = None
            if item.name == "test_today_decides_what_is_in_the_future":
                jobs.update(dict.fromkeys(TODAY_JOBS))
    results = RaisingOutcomes(outcome, list(jobs), TIMEOUT)
    yield results
    results.close()


def case_param(case_file: Path):
    reason = load(case_file).get("xfail")
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case_file, id=str(case_file.parent.relative_to(RULE_FIXTURES)), marks=marks)


def expected_exit_code(expect: list) -> int:
    """1 when a promised finding is an error (structural findings always are), else 0."""
    severities = [REGISTRY[e[3]].severity if e[3] in REGISTRY else Severity.ERROR for e in expect]
    return 1 if Severity.ERROR in severities else 0


def test_valid_minimal_has_no_rule_findings(valid_package):
    report = run(valid_package, Options(today=dt.date.fromisoformat(TODAY)))
    assert [(f.location(), f.rule_id, f.message) for f in report.findings] == []


@pytest.mark.parametrize("case_file", [case_param(c) for c in CASES])
def test_rule_fixture_gives_exactly_its_findings(case_file, outcomes):
    case = load(case_file)
    result = outcomes[("run", case_file, TODAY)]
    found = result["findings"]
    assert case["expect"], "a fixture must promise at least one finding"
    assert len(case["message"]) == len(case["expect"]), "one message per expected finding"
    assert [list(f[:4]) for f in found] == case["expect"]
    assert [f[4] for f in found] == case["message"]
    assert rule_of(case_file) in {e[3] for e in case["expect"]}, "a fixture must promise the rule it is named after"
    uncatalogued = sorted({f[3] for f in found} - set(REGISTRY))
    assert not uncatalogued, f"emitted but in no catalogue: {uncatalogued}; declare each with findings.declare(Rule(...)) in its module"
    for file, where, field, rule_id, message, severity in found:
        if rule_id in REGISTRY:
            assert severity == REGISTRY[rule_id].severity.value
    assert result["exit_code"] == expected_exit_code(case["expect"])


@pytest.mark.parametrize("rule_id", sorted(REGISTRY))
def test_every_rule_has_a_fixture_title_and_rationale(rule_id):
    rule = REGISTRY[rule_id]
    assert rule.title.strip() and rule.rationale.strip()
    assert isinstance(rule.severity, Severity)
    if rule_id in WITHOUT_FIXTURE:
        assert callable(globals().get(WITHOUT_FIXTURE[rule_id]))
        return
    fixtures = [c for c in CASES if rule_of(c) == rule_id]
    assert fixtures, f"no fixture: add {rule.fixture}/case.json (or {rule.fixture}-<variant>/case.json)"
    assert any(rule_id in {e[3] for e in load(c)["expect"]} for c in fixtures)


def test_every_fixture_is_named_after_a_registered_rule():
    orphans = [str(c.parent.relative_to(RULE_FIXTURES)) for c in CASES if rule_of(c) not in REGISTRY]
    assert orphans == []


@pytest.mark.parametrize("rule_id", sorted(REGISTRY))
def test_codebook_documents_every_rule(rule_id):
    codebook = (REPO / "docs" / "codebook.md").read_text(encoding="utf-8")
    assert re.search(rf"(?<![\w/-]){re.escape(rule_id)}(?![\w/-])", codebook), f"{rule_id} is not in docs/codebook.md"


def test_a_csv_the_csv_module_cannot_parse_is_a_finding(valid_package, monkeypatch):
    """Only a cell beyond the csv module's field limit (2 GiB, as frictionless sets it) stops the parser; with the
    limit lowered, such a file is a located finding and its table counts as unread."""
    import csv

    from civharm.package import load_package
    from frictionless.formats.csv import settings

    damage = valid_package / "data" / "damage.csv"
    damage.write_bytes(damage.read_bytes().replace(b"\n", b"\r\n"))  # CRLF: the csv module's path
    limit = csv.field_size_limit()
    monkeypatch.setattr(settings, "FIELD_SIZE_LIMIT", 50)
    try:
        package = load_package(valid_package)
    finally:
        csv.field_size_limit(limit)
    [found] = [f for f in package.findings if f.rule_id == "package/unreadable-csv"]
    assert (found.file, found.line, found.field, found.message) == (
        "data/damage.csv", 2, None, "cannot parse CSV: field larger than field limit (50)")
    assert package["damage"].unread == found.as_text()


def test_today_decides_what_is_in_the_future(outcomes):
    """sources.csv last_updated 2026-11-27 is in the future on 2026-11-26 only; --today beats CIVHARM_TODAY."""
    assert outcomes[("run", IN_FUTURE, TODAY)]["exit_code"] == 1
    assert outcomes[("run", IN_FUTURE, "2026-11-27")] == {"exit_code": 0, "findings": []}

    def in_future(job):
        result = outcomes[job]
        rules = [f["rule_id"] for f in json.loads(result["stdout"])["findings"]]
        return result["exit_code"], rules

    assert in_future(("cli", IN_FUTURE, "2026-11-26", None)) == (1, ["dates/in-future"])
    assert in_future(("cli", IN_FUTURE, "2026-11-27", None)) == (0, [])
    assert in_future(("cli", IN_FUTURE, "2026-11-27", TODAY)) == (1, ["dates/in-future"])


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(["", " a", "a ", "=1", "+1", "-1", "@a", "a\tb", "\u00a0a", "a\u2028", "e\u0301", "\ufeffa"]))
def test_the_text_prefilter_keeps_every_cell_a_text_rule_rejects(value):
    """The text rules test in Python only the cells the vectorised filter keeps: it must keep every cell one of them rejects."""
    import unicodedata

    import pyarrow as pa

    from civharm.rules import text

    rejected = (not unicodedata.is_normalized("NFC", value) or text.UNTRIMMED.search(value) or text.LINE_BREAK.search(value)
                or text.CONTROL.search(value) or text.FORMULA.match(value))
    # the value among plain cells, in a chunked column whose first chunk is a slice (offsets not at 0)
    cells = pa.chunked_array([pa.array(["skipped", "plain", value], pa.large_string()).slice(1),
                              pa.array(["", value, "also plain"], pa.large_string())])
    kept = text._suspect(cells).tolist()
    assert len(kept) == 5 and not kept[0] and not kept[2] and not kept[4]
    assert (kept[1] and kept[3]) or not rejected
    assert kept[1] == kept[3] == text._suspect(pa.array([value], pa.large_string())).tolist()[0]


def test_subdivision_verdicts_land_on_their_own_rows_when_names_are_missing(tmp_path):
    """Verdicts are worked out once per distinct (code, country, name); each row must get its own, missing names included."""
    from conftest import build_package, set_cell

    root = build_package(tmp_path / "real", REPO / "data")
    incidents = root / "data" / "incidents.csv"
    set_cell(incidents, 2, "subdivision_name", "")  # first: a triple with a missing name (fine)
    set_cell(incidents, 3, "subdivision_code", "UA-63")  # then: another country's subdivision
    set_cell(incidents, 3, "subdivision_name", "")
    set_cell(incidents, 4, "subdivision_name", "Belgorod Oblast")  # then: not the ISO name
    found = sorted((f.line, f.field) for f in run(root, Options(today=dt.date.fromisoformat(TODAY))).findings
                   if f.rule_id == "places/subdivision-not-in-country")
    assert found == [(3, "subdivision_code"), (4, "subdivision_name")]


def test_figure_rule_expects_nothing_for_an_incident_without_an_id(tmp_path):
    """An active incident whose ID is empty has no reports: the rule computes empty figures for it,
    never another incident's (its lookup position is -1, which must not read the first row)."""
    import pandas as pd

    from civharm import rules
    from civharm.package import load_package
    from conftest import build_package, set_cell

    root = build_package(tmp_path / "real", REPO / "data")
    frame = pd.read_csv(root / "data" / "incidents.csv", dtype=str, keep_default_na=False)
    line = 2 + next(i for i, row in frame.iterrows() if row["status"] == "active" and row["civilians_killed_min"] and row["figures_override_reason"] == "")
    set_cell(root / "data" / "incidents.csv", line, "incident_id", "")
    found = [f for f in rules.check(load_package(root), dt.date.fromisoformat(TODAY), {"figures"}) if f.line == line]
    assert found and all(f.message.endswith("but the figure rule gives empty from the statements (civharm recompute rewrites it)") for f in found)


def test_every_checked_date_basis_is_a_value_of_the_vocabulary():
    """The date rule checks bases by name; a renamed value in the schema must not silently escape the check."""
    from civharm.rules import dates

    schema = json.loads((REPO / "schema" / "incidents.json").read_text(encoding="utf-8"))
    vocabulary = next(f for f in schema["fields"] if f["name"] == "date_basis")["constraints"]["enum"]
    assert set(dates.CHECKED_BASES) <= set(vocabulary)


@pytest.mark.parametrize("char", [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C,
                                                    0xFFFE, 0xFFFF, 0xFDD0, 0xFDEF, 0x1FFFE, 0x1FFFF, 0x10FFFE, 0x10FFFF)],
                         ids=lambda char: f"U+{ord(char):04X}")
def test_bidirectional_controls_and_non_characters_are_control_characters(char):
    """Each bidirectional control and non-character the rule promises to reject; ordinary neighbours pass."""
    from civharm.rules import text

    assert text.CONTROL.search(f"https://example.org/a{char}gpj.exe")
    assert not text.CONTROL.search("\ufdcf\ufdf0\ufffd\U0001fffd Zoë \u0627\u0644")


def test_every_count_field_is_held_to_the_plausibility_bounds():
    """The bounds are declared once for every count: each integer field of the schemas but record versions and GeoNames IDs
    (incident counts in counts.COUNTS, totals in aggregates.TOTALS)."""
    from civharm.rules.aggregates import TOTALS
    from civharm.rules.counts import COUNTS

    integers = {(path.stem, field["name"]) for path in (REPO / "schema").glob("*.json")
                for field in json.loads(path.read_text(encoding="utf-8"))["fields"] if field["type"] == "integer"}
    assert {(table, field) for bounded in (COUNTS, TOTALS) for table, fields in bounded.items() for field in fields} == {
        (table, field) for table, field in integers if field not in ("record_version", "geonames_id")}
