"""History: the gate of `validate --base`, `civharm diff`, `civharm release` and build versions.

Each test works on a temporary git repository holding a copy of the repo's descriptor,
schemas and data; the repository's own git is never touched.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm import diff, history, releases, versions
from civharm.cli import main
from civharm.findings import CivharmError
from civharm.identity import IDENTITY
from civharm.ids import new_id
from civharm.package import load_package
from conftest import DATA_TODAY, REPO

DAY = (dt.date.fromisoformat(DATA_TODAY) + dt.timedelta(days=1)).isoformat()  # a change after the data's newest


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), "-c", "user.name=Test", "-c", "user.email=test@example.org",
                             "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def commit(root: Path, message: str = "change") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("datapackage.json", "CITATION.cff"):
        shutil.copy(REPO / name, root / name)
    descriptor = root / "datapackage.json"  # an unreleased package, whatever the repository's release state
    descriptor.write_text(re.sub(r'"version": "[^"]*"', '"version": "0.1.0"', descriptor.read_text(encoding="utf-8"), count=1), encoding="utf-8")
    # a changelog of its own, so the tests do not depend on the repository's release state
    (root / "CHANGELOG.md").write_text("# Dataset changelog\n\n## Unreleased\n\n- First records: the test package.\n", encoding="utf-8")
    for folder in ("schema", "data"):
        shutil.copytree(REPO / folder, root / folder)
    git(root, "init", "-q")
    commit(root, "base")
    return root


# --- editing rows by ID ------------------------------------------------------------------------


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def row(path: Path, record_id: str) -> tuple[int, dict[str, str]]:
    """(physical line, cells) of a record; the data files have one line per row."""
    rows = read_rows(path)
    for index, cells in enumerate(rows[1:], start=2):
        if cells[0] == record_id:
            return index, dict(zip(rows[0], cells))
    raise KeyError(record_id)


def first_id(path: Path, **where: str) -> str:
    rows = read_rows(path)
    for cells in rows[1:]:
        values = dict(zip(rows[0], cells))
        if all(values[k] == v for k, v in where.items()):
            return cells[0]
    raise KeyError(where)


def edit(path: Path, record_id: str, **changes: str) -> int:
    rows = read_rows(path)
    for index, cells in enumerate(rows[1:], start=1):
        if cells[0] == record_id:
            for name, value in changes.items():
                cells[rows[0].index(name)] = value
            write_rows(path, rows)
            return index + 1
    raise KeyError(record_id)


def delete(path: Path, record_id: str) -> None:
    rows = read_rows(path)
    write_rows(path, [r for r in rows if r[0] != record_id])


def append(path: Path, cells: dict[str, str]) -> int:
    rows = read_rows(path)
    rows.append([cells.get(name, "") for name in rows[0]])
    write_rows(path, rows)
    return len(rows)


def log_change(root: Path, table: str, record_id: str, version: int, field: str, old: str, new: str) -> int:
    return append(root / "data" / "changes.csv", {
        "change_id": new_id("changes"), "change_date": DAY, "table": table, "record_id": record_id,
        "record_version": str(version), "field": field, "old_value": old, "new_value": new,
        "reason": "Corrected against the source page."})


def gate(root: Path, base: str = "HEAD") -> list[tuple]:
    found = history.check_against(load_package(root), base)
    return sorted((f.file, f.line, f.field, f.rule_id) for f in found)


def following(cells: dict[str, str]) -> int:
    """The record_version a record's next change gives it."""
    return int(cells["record_version"]) + 1


def active_incident(root: Path) -> tuple[str, int, dict[str, str]]:
    incident = first_id(root / "data" / "incidents.csv", status="active")
    line, cells = row(root / "data" / "incidents.csv", incident)
    return incident, line, cells


def figure_of(cells: dict[str, str]) -> str:
    return next(f for f in ("civilians_killed_min", "all_killed_min", "civilians_injured_min", "all_injured_min") if cells[f])


# --- the history gate --------------------------------------------------------------------------


def test_unchanged_copy_passes(repo):
    assert gate(repo) == []


def test_deleted_row_is_named_without_a_line(repo):
    report = first_id(repo / "data" / "reports.csv")
    delete(repo / "data" / "reports.csv", report)
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.pointer, f.field, f.rule_id) for f in found] == [
        ("data/reports.csv", None, None, "report_id", "history/deleted-row")]
    assert report in found[0].message and "retract" in found[0].message


def test_deleted_incident_suggests_merging(repo):
    incident, _, _ = active_incident(repo)
    delete(repo / "data" / "incidents.csv", incident)
    [finding] = [f for f in history.check_against(load_package(repo), "HEAD") if f.rule_id == "history/deleted-row"]
    assert incident in finding.message and "merge" in finding.message


def test_reused_id_is_an_error_at_the_new_line(repo):
    path = repo / "data" / "sources.csv"
    rows = read_rows(path)
    taken, other = rows[1][0], dict(zip(rows[0], rows[2]))
    line = append(path, {**other, "source_id": taken})  # a new record under an existing ID
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id) for f in found] == [("data/sources.csv", line, "source_id", "history/id-changed")]
    assert f"ID {taken} reused" in found[0].message


def test_reused_id_inserted_before_the_original_is_still_the_new_row(repo):
    path = repo / "data" / "sources.csv"
    rows = read_rows(path)
    rows.insert(1, [rows[1][0]] + rows[2][1:])  # another record under the first ID, above it
    write_rows(path, rows)
    assert gate(repo) == [("data/sources.csv", 2, "source_id", "history/id-changed")]


def test_changed_id_is_an_error_naming_both_ids(repo):
    path = repo / "data" / "damage.csv"
    old = first_id(path)
    fresh = new_id("damage")
    line = edit(path, old, damage_id=fresh)
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id) for f in found] == [("data/damage.csv", line, "damage_id", "history/id-changed")]
    assert old in found[0].message and fresh in found[0].message


def test_an_id_holding_a_different_record_is_reuse(repo):
    path = repo / "data" / "reports.csv"
    rows = read_rows(path)
    source = rows[0].index("source_id")
    first = rows[1]
    other = next(r for r in rows[2:] if r[source] != first[source])
    rows[1] = [first[0]] + other[1:]  # the first ID now carries another source's statement
    write_rows(path, rows)
    assert ("data/reports.csv", 2, "report_id", "history/id-changed") in gate(repo)


def test_figure_edited_without_version_date_or_log_names_each_problem(repo):
    incident, line, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: str(int(cells[figure]) + 1)})
    assert gate(repo) == [("data/incidents.csv", line, name, "history/unversioned-change")
                          for name in sorted([figure, "last_updated", "record_version"])]


def test_figure_edited_with_version_but_no_log_entry_fails_on_the_field(repo):
    incident, line, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "7", "record_version": str(following(cells)), "last_updated": DAY})
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.line, f.field) for f in found] == [(line, figure)]
    assert f"record_version {following(cells)}" in found[0].message and "new_value '7'" in found[0].message


def test_proper_correction_passes(repo):
    incident, _, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "7", "record_version": str(following(cells)), "last_updated": DAY})
    log_change(repo, "incidents", incident, following(cells), figure, cells[figure], "7")
    assert gate(repo) == []


def test_a_second_correction_on_the_day_of_the_first_passes_but_an_unchanged_older_day_does_not(repo):
    """last_updated is the day of the change: a record corrected twice in one day keeps the day the base already has,
    which its log rows name; a day before the base's is still refused."""
    incident, line, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "7", "record_version": str(following(cells)), "last_updated": DAY})
    log_change(repo, "incidents", incident, following(cells), figure, cells[figure], "7")
    commit(repo, "first correction of the day")
    _, corrected = row(repo / "data" / "incidents.csv", incident)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "8", "record_version": str(following(corrected))})  # last_updated stays DAY
    log_change(repo, "incidents", incident, following(corrected), figure, "7", "8")
    assert gate(repo) == []
    edit(repo / "data" / "incidents.csv", incident, last_updated=cells["last_updated"])  # a day before the base's
    assert gate(repo) == [("data/incidents.csv", line, "last_updated", "history/unversioned-change")]


def test_log_entry_with_another_value_does_not_match(repo):
    incident, line, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "7", "record_version": str(following(cells)), "last_updated": DAY})
    log_change(repo, "incidents", incident, following(cells), figure, cells[figure], "8")
    assert gate(repo) == [("data/incidents.csv", line, figure, "history/unversioned-change")]


def test_two_corrections_since_the_base_both_count(repo):
    incident, _, cells = active_incident(repo)
    first = following(cells)
    edit(repo / "data" / "incidents.csv", incident, summary="First corrected summary.", record_version=str(first), last_updated=DAY)
    log_change(repo, "incidents", incident, first, "summary", cells["summary"], "First corrected summary.")
    edit(repo / "data" / "incidents.csv", incident, confidence="contested", record_version=str(first + 1), last_updated=DAY)
    log_change(repo, "incidents", incident, first + 1, "confidence", cells["confidence"], "contested")
    assert gate(repo) == []


def test_the_later_of_two_entries_at_one_version_is_the_one_that_counts(repo):
    """One field corrected twice before a release, both at the same record_version: the log's later line holds the value."""
    incident, line, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "7", "record_version": str(following(cells)), "last_updated": DAY})
    log_change(repo, "incidents", incident, following(cells), figure, cells[figure], "9")
    log_change(repo, "incidents", incident, following(cells), figure, "9", "7")  # "7" < "9": not the larger value, the later line
    assert gate(repo) == []
    edit(repo / "data" / "incidents.csv", incident, **{figure: "9"})
    assert gate(repo) == [("data/incidents.csv", line, figure, "history/unversioned-change")]


def test_proper_retraction_passes_and_a_bare_one_fails(repo):
    path = repo / "data" / "reports.csv"
    report = first_id(path, status="active")
    line, cells = row(path, report)
    edit(path, report, status="retracted")
    assert ("data/reports.csv", line, "status", "history/unversioned-change") in gate(repo)
    edit(path, report, record_version=str(int(cells["record_version"]) + 1), last_updated=DAY)
    log_change(repo, "reports", report, int(cells["record_version"]) + 1, "status", "active", "retracted")
    assert gate(repo) == []
    assert diff.required_bump(diff.compare_sources(repo, "HEAD")) == "minor"  # a retraction needs a minor release


def test_proper_merge_passes(repo):
    path = repo / "data" / "incidents.csv"
    rows = read_rows(path)
    header = rows[0]
    target, merged = rows[1][0], rows[2][0]
    version = following(dict(zip(header, rows[2])))
    reason = "Same strike as the other record, reported twice."
    edit(path, merged, status="merged", merged_into=target, status_reason=reason, record_version=str(version), last_updated=DAY)
    for name, old, new in (("status", "active", "merged"), ("merged_into", "", target), ("status_reason", "", reason)):
        log_change(repo, "incidents", merged, version, name, old, new)
    assert gate(repo) == []
    changes = diff.compare_sources(repo, "HEAD")
    assert [(c.record_id, c.kind) for c in changes.records if c.table == "incidents"] == [(merged, "merged")]
    assert header.index("merged_into") > 0


@pytest.fixture
def logged_repo(repo) -> tuple[Path, str]:
    """A repo whose base holds one corrections-log entry (a proper correction, committed)."""
    incident, _, cells = active_incident(repo)
    edit(repo / "data" / "incidents.csv", incident, summary="A corrected summary.", record_version=str(following(cells)), last_updated=DAY)
    log_change(repo, "incidents", incident, following(cells), "summary", cells["summary"], "A corrected summary.")
    commit(repo, "a correction")
    return repo, first_id(repo / "data" / "changes.csv")


def test_edited_corrections_entry_fails_at_its_line(logged_repo):
    repo, change = logged_repo
    line = edit(repo / "data" / "changes.csv", change, reason="Rewritten after the fact.")
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id) for f in found] == [("data/changes.csv", line, "reason", "history/corrections-log-edited")]


def test_removed_corrections_entry_fails(logged_repo):
    repo, change = logged_repo
    delete(repo / "data" / "changes.csv", change)
    found = history.check_against(load_package(repo), "HEAD")
    assert ("data/changes.csv", None, "change_id", "history/corrections-log-edited") in [(f.file, f.line, f.field, f.rule_id) for f in found]
    assert any(change in f.message for f in found)


# --- a repeated log row, and what a log row says the field held ----------------------------------


def test_a_repeated_corrections_log_row_gives_the_structure_findings_not_a_crash(repo, monkeypatch):
    import civharm.validate as validate

    monkeypatch.setattr(validate.rules, "check", lambda package, today, families=None: [])  # keep the test fast
    monkeypatch.setattr(validate.duplicates, "check", lambda package: [])
    path = repo / "data" / "changes.csv"
    last = path.read_text(encoding="utf-8").splitlines()[-1]
    line = append(path, dict(zip(read_rows(path)[0], next(csv.reader([last])))))
    change = last.split(",")[0]
    assert history.check_against(load_package(repo), "HEAD") == []  # the gate counts the repeated row once
    expected = [f"  data/changes.csv:{line}: change_id: duplicate primary key: the same as on line {line - 1}  error [frictionless/primary-key]",
                f"  data/changes.csv:{line}: change_id: duplicate value {change!r}: the same as on line {line - 1}  error [frictionless/unique-error]"]
    for args in ((), ("--base", "HEAD")):
        result = invoke("validate", str(repo), "--today", DAY, *args)
        assert result.exit_code == 1, result.output
        assert [out for out in result.output.splitlines() if out.startswith("  ")] == expected


def test_a_correction_logged_twice_by_mistake_counts_once(repo):
    incident, _, cells = active_incident(repo)
    edit(repo / "data" / "incidents.csv", incident, summary="A corrected summary.", record_version=str(following(cells)), last_updated=DAY)
    log_change(repo, "incidents", incident, following(cells), "summary", cells["summary"], "A corrected summary.")
    path = repo / "data" / "changes.csv"
    path.write_text(path.read_text(encoding="utf-8") + path.read_text(encoding="utf-8").splitlines()[-1] + "\n", encoding="utf-8")
    assert gate(repo) == []


def report_with(root: Path, name: str) -> tuple[str, int, dict[str, str]]:
    """(ID, line, cells) of the first active report with a value in ``name``."""
    rows = read_rows(root / "data" / "reports.csv")
    cells = next(dict(zip(rows[0], r)) for r in rows[1:] if dict(zip(rows[0], r))["status"] == "active" and dict(zip(rows[0], r))[name])
    return cells["report_id"], *row(root / "data" / "reports.csv", cells["report_id"])


def test_a_log_row_that_misstates_the_old_value_fails_at_its_line(repo):
    """The attack: 25 civilians killed rewritten as 250, logged as 250 → 250 so that the log shows no change."""
    report, _, cells = report_with(repo, "civilians_killed")
    was, now = cells["civilians_killed"], str(int(cells["civilians_killed"]) * 10)
    edit(repo / "data" / "reports.csv", report, civilians_killed=now, record_version=str(following(cells)), last_updated=DAY)
    line = log_change(repo, "reports", report, following(cells), "civilians_killed", now, now)
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id, f.message) for f in found] == [
        ("data/changes.csv", line, "old_value", "history/log-old-value",
         f"old_value {now!r} is not what civilians_killed of reports record {report} held before this change: "
         f"the base version has {was!r}; old_value must be {was!r}")]


def test_a_field_corrected_twice_is_a_chain_from_the_base_value_to_the_value_now(repo):
    report, _, cells = report_with(repo, "civilians_killed")
    was, first = cells["civilians_killed"], following(cells)
    edit(repo / "data" / "reports.csv", report, civilians_killed="250", record_version=str(first + 1), last_updated=DAY)
    log_change(repo, "reports", report, first, "civilians_killed", was, "30")
    second = log_change(repo, "reports", report, first + 1, "civilians_killed", "30", "250")
    assert gate(repo) == []
    edit(repo / "data" / "changes.csv", read_rows(repo / "data" / "changes.csv")[second - 1][0], old_value=was)  # skips the 30
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id, f.message) for f in found] == [
        ("data/changes.csv", second, "old_value", "history/log-old-value",
         f"old_value {was!r} is not what civilians_killed of reports record {report} held before this change: "
         f"its entry on line {second - 1} left '30'; old_value must be '30'")]


def test_a_released_log_row_is_not_part_of_the_next_change(logged_repo):
    """The base's entry for the record's current version is history; a new change, even one not versioned, starts from the base value."""
    repo, _ = logged_repo
    path = repo / "data" / "incidents.csv"
    incident = read_rows(repo / "data" / "changes.csv")[-1][3]
    line, cells = row(path, incident)
    edit(path, incident, summary="Corrected again.")
    log_change(repo, "incidents", incident, int(cells["record_version"]), "summary", cells["summary"], "Corrected again.")
    assert gate(repo) == [("data/incidents.csv", line, name, "history/unversioned-change") for name in ("last_updated", "record_version")]


# --- an ID that holds a different record (issue 13, point 8) ------------------------------------


def bump_and_log(root: Path, table: str, record_id: str, before: dict[str, str], after: dict[str, str]) -> None:
    """Raise the record's version and date and log every field that changed: a correction in due form."""
    version = int(before["record_version"]) + 1
    edit(root / "data" / f"{table}.csv", record_id, record_version=str(version), last_updated=DAY)
    for name, value in after.items():
        if name not in diff.BOOKKEEPING and before.get(name) != value:
            log_change(root, table, record_id, version, name, before[name], value)


def swap(root: Path, table: str, first: int, second: int, logged: bool) -> tuple[int, int]:
    """Swap everything but the IDs of two rows (0-based among the data rows); (line, line) of the two."""
    path = root / "data" / f"{table}.csv"
    rows = read_rows(path)
    header, a, b = rows[0], rows[first + 1], rows[second + 1]
    rows[first + 1], rows[second + 1] = [a[0]] + b[1:], [b[0]] + a[1:]
    write_rows(path, rows)
    if logged:
        for old, new in ((a, b), (b, a)):
            bump_and_log(root, table, old[0], dict(zip(header, old)), {**dict(zip(header, new)), header[0]: old[0]})
    return first + 2, second + 2


@pytest.mark.parametrize("logged", [True, False], ids=["logged", "unlogged"])
@pytest.mark.parametrize("table, first, second", [
    ("reports", 0, 1),     # two statements on two incidents
    ("incidents", 0, 1),   # two events in one city (Belgorod): same place, other days
    ("damage", 0, 1),      # two objects damaged in one report
    ("sources", 0, 1),
])
def test_swapped_ids_hold_different_records_logged_or_not(repo, table, first, second, logged):
    line_a, line_b = swap(repo, table, first, second, logged)
    key = read_rows(repo / "data" / f"{table}.csv")[0][0]
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.line, f.field, f.rule_id) for f in sorted(found)] == [
        (line_a, key, "history/id-changed"), (line_b, key, "history/id-changed")]
    assert "now holds the record" in found[0].message


def test_a_changed_identity_field_is_a_different_record_even_when_logged(repo):
    path = repo / "data" / "reports.csv"
    report = first_id(path, status="active")
    line, cells = row(path, report)
    url = "https://example.org/another-page-entirely"
    edit(path, report, url=url)
    bump_and_log(repo, "reports", report, cells, {**cells, "url": url})
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id) for f in found] == [("data/reports.csv", line, "report_id", "history/id-changed")]
    assert "identif" in found[0].message and url in found[0].message


def test_an_incident_may_correct_its_date_or_its_place_but_not_both(repo):
    path = repo / "data" / "incidents.csv"
    incident, line, cells = active_incident(repo)
    edit(path, incident, date_start="2024-03-13", date_end="2024-03-13")
    bump_and_log(repo, "incidents", incident, cells, {**cells, "date_start": "2024-03-13", "date_end": "2024-03-13"})
    assert gate(repo) == []
    git(repo, "checkout", "-q", "--", "data")
    moved = {"date_start": "2024-03-13", "date_end": "2024-03-13", "locality_en": "Shebekino", "locality_original": "Шебекино",
             "geonames_id": "", "latitude": "", "longitude": "", "location_precision": "area"}
    edit(path, incident, **moved)
    bump_and_log(repo, "incidents", incident, cells, {**cells, **moved})
    assert gate(repo) == [("data/incidents.csv", line, "incident_id", "history/id-changed")]


def test_record_identity_is_documented_in_the_codebook():
    section = (REPO / "docs" / "codebook.md").read_text(encoding="utf-8").split("## Record identity\n", 1)[1].split("\n## ", 1)[0]
    for table, kept in IDENTITY.items():
        listed = next(line for line in section.splitlines() if line.startswith(f"| `{table}` |"))
        for name in kept.fixed + tuple(n for _, fields in kept.facets for n in fields):
            assert f"`{name}`" in listed, (table, name)


# --- keys are checked by the released schema (issue 13, point 9) --------------------------------


def edit_schema(root: Path, table: str, change) -> None:
    path = root / "schema" / f"{table}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def without_key(schema: dict) -> None:
    schema.pop("primaryKey")
    schema["fields"][0]["constraints"].pop("unique")


def test_dropped_primary_key_then_two_rows_with_one_new_id_fails(repo):
    edit_schema(repo, "sources", without_key)
    path = repo / "data" / "sources.csv"
    _, cells = row(path, first_id(path))
    append(path, {**cells, "source_id": "new-outlet", "name": "A new outlet"})
    second = append(path, {**cells, "source_id": "new-outlet", "name": "Another new outlet"})
    found = history.check_against(load_package(repo), "HEAD")
    assert sorted((f.file, f.line or f.pointer, f.field, f.rule_id) for f in found) == sorted([
        ("schema/sources.json", "/primaryKey", None, "history/key-dropped"),
        ("schema/sources.json", "/fields/0/constraints", "source_id", "history/key-dropped"),
        ("data/sources.csv", second, "source_id", "history/duplicate-key"),
    ])
    assert "new-outlet" in next(f.message for f in found if f.rule_id == "history/duplicate-key")


@pytest.mark.parametrize("change, pointer, field", [
    (lambda s: s["fields"][0]["constraints"].pop("unique"), "/fields/0/constraints", "report_id"),
    (lambda s: s.pop("primaryKey"), "/primaryKey", None),
    (lambda s: s.update(primaryKey=["report_id", "status"]), "/primaryKey", None),
    (lambda s: s["fields"][4]["constraints"].pop("required"), "/fields/4/constraints", "incident_id"),
    (lambda s: s["foreignKeys"].pop(0), "/foreignKeys", "incident_id"),
], ids=["unique", "primaryKey", "primaryKey-widened", "required", "foreignKey"])
def test_a_dropped_key_is_a_finding_in_the_schema(repo, change, pointer, field):
    edit_schema(repo, "reports", change)
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.pointer, f.field, f.rule_id) for f in found] == [
        ("schema/reports.json", None, pointer, field, "history/key-dropped")]


def test_required_dropped_from_a_field_that_is_no_key_is_a_loosened_constraint_not_a_lost_key(repo):
    """As `title` became optional (issue 14): no ID can repeat and no reference dangle, so a minor release, not a refusal."""
    def optional_language(schema):
        field = next(f for f in schema["fields"] if f["name"] == "language")
        field["constraints"].pop("required")
    edit_schema(repo, "reports", optional_language)
    assert history.check_against(load_package(repo), "HEAD") == []
    assert diff.required_bump(diff.compare_sources(repo, "HEAD")) == "minor"


def test_a_key_dropped_from_a_schema_written_in_the_descriptor_points_into_it(repo):
    descriptor = json.loads((repo / "datapackage.json").read_text(encoding="utf-8"))
    index = next(i for i, spec in enumerate(descriptor["resources"]) if spec["name"] == "sources")
    schema = json.loads((repo / "schema" / "sources.json").read_text(encoding="utf-8"))
    schema.pop("primaryKey")
    descriptor["resources"][index]["schema"] = schema
    (repo / "datapackage.json").write_text(json.dumps(descriptor, indent=2, ensure_ascii=False), encoding="utf-8")
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.pointer, f.rule_id) for f in found] == [
        ("datapackage.json", f"/resources/{index}/schema/primaryKey", "history/key-dropped")]


# --- a dropped field erases its values -----------------------------------------------------------


def drop_column(root: Path, table: str, name: str, from_schema: bool = True) -> int:
    """Remove a field from the table's CSV file (and schema); the number of values it held."""
    if from_schema:
        edit_schema(root, table, lambda s: s.update(fields=[f for f in s["fields"] if f["name"] != name]))
    rows = read_rows(root / "data" / f"{table}.csv")
    index = rows[0].index(name)
    write_rows(root / "data" / f"{table}.csv", [r[:index] + r[index + 1:] for r in rows])
    return sum(1 for r in rows[1:] if r[index])


@pytest.mark.parametrize("name", ["title", "record_version"])
def test_a_field_dropped_from_schema_and_data_is_an_error_at_the_schema(repo, name):
    rows = len(read_rows(repo / "data" / "reports.csv")) - 1
    values = drop_column(repo, "reports", name)
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.pointer, f.field, f.rule_id, f.message) for f in found] == [
        ("schema/reports.json", None, "/fields", name, "history/field-dropped",
         f"field `{name}` removed, erasing its values in {values} of the base's {rows} rows; a field is dropped or renamed only "
         "in a major release (see RELEASING.md): put it back, or make that release on purpose")]
    assert diff.required_bump(diff.compare_sources(repo, "HEAD")) == "major"  # the level the message names is the diff's


def test_a_renamed_field_points_at_its_new_name_and_a_column_gone_from_the_file_only_at_the_header(repo):
    path = repo / "data" / "reports.csv"
    rows = read_rows(path)
    index, values = rows[0].index("title"), sum(1 for r in rows[1:] if r[rows[0].index("title")])
    edit_schema(repo, "reports", lambda s: s["fields"][index].update(name="headline"))
    write_rows(path, [["headline" if c == "title" else c for c in rows[0]]] + rows[1:])
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.pointer, f.field, f.message) for f in found] == [
        ("schema/reports.json", f"/fields/{index}", "title", f"field `title` renamed to `headline`, so the gate cannot follow its "
         f"values in {values} of the base's {len(rows) - 1} rows under the new name; a field is dropped or renamed only in a major "
         "release (see RELEASING.md): put it back, or make that release on purpose")]
    git(repo, "checkout", "-q", "--", ".")
    drop_column(repo, "reports", "title", from_schema=False)  # the structure stage reports the missing column too
    found = history.check_against(load_package(repo), "HEAD")
    assert [(f.file, f.line, f.field, f.rule_id, f.message) for f in found] == [
        ("data/reports.csv", 1, "title", "history/field-dropped", f"column `title` removed from data/reports.csv, erasing its "
         f"values in {values} of the base's {len(rows) - 1} rows; a field is dropped or renamed only in a major release (see "
         "RELEASING.md): put it back, or make that release on purpose")]


def test_a_field_empty_in_the_base_may_go(repo):
    path = repo / "data" / "damage.csv"
    rows = read_rows(path)
    index = rows[0].index("notes")
    write_rows(path, [rows[0]] + [r[:index] + [""] + r[index + 1:] for r in rows[1:]])
    commit(repo, "notes emptied")
    drop_column(repo, "damage", "notes")
    assert gate(repo) == []


# --- last_updated is a date (issue 13, point 10) ------------------------------------------------


@pytest.mark.parametrize("written", ["2026-11-3", "2026-11-03", "2026-11-26", "٢٠٢٦-12-01"])
def test_last_updated_must_be_a_later_day_written_yyyy_mm_dd(repo, written):
    incident = first_id(repo / "data" / "incidents.csv", status="active", last_updated="2026-11-26")  # "2026-11-3" sorts after it as text
    line, cells = row(repo / "data" / "incidents.csv", incident)
    edit(repo / "data" / "incidents.csv", incident, summary="A corrected summary.", record_version="2", last_updated=written)
    log_change(repo, "incidents", incident, 2, "summary", cells["summary"], "A corrected summary.")
    assert gate(repo) == [("data/incidents.csv", line, "last_updated", "history/unversioned-change")]


def test_a_record_version_in_other_digits_is_not_a_version(repo):
    incident, line, cells = active_incident(repo)
    edit(repo / "data" / "incidents.csv", incident, summary="A corrected summary.", record_version="²", last_updated=DAY)
    log_change(repo, "incidents", incident, 2, "summary", cells["summary"], "A corrected summary.")
    assert ("data/incidents.csv", line, "record_version", "history/unversioned-change") in gate(repo)


def test_a_table_that_cannot_be_parsed_is_not_compared_and_says_so(repo):
    path = repo / "data" / "reports.csv"
    rows = read_rows(path)
    write_rows(path, [r[1:] for r in rows])  # no report_id column: frictionless reports it
    [found] = history.check_against(load_package(repo), "HEAD")
    assert (found.file, found.line, found.field, found.rule_id) == ("data/reports.csv", None, None, "history/unreadable-table")
    assert found.message == ("table reports could not be read in the package (data/reports.csv:1: its primary key columns are "
                             "not all in its header), so its rows were not compared with the base; fix that and validate again")


def rewrite_with_semicolons(root: Path, names: list[str]) -> None:
    """Declare a ';' dialect for these tables and save their files that way (a well-formed rewrite)."""
    descriptor = json.loads((root / "datapackage.json").read_text(encoding="utf-8"))
    for spec in descriptor["resources"]:
        if spec["name"] in names:
            spec["dialect"] = {"delimiter": ";"}
            path = root / spec["path"]
            out = io.StringIO()
            csv.writer(out, delimiter=";", lineterminator="\n").writerows(read_rows(path))
            path.write_text(out.getvalue(), encoding="utf-8")
    (root / "datapackage.json").write_text(json.dumps(descriptor, indent=2), encoding="utf-8")


@pytest.fixture
def incident_deleted_behind_a_dialect(repo) -> tuple[Path, str]:
    """A released incident deleted with its reports and damage, the three files rewritten with ';'."""
    incidents, reports, damage = (repo / "data" / f"{name}.csv" for name in ("incidents", "reports", "damage"))
    report_rows = read_rows(reports)
    incident = next(r[report_rows[0].index("incident_id")] for r in report_rows[1:]
                    if r[0] in {d[read_rows(damage)[0].index("report_id")] for d in read_rows(damage)[1:]})
    gone = {r[0] for r in report_rows[1:] if r[report_rows[0].index("incident_id")] == incident}
    delete(incidents, incident)
    write_rows(reports, [r for r in report_rows if r[0] not in gone])
    damage_rows = read_rows(damage)
    write_rows(damage, [r for r in damage_rows if r[damage_rows[0].index("report_id")] not in gone])
    rewrite_with_semicolons(repo, ["incidents", "reports", "damage"])
    return repo, incident


def test_a_dialect_rewrite_that_deletes_an_incident_fails_validate_base(incident_deleted_behind_a_dialect, monkeypatch):
    import civharm.validate as validate

    repo, _ = incident_deleted_behind_a_dialect
    monkeypatch.setattr(validate.rules, "check", lambda package, today, families=None: [])  # keep the test fast
    monkeypatch.setattr(validate.duplicates, "check", lambda package: [])
    result = invoke("validate", str(repo), "--base", "HEAD", "--today", DAY, "--format", "json")
    assert result.exit_code == 1
    found = [(f["file"], f["pointer"], f["rule_id"]) for f in json.loads(result.output)["findings"]]
    for index, name in enumerate(["incidents", "reports", "damage"]):
        assert ("datapackage.json", f"/resources/{index}/dialect/delimiter", "package/unsupported-dialect") in found
        assert (f"data/{name}.csv", None, "history/unreadable-table") in found
    assert json.loads(result.output)["summary"]["not_read"] == ["incidents", "reports", "damage"]


def test_a_dialect_rewrite_that_deletes_an_incident_stops_diff_and_release(incident_deleted_behind_a_dialect):
    repo, _ = incident_deleted_behind_a_dialect
    result = invoke("diff", "HEAD", "--package", str(repo))
    assert result.exit_code == 2
    assert result.output == ("Error: cannot compare table incidents: its rows could not be read in working copy "
                             "(datapackage.json#/resources/0/dialect/delimiter: dialect: delimiter ';' is not supported: save the "
                             "file as plain CSV and remove the dialect; civharm reads each table from an uncompressed, "
                             "comma-separated UTF-8 CSV file in the package); run `civharm validate` on it\n")
    with pytest.raises(CivharmError, match=r"^cannot compare table incidents: its rows could not be read in v1\.0\.0 "):
        releases.plan_release(repo, "1.0.0", dt.date.fromisoformat(DAY), base="HEAD")


def test_a_base_version_whose_table_cannot_be_read_is_not_taken_as_empty(incident_deleted_behind_a_dialect):
    repo, incident = incident_deleted_behind_a_dialect
    commit(repo, "rewritten")
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "HEAD~1", "--", "."], check=True)
    with pytest.raises(CivharmError, match=r"^cannot compare table incidents: its rows could not be read in HEAD "):
        diff.compare_sources(repo, "HEAD")
    assert [f.rule_id for f in history.check_against(load_package(repo), "HEAD")] == ["history/unreadable-table"] * 3


def test_base_from_a_release_zip_and_an_older_commit(repo, tmp_path):
    archive = tmp_path / "civharm-0.1.0.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in [repo / "datapackage.json", *(repo / "schema").glob("*.json"), *(repo / "data").glob("*.csv")]:
            out.write(path, f"civharm-0.1.0/{path.relative_to(repo).as_posix()}")
    report = first_id(repo / "data" / "reports.csv")
    delete(repo / "data" / "reports.csv", report)
    assert [f[3] for f in gate(repo, str(archive))] == ["history/deleted-row"]
    commit(repo, "deleted")
    assert gate(repo, "HEAD") == []
    assert [f[3] for f in gate(repo, "HEAD~1")] == ["history/deleted-row"]


def test_unknown_ref_and_missing_repository_are_clear_errors(repo, tmp_path):
    with pytest.raises(CivharmError, match=r"^no-such-ref: unknown git ref in "):
        history.check_against(load_package(repo), "no-such-ref")
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    with pytest.raises(CivharmError, match=r"^HEAD: .* is not inside a git repository"):
        history.check_against(load_package(plain), "HEAD")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_validate_base_cli_fails_with_file_line_field(repo, monkeypatch):
    import civharm.validate as validate

    monkeypatch.setattr(validate.rules, "check", lambda package, today, families=None: [])  # keep the test fast
    monkeypatch.setattr(validate.duplicates, "check", lambda package: [])
    incident, line, cells = active_incident(repo)
    figure = figure_of(cells)
    edit(repo / "data" / "incidents.csv", incident, **{figure: "9"})
    result = invoke("validate", str(repo), "--base", "HEAD", "--today", DAY)
    assert result.exit_code == 1
    assert any(f"data/incidents.csv:{line}: {figure}: changed from" in out and "[history/unversioned-change]" in out
               for out in result.output.splitlines())


def test_validate_base_unknown_ref_exits_2(repo):
    result = invoke("validate", str(repo), "--base", "v9.9.9")
    assert result.exit_code == 2
    assert result.output == f"Error: v9.9.9: unknown git ref in {repo} (a branch, tag or commit; fetch it first if it is remote)\n"


# --- diff --------------------------------------------------------------------------------------


def new_incident(root: Path) -> str:
    _, _, cells = active_incident(root)
    incident = new_id("incidents")
    append(root / "data" / "incidents.csv", {**cells, "incident_id": incident, "summary": "A new incident for the diff test."})
    return incident


def test_diff_between_two_commits_lists_added_records(repo):
    first = git(repo, "rev-parse", "HEAD")
    incident = new_incident(repo)
    second = commit(repo, "add")
    result = invoke("diff", first, second, "--package", str(repo))
    assert result.exit_code == 0
    assert "### Added (1)" in result.output and f"- `{incident}` (data/incidents.csv:" in result.output
    payload = json.loads(invoke("diff", first, second, "--package", str(repo), "--format", "json").output)
    assert set(payload) == {"version", "base", "head", "bump", "counts", "schema", "records"}
    assert payload["counts"] == {"incidents": {"added": 1}} and payload["bump"] == "minor"
    assert [(r["record_id"], r["kind"]) for r in payload["records"]] == [(incident, "added")]


def test_diff_shows_old_and_new_per_field(repo):
    incident, _, cells = active_incident(repo)
    edit(repo / "data" / "incidents.csv", incident, confidence="contested")
    text = diff.to_markdown(diff.compare_sources(repo, "HEAD"))
    assert f"- `confidence`: `{cells['confidence']}` → `contested`" in text


@pytest.mark.parametrize("change, level", [
    (lambda s: s["fields"].append({"name": "extra", "type": "string", "description": "x"}), "minor"),
    (lambda s: s["fields"].append({"name": "extra", "type": "string", "constraints": {"required": True}}), "major"),
    (lambda s: s["fields"].pop(), "major"),
    (lambda s: s["fields"][-1].update(type="integer"), "major"),
    (lambda s: s["fields"][2]["constraints"].update(minimum=5), "major"),
    (lambda s: s["fields"][2]["constraints"].update(minimum=0), "minor"),
    (lambda s: s["fields"][1].update(description="Reworded."), "patch"),
])
def test_schema_changes_set_the_release_level(change, level):
    schema = json.loads((REPO / "schema" / "damage.json").read_text(encoding="utf-8"))
    edited = json.loads(json.dumps(schema))
    change(edited)
    found = diff.schema_changes("damage", schema, edited)
    assert found and max(diff.LEVELS.index(c.level) for c in found) == diff.LEVELS.index(level)


def releasing_table() -> dict[str, str]:
    """RELEASING.md's bump table as committed: each item of a row (split at '; ') → the row's level."""
    text = (REPO / "RELEASING.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (.+) \| (major|minor|patch) \|$", text, re.M)
    return {item: level for items, level in rows for item in items.split("; ")}


def _schema_example(kind: str) -> tuple[dict | None, dict | None]:
    """A (base, new) pair of damage schemas that differ by one difference of this kind."""
    base = json.loads((REPO / "schema" / "damage.json").read_text(encoding="utf-8"))
    new = json.loads(json.dumps(base))
    fields = new["fields"]
    count = next(f for f in fields if f["name"] == "count")
    edits = {
        "field-removed": lambda: fields.pop(),
        "field-renamed": lambda: fields[-1].update(name="remarks"),
        "type-changed": lambda: fields[-1].update(type="integer"),
        "constraint-tightened": lambda: count["constraints"].update(minimum=5),
        "field-added-required": lambda: fields.append({"name": "extra", "type": "string", "constraints": {"required": True}}),
        "primaryKey-changed": lambda: new.update(primaryKey=["damage_id", "status"]),
        "foreignKeys-added": lambda: new["foreignKeys"].append({"fields": ["damage_id"], "reference": {"resource": "damage", "fields": ["damage_id"]}}),
        "missingValues-changed": lambda: new.update(missingValues=["", "NA"]),
        "fields-reordered": lambda: fields.insert(0, fields.pop(1)),
        "field-added-optional": lambda: fields.append({"name": "extra", "type": "string", "description": "x"}),
        "constraint-loosened": lambda: count["constraints"].update(minimum=-1),
        "foreignKeys-dropped": lambda: new["foreignKeys"].pop(),
        "field-documented": lambda: fields[1].update(description="Reworded."),
        "table-documented": lambda: new.update(description="Reworded."),
    }
    if kind == "table-added":
        return None, new
    if kind == "table-removed":
        return base, None
    edits[kind]()
    return base, new


@pytest.mark.parametrize("bump", diff.BUMPS, ids=lambda b: b.change)
def test_each_row_of_the_releasing_bump_table_is_what_release_requires(bump):
    """Each kind of difference RELEASING.md names, made once, needs exactly the level the committed table gives it."""
    documented = releasing_table()
    assert bump.text in documented, f"{bump.text!r} is not in RELEASING.md: run `cog -r RELEASING.md`"
    if bump.change in dict(diff.KIND_TITLES) or bump.change == "log-added":
        table = diff.LOG_TABLE if bump.change == "log-added" else "reports"
        kind = "added" if bump.change == "log-added" else bump.change
        changes = [diff.RecordChange(table, f"data/{table}.csv", "rec_1", kind, 2)]
        schema = []
    else:
        schema = diff.schema_changes("damage", *_schema_example(bump.change))
        changes = []
    found = diff.required_bump(diff.Diff("base", "head", changes, schema, {}))
    assert found == documented[bump.text], f"{bump.change}: release requires {found}, RELEASING.md says {documented[bump.text]}"


def test_the_releasing_table_names_every_kind_of_difference():
    """Every record kind the diff tells apart and every schema difference has a row (the bump rule reads only BUMPS)."""
    assert {k for k, _ in diff.KIND_TITLES} | {"log-added"} <= set(diff.LEVEL_OF)
    assert len(releasing_table()) == len(diff.BUMPS)


def test_corrections_only_need_a_patch(repo):
    incident, _, cells = active_incident(repo)
    edit(repo / "data" / "incidents.csv", incident, summary="A corrected summary.", record_version=str(following(cells)), last_updated=DAY)
    log_change(repo, "incidents", incident, following(cells), "summary", cells["summary"], "A corrected summary.")
    assert diff.required_bump(diff.compare_sources(repo, "HEAD")) == "patch"


# --- release -----------------------------------------------------------------------------------


def release(root: Path, version: str, *extra: str):
    return invoke("release", version, "--package", str(root), "--date", DAY, "--skip-validate", *extra)


def test_first_release_writes_version_changelog_and_record(repo):
    result = release(repo, "1.0.0")
    assert result.exit_code == 0, result.output
    assert releases.recorded_versions(repo) == {"datapackage.json": "1.0.0", "CITATION.cff": "1.0.0",
                                               "CHANGELOG.md": "1.0.0", "releases.json": "1.0.0"}
    changelog = (repo / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## Unreleased\n\n## 1.0.0 ({DAY})\n\nFirst release: " in changelog
    assert "First records:" in changelog.split("## 1.0.0")[1]  # the Unreleased notes moved into the release
    assert f'date-released: "{DAY}"' in (repo / "CITATION.cff").read_text(encoding="utf-8")
    [entry] = versions.read_releases(repo)
    assert entry["tag"] == "v1.0.0" and entry["previous"] is None and "data/incidents.csv" in entry["files"]
    descriptor = (repo / "datapackage.json").read_text(encoding="utf-8")
    assert git(repo, "diff", "--numstat", "--", "datapackage.json").split()[:2] == ["1", "1"]  # only the version line
    assert json.loads(descriptor)["version"] == "1.0.0"


def test_release_refuses_a_smaller_bump_and_accepts_the_needed_one(repo):
    assert release(repo, "1.0.0").exit_code == 0
    commit(repo, "Release 1.0.0")
    git(repo, "tag", "v1.0.0")
    incident = new_incident(repo)
    refused = release(repo, "1.0.1")
    assert refused.exit_code == 2
    assert refused.output.startswith("Error: 1.0.1 is not allowed after 1.0.0: the changes need at least a minor release (incidents: 1 added)")
    assert release(repo, "1.2.0").exit_code == 2  # skipping a version is refused too
    accepted = release(repo, "1.1.0")
    assert accepted.exit_code == 0, accepted.output
    section = (repo / "CHANGELOG.md").read_text(encoding="utf-8").split("## 1.1.0")[1].split("## 1.0.0")[0]
    assert "Compared with 1.0.0: 1 added; 0 schema changes." in section and "`civharm diff v1.0.0 v1.1.0`" in section
    assert "| incidents | 1 |" in section
    assert [e["version"] for e in versions.read_releases(repo)] == ["1.0.0", "1.1.0"]
    assert incident in invoke("diff", "1.0.0", "--package", str(repo)).output


def test_release_without_changes_or_twice_is_refused(repo):
    assert release(repo, "1.0.0").exit_code == 0
    commit(repo, "Release 1.0.0")
    assert release(repo, "1.0.0").output.startswith("Error: 1.0.0 is already released")
    assert release(repo, "1.0.1").output.startswith("Error: nothing changed since 1.0.0")


def test_the_last_release_is_found_without_its_tag(repo):
    assert release(repo, "1.0.0").exit_code == 0
    release_commit = commit(repo, "Release 1.0.0")
    [entry] = versions.read_releases(repo)
    assert versions.release_ref(repo, entry) == release_commit


def test_release_fault_between_two_files_changes_nothing(repo):
    names = ["datapackage.json", "CITATION.cff", "CHANGELOG.md", "releases.json"]
    before = {n: (repo / n).read_bytes() if (repo / n).exists() else None for n in names}

    def fault(index, target):
        if index == 2:
            raise OSError("disk full (injected)")

    with pytest.raises(CivharmError, match=r"cannot write CHANGELOG.md: disk full \(injected\); nothing was changed"):
        releases.release(repo, "1.0.0", dt.date.fromisoformat(DAY), fault=fault)
    after = {n: (repo / n).read_bytes() if (repo / n).exists() else None for n in names}
    assert after == before
    assert git(repo, "status", "--porcelain") == ""  # no temporary file, no journal


def test_dry_run_writes_nothing(repo):
    result = release(repo, "1.0.0", "--dry-run")
    assert result.exit_code == 0 and "## 1.0.0" in result.output
    assert git(repo, "status", "--porcelain") == ""


def test_release_refuses_an_invalid_package(repo, monkeypatch):
    import civharm.validate as validate
    from civharm.findings import Finding, Report

    broken = Report([Finding("data/incidents.csv", 2, "summary", "text/x", "bad")], {})
    monkeypatch.setattr(validate, "run", lambda package, options: broken)
    result = invoke("release", "1.0.0", "--package", str(repo), "--date", DAY)
    assert result.exit_code == 2
    assert result.output == "Error: the package has 1 errors; run `civharm validate` and fix them before releasing\n"
    assert not (repo / "releases.json").exists()


def test_build_version_labels_builds_between_releases(repo):
    short = git(repo, "rev-parse", "--short=7", "HEAD")
    version = json.loads((repo / "datapackage.json").read_text())["version"]
    assert releases.build_version(repo) == f"{version}-dev.g{short}"
    assert release(repo, "1.0.0").exit_code == 0
    assert releases.build_version(repo) == "1.0.0"  # the files are the release's
    commit(repo, "Release 1.0.0")
    new_incident(repo)
    short = git(repo, "rev-parse", "--short=7", "HEAD")
    assert releases.build_version(repo) == f"1.1.0-dev.g{short}.dirty"
    head = commit(repo, "add")
    assert re.fullmatch(rf"1\.1\.0-dev\.g{head[:7]}", releases.build_version(repo))


def test_the_repository_keeps_its_recorded_versions_equal():
    """datapackage.json, CITATION.cff, the newest CHANGELOG.md section and releases.json agree."""
    recorded = releases.recorded_versions(REPO)
    assert recorded["datapackage.json"] == recorded["CITATION.cff"]
    for name in ("CHANGELOG.md", "releases.json"):
        assert recorded[name] in (None, recorded["datapackage.json"]), name
    assert (recorded["CHANGELOG.md"] is None) == (recorded["releases.json"] is None)


def test_a_release_records_no_hash_of_a_file_outside_the_package(tmp_path):
    """releases.json lists the sha256 of each file a release holds; a path out through a symlinked folder is none of them."""
    root, outside = tmp_path / "pkg", tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.csv").write_text("not the package's\n", encoding="utf-8")
    (root / "data" / "inside.csv").write_text("a\n", encoding="utf-8")
    (root / "lnk").symlink_to(outside)
    descriptor = json.dumps({"resources": [{"name": "a", "path": "data/inside.csv"}, {"name": "b", "path": "lnk/secret.csv"}]}).encode()
    assert sorted(releases._package_files(root, descriptor)) == ["data/inside.csv", "datapackage.json"]
