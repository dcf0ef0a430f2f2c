"""civharm add: attach or create, duplicate candidates before writing, all-or-nothing writes."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import tempfile

import pytest
from click.testing import CliRunner

from civharm import contribute, submission
from civharm.cli import main
from civharm.findings import CivharmError
from civharm.package import load_package
from civharm.validate import Options, run
from conftest import DATA_TODAY, REPO, TODAY, build_package, child_environment, set_cell

TYOTKINO_ID = "inc_01M8BY5YP18XB0CWW6XRD1PWN8"
REPORT = {
    "source_id": "themoscowtimes",
    "url": "https://www.themoscowtimes.com/2024/03/14/pro-kyiv-fighters-launch-incursion-into-russias-kursk-region-a84456",
    "title": "Test title", "language": "en", "published_date": "2024-03-14", "published_precision": "day",
    "accessed_date": "2026-11-26", "claimant": "Test claimant", "claimant_type": "regional_authority", "as_of": "2024-03-14",
    "responsibility_claimed": "unknown", "civilians_killed": 1, "civilians_killed_qualifier": "exact",
}


def snapshot(root):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "data").glob("*.csv"))}


@pytest.fixture
def real(tmp_path):
    return build_package(tmp_path / "real", REPO / "data")


@pytest.fixture
def minimal(tmp_path):
    return build_package(tmp_path / "minimal")


def write(tmp_path, data) -> str:
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def add(*args):
    return CliRunner().invoke(main, ["add", *args, "--today", DATA_TODAY], catch_exceptions=False)


def next_version(root, incident_id: str) -> str:
    """The record_version an incident of the package at ``root`` gets from its next change."""
    return str(int(load_package(root)["incidents"].frame.set_index("incident_id").at[incident_id, "record_version"]) + 1)


def test_report_for_an_existing_incident_is_attached_there_and_figures_follow_the_rule(real, tmp_path):
    version = next_version(real, TYOTKINO_ID)
    logged = set(load_package(real)["changes"].frame["change_id"])
    result = add(write(tmp_path, {"incident": TYOTKINO_ID, "report": REPORT}), "--package", str(real))
    assert result.exit_code == 0, result.output
    package = load_package(real)
    reports = package["reports"].frame
    added = reports[reports["report_id"] == result.stdout.strip()]
    assert added["incident_id"].tolist() == [TYOTKINO_ID]
    incident = package["incidents"].frame.set_index("incident_id").loc[TYOTKINO_ID]
    assert incident["civilians_killed_min"] == "1" and incident["civilians_killed_max"] == "1" and incident["record_version"] == version
    changes = package["changes"].frame
    changes = changes[~changes["change_id"].isin(logged)]
    assert set(changes["record_id"]) == {TYOTKINO_ID} and set(changes["record_version"]) == {version}
    assert run(real, Options(today=dt.date.fromisoformat(DATA_TODAY))).exit_code() == 0


def _near_duplicate_submission():
    incident = {"date_start": "2024-03-12", "date_end": "2024-03-12", "date_precision": "day", "date_basis": "stated",
                "country_code": "RU", "subdivision_code": "RU-KRS", "subdivision_name": "Kurskaya oblast'",
                "locality_en": "Tetkino", "location_precision": "area", "means_of_harm": "ground_fighting",
                "perpetrator_alleged": "unknown", "attribution_basis": "not_attributed", "confidence": "low",
                "summary": "Test: the Tyotkino fighting entered again under another spelling."}
    return {"incident": incident, "report": dict(REPORT, url="https://example.org/test-page")}


def test_near_duplicate_shows_the_candidate_side_by_side_and_writes_nothing_without_a_decision(real, tmp_path):
    before = snapshot(real)
    result = add(write(tmp_path, _near_duplicate_submission()), "--package", str(real))
    assert result.exit_code == 1
    assert f"[1] {TYOTKINO_ID}: match probability" in result.output
    assert "  place     Tetkino, RU-KRS" in result.output and "GeoNames 483166" in result.output
    assert f"attach_to: {TYOTKINO_ID}" in result.output and f"- incident: {TYOTKINO_ID}" in result.output
    assert "--yes" not in result.output and "distinct-note" not in result.output  # no way to wave it through
    assert "nothing written" in result.output
    assert snapshot(real) == before


def test_invalid_entry_writes_nothing_and_says_where(real, tmp_path):
    before = snapshot(real)
    result = add(write(tmp_path, {"incident": TYOTKINO_ID, "report": dict(REPORT, claimant_type="governor")}), "--package", str(real))
    assert result.exit_code == 1
    assert "data/reports.csv:" in result.output and "claimant_type" in result.output and "nothing written" in result.output
    assert snapshot(real) == before


def test_unknown_incident_and_bad_file_are_clear_errors(real, tmp_path):
    result = add(write(tmp_path, {"incident": "inc_01M8BZZZZZZZZZZZZZZZZZZZZZ", "report": REPORT}), "--package", str(real))
    assert result.exit_code == 2 and "does not exist" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("report: [unclosed\n", encoding="utf-8")
    result = add(str(bad), "--package", str(real))
    assert result.exit_code == 2 and result.output.startswith(f"Error: {bad}") and "Traceback" not in result.output


def test_a_table_whose_header_is_too_wide_to_keep_is_not_rewritten(real, tmp_path):
    """The loader keeps only the first columns of a header with thousands of extra labels; rewriting would lose the rest."""
    incidents = real / "data" / "incidents.csv"
    header, rest = incidents.read_text(encoding="utf-8").split("\n", 1)
    incidents.write_text(header + "".join(f",extra{i}" for i in range(500)) + "\n" + rest, encoding="utf-8")
    before = snapshot(real)
    result = add(write(tmp_path, {"incident": TYOTKINO_ID, "report": REPORT}), "--package", str(real))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: data/incidents.csv: the header has ") and "too many to rewrite" in result.output
    assert snapshot(real) == before


def test_a_fault_between_two_file_writes_leaves_data_byte_identical(real):
    before = snapshot(real)
    package = load_package(real)
    built = contribute.plan(package, submission.Submission.from_mapping({"incident": TYOTKINO_ID, "report": REPORT}, "test"), dt.date.fromisoformat(DATA_TODAY))
    assert len(built.files) >= 3  # reports, incidents and changes all change

    def fault(index, path):
        if index == 1:
            raise OSError("injected fault between two files")

    with pytest.raises(CivharmError, match="injected fault between two files; nothing was changed"):
        contribute.commit(built, fault=fault)
    assert snapshot(real) == before
    assert not [p.name for p in real.rglob(".*")]  # no temporary file, no journal


def test_no_prompt_without_a_terminal(real):
    result = CliRunner().invoke(main, ["add", "--package", str(real)], input="")
    assert result.exit_code == 2 and "without a terminal" in result.output


def test_a_table_read_only_in_part_is_not_rewritten_without_its_other_rows(real, tmp_path, monkeypatch):
    """A cell beyond the csv module's field limit stops the reading of reports.csv: add refuses, nothing written."""
    import csv

    from frictionless.formats.csv import settings

    from civharm.package import load_package as reload

    reports = real / "data" / "reports.csv"
    rows = list(csv.reader(reports.open(encoding="utf-8", newline="")))
    rows[1][rows[0].index("title")] = "A title\n" + "y" * 300  # a line break sends the file to the csv module
    with reports.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows(rows)
    before = snapshot(real)
    monkeypatch.setattr(settings, "FIELD_SIZE_LIMIT", 200)  # the limit the reader sets, as frictionless's own
    assert reload(real)["reports"].unread is not None
    result = add(write(tmp_path, {"incident": TYOTKINO_ID, "report": REPORT}), "--package", str(real))
    assert result.exit_code == 2
    assert result.output == "Error: the package lacks readable table(s) reports; run civharm validate\n"
    assert snapshot(real) == before


# --- the submission file: bounded and strictly typed (YAML's guesses never decide a value) ----

MINIMAL_INCIDENT = "inc_01M8BXYJ9JXC1F8JK54GB4ADWP"  # in valid-minimal
YAML_REPORT = [  # one line per field, so a field's line in the file is its position + 3
    "source_id: dailywrap", "url: https://example.org/invented-page", "title: Invented test title", "language: en",
    "published_date: 2024-03-14", "published_precision: day", "accessed_date: 2026-11-26", "claimant: Invented claimant",
    "claimant_type: regional_authority", "as_of: 2024-03-14", "responsibility_claimed: unknown", "all_killed: 2",
    "all_killed_qualifier: exact",
]


def yaml_submission(tmp_path, **lines) -> tuple[str, dict[str, int]]:
    """A YAML submission with some report lines replaced (``field="field: value"``), and each field's line."""
    body = [lines.get(line.split(":", 1)[0], line) for line in YAML_REPORT]
    body += [text for name, text in lines.items() if name not in {line.split(":", 1)[0] for line in YAML_REPORT}]
    path = tmp_path / "submission.yaml"
    path.write_text("\n".join([f"incident: {MINIMAL_INCIDENT}", "report:", *(f"  {line}" for line in body)]) + "\n", encoding="utf-8")
    return str(path), {line.split(":", 1)[0]: number for number, line in enumerate(body, start=3)}


WRONG_TYPES = {  # field line → the message after "report.<field>: "
    "all_killed: 010": "expected a whole number written plainly (digits, no leading zero, no quotes), got '010'",
    "all_killed: 0x10": "expected a whole number written plainly (digits, no leading zero, no quotes), got '0x10'",
    "all_killed: 1:30": "expected a whole number written plainly (digits, no leading zero, no quotes), got '1:30'",
    'all_killed: "2"': "expected a whole number written plainly (digits, no leading zero, no quotes), got the quoted text '2'",
    "all_killed: [1, 2]": "expected a whole number written plainly (digits, no leading zero, no quotes), got a list",
    "title: [1, 2]": "expected text, got a list",
    "title: {a: 1}": "expected text, got a mapping",
    "published_date: 2024-02-30": "'2024-02-30' is not a day of the calendar",
    "published_date: 14/03/2024": "expected a date written YYYY-MM-DD, got '14/03/2024'",
}


@pytest.mark.parametrize("line", list(WRONG_TYPES))
def test_a_value_of_the_wrong_type_is_refused_at_its_yaml_key_and_line(minimal, tmp_path, line):
    before = snapshot(minimal)
    name = line.split(":", 1)[0]
    path, lines = yaml_submission(tmp_path, **{name: line})
    result = add(path, "--package", str(minimal))
    assert result.exit_code == 2
    assert result.output == f"Error: {path}:{lines[name]}: report.{name}: {WRONG_TYPES[line]}\n"
    assert snapshot(minimal) == before


def test_values_yaml_1_1_would_convert_are_written_as_typed(minimal, tmp_path):
    path, _ = yaml_submission(tmp_path, title="title: 2024-03-14T10:00:00", claimant="claimant: 010",
                              notes="notes: 1:30 yes 0x10")
    result = add(path, "--package", str(minimal))
    assert result.exit_code == 0, result.output
    reports = load_package(minimal)["reports"].frame.set_index("report_id").loc[result.stdout.strip()]
    assert (reports["title"], reports["claimant"], reports["notes"]) == ("2024-03-14T10:00:00", "010", "1:30 yes 0x10")


def test_yaml_aliases_are_refused_before_anything_expands(minimal, tmp_path):
    laughs = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]" for a, b in zip("abcd", "bcde")]
    path = tmp_path / "laughs.yaml"
    path.write_text(f"incident: {MINIMAL_INCIDENT}\nreport:\n  source_id: dailywrap\n  notes: *e\n" + "\n".join(laughs) + "\n")
    result = add(str(path), "--package", str(minimal))
    assert result.exit_code == 2
    assert result.output == f"Error: {path}:4: YAML aliases (*e) are not accepted; write the value out\n"


def test_a_submission_larger_than_the_limit_is_refused_unread(minimal, tmp_path):
    path, _ = yaml_submission(tmp_path)
    with open(path, "a", encoding="utf-8") as out:
        out.write(("# an invented comment line to make the file large\n" * 22_000))
    assert submission.MAX_SUBMISSION_BYTES < (tmp_path / "submission.yaml").stat().st_size
    result = add(path, "--package", str(minimal))
    assert result.exit_code == 2
    assert result.output == f"Error: {path}: larger than 1,048,576 bytes, the most a submission may hold\n"


def test_an_endless_device_is_refused_after_the_limit(minimal):
    result = add("/dev/zero", "--package", str(minimal))
    assert result.exit_code == 2
    assert result.output == "Error: /dev/zero: larger than 1,048,576 bytes, the most a submission may hold\n"


def test_nesting_deeper_than_a_submission_is_refused(minimal, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(f"incident: {MINIMAL_INCIDENT}\ndamage:\n  - notes: [[[[[1]]]]]\n")
    result = add(str(path), "--package", str(minimal))
    assert result.exit_code == 2
    assert result.output == f"Error: {path}:3: nested deeper than a submission goes (3 levels)\n"


# --- the longest cell: the same verdict from add and validate, in any process ---------------


def test_add_refuses_a_cell_longer_than_validate_accepts(minimal, tmp_path):
    before = snapshot(minimal)
    path, lines = yaml_submission(tmp_path, notes="notes: " + "x" * 40_000)
    result = add(path, "--package", str(minimal))
    assert result.exit_code == 2
    assert result.output == f"Error: {path}:{lines['notes']}: report.notes: 40,000 characters; a cell holds at most 32,767\n"
    assert snapshot(minimal) == before


def test_a_long_cell_gets_one_verdict_in_a_fresh_process_and_after_frictionless_raised_the_csv_limit(minimal):
    import frictionless.formats.csv.parser  # noqa: F401 - raises the csv module's field limit in this process

    set_cell(minimal / "data" / "reports.csv", 3, "notes", "y" * 100_000 + "\n" + "z" * 100_000)  # a line break: the csv module reads it
    arguments = ["validate", str(minimal), "--format", "json", "--today", TODAY]
    fresh = subprocess.run([sys.executable, "-c", "from civharm.cli import console_script; console_script()", *arguments],
                           capture_output=True, timeout=600, env=child_environment())
    warm = CliRunner().invoke(main, arguments)

    def located(stdout) -> list:
        return sorted((f["file"], f["line"], f["field"], f["rule_id"]) for f in json.loads(stdout)["findings"])

    assert located(fresh.stdout) == located(warm.stdout)
    assert ("data/reports.csv", 3, "notes", "files/cell-too-large") in located(warm.stdout)



def _add_resource(root, path: str) -> None:
    descriptor = json.loads((root / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"].append({"name": "payload", "path": path, "schema": "schema/sources.json", "profile": "tabular-data-resource"})
    (root / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")


def _header(root) -> str:
    return (root / "data" / "sources.csv").read_text(encoding="utf-8").splitlines()[0] + "\n"


@pytest.mark.parametrize("through_symlink", [True, False])
def test_a_resource_path_that_climbs_out_is_refused_and_add_writes_nothing_outside(tmp_path, monkeypatch, through_symlink):
    """The Data Package spec forbids `..`: such a path is refused even when, read through a symlinked folder, it
    would stay inside, and add's check copy (in a temporary folder) never writes where it points."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t" / "u"))
    (tmp_path / "t" / "u").mkdir(parents=True)
    root = build_package(tmp_path / "a" / "real", REPO / "data")
    if through_symlink:  # inside the package the path climbs back out of a deep symlinked folder; in a plain copy, to /
        deep = root.joinpath("d", *map(str, range(29)))
        deep.mkdir(parents=True)
        (root / "lnk").symlink_to(deep.relative_to(root))
        target = tmp_path / "outside" / "payload.csv"
        path = "lnk/" + "../" * 30 + str(target).lstrip("/")
        source = root / str(target).lstrip("/")
    else:  # read from the package's grandparent; the copy's grandparent is another folder
        path = "../../victim/payload.csv"
        source, target = tmp_path / "victim" / "payload.csv", tmp_path / "t" / "u" / "victim" / "payload.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(_header(root), encoding="utf-8")
    _add_resource(root, path)
    findings = run(root, Options(today=dt.date.fromisoformat(DATA_TODAY))).findings
    assert [(f.file, f.field, f.message) for f in findings if f.rule_id == "package/unsafe-path"] == [
        ("datapackage.json", "path", f"path {path!r} must be a relative path inside the package")]
    add(write(tmp_path, {"incident": TYOTKINO_ID, "report": REPORT}), "--package", str(root))
    assert not target.exists()
