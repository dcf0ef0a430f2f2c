"""civharm add: attach or create, duplicate candidates before writing, all-or-nothing writes."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from click.testing import CliRunner

from civharm import contribute
from civharm.cli import main
from civharm.package import load_package
from civharm.validate import Options, run
from conftest import DATA_TODAY, REPO, build_package

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


def test_near_duplicate_shows_the_candidate_and_writes_nothing_without_confirmation(real, tmp_path):
    before = snapshot(real)
    result = add(write(tmp_path, _near_duplicate_submission()), "--package", str(real))
    assert result.exit_code == 1
    assert TYOTKINO_ID in result.output and "score" in result.output
    assert "nothing written" in result.output
    assert snapshot(real) == before


def test_confirmed_distinct_incident_is_written_with_its_decision(real, tmp_path):
    result = add(write(tmp_path, _near_duplicate_submission()), "--package", str(real), "--yes", "--distinct-note", "Test: checked, two events.")
    assert result.exit_code == 0, result.output
    decisions = load_package(real)["duplicate_decisions"].frame
    assert len(decisions) == 1 and decisions.iloc[0]["decision"] == "distinct"
    assert run(real, Options(today=dt.date.fromisoformat(DATA_TODAY))).exit_code() == 0


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


def test_a_fault_between_two_file_writes_leaves_data_byte_identical(real):
    before = snapshot(real)
    package = load_package(real)
    built = contribute.plan(package, contribute.Submission.from_mapping({"incident": TYOTKINO_ID, "report": REPORT}, "test"), dt.date.fromisoformat(DATA_TODAY))
    assert len(built.files) >= 3  # reports, incidents and changes all change

    def fault(index, path):
        if index == 1:
            raise OSError("injected fault between two files")

    with pytest.raises(OSError, match="injected"):
        contribute.commit(built, fault=fault)
    assert snapshot(real) == before
    assert not list((real / "data").glob(".*.tmp"))


def test_no_prompt_without_a_terminal(real):
    result = CliRunner().invoke(main, ["add", "--package", str(real)], input="")
    assert result.exit_code == 2 and "without a terminal" in result.output


def test_prompts_offer_definitions_skip_unused_qualifiers_and_write_after_confirmation(real, monkeypatch):
    from civharm import cli

    monkeypatch.setattr(cli, "stdin_is_terminal", lambda: True)
    version = next_version(real, TYOTKINO_ID)
    answers = [TYOTKINO_ID, "themoscowtimes", REPORT["url"], "Test", "en", "2024-03-14", "day", "2026-11-26", "Test claimant",
               "regional_authority", "2024-03-14", "", "unknown", "1", "bogus", "exact", "", "", "", "", "", "", "y"]
    result = CliRunner().invoke(main, ["add", "--package", str(real), "--today", DATA_TODAY], input="\n".join(answers) + "\n",
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "  regional_authority: Governor, regional or city administration of the place harmed." in result.output
    assert "'bogus' is not one of exact, at_least, more_than, about, up_to (or leave it empty)" in result.output
    assert "civilians_injured_qualifier" not in result.output  # no figure, so no qualifier question
    incident = load_package(real)["incidents"].frame.set_index("incident_id").loc[TYOTKINO_ID]
    assert incident["civilians_killed_min"] == "1" and incident["record_version"] == version


def test_answering_no_writes_nothing(real, monkeypatch):
    from civharm import cli

    monkeypatch.setattr(cli, "stdin_is_terminal", lambda: True)
    before = snapshot(real)
    answers = [TYOTKINO_ID, "themoscowtimes", REPORT["url"], "Test", "en", "2024-03-14", "day", "2026-11-26", "Test claimant",
               "regional_authority", "2024-03-14", "", "unknown", "", "", "", "", "", "", "n"]
    result = CliRunner().invoke(main, ["add", "--package", str(real), "--today", DATA_TODAY], input="\n".join(answers) + "\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert snapshot(real) == before
