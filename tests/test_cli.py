"""CLI behaviour: exit codes, exact error text, formats, and no tracebacks."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from civharm.cli import main
from civharm.findings import Finding, Severity
from conftest import TODAY, set_cell


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_missing_package_exits_2_with_one_line(tmp_path):
    result = invoke("validate", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path / 'nowhere' / 'datapackage.json'}: no data package here (expected a datapackage.json or its folder)\n"


def test_invalid_json_descriptor_exits_2_with_location(tmp_path):
    (tmp_path / "datapackage.json").write_text('{"resources": [\n', encoding="utf-8")
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {tmp_path / 'datapackage.json'}:2: invalid JSON:")
    assert "Traceback" not in result.output


def test_data_error_exits_1_and_prints_file_line_field(valid_package):
    set_cell(valid_package / "data" / "incidents.csv", 2, "geonames_id", "abc")
    result = invoke("validate", str(valid_package), "--today", TODAY)
    assert result.exit_code == 1
    assert "  data/incidents.csv:2: geonames_id: 'abc' is not a valid integer  error [frictionless/type-error]" in result.output.splitlines()
    assert result.output.splitlines()[-1] == "invalid: 2 incidents (2 active), 2 reports, 1 sources; 1 errors, 0 warnings"


def test_json_format_has_documented_shape(valid_package):
    set_cell(valid_package / "data" / "incidents.csv", 2, "geonames_id", "abc")
    result = invoke("validate", str(valid_package), "--format", "json", "--today", TODAY)
    payload = json.loads(result.output)
    assert set(payload) == {"version", "valid", "summary", "findings"}
    assert payload["valid"] is False
    assert [set(f) for f in payload["findings"]] == [{"rule_id", "severity", "file", "line", "pointer", "field", "message"}]


@pytest.mark.parametrize("today", ["yesterday", "2024-3-14", "9999-12-31", "0224-03-14"])
def test_bad_today_is_a_usage_error(valid_package, today):
    """A day out of the range dates are read in (package.EARLIEST_DAY..LATEST_DAY) would move every 'not after today' rule."""
    result = invoke("validate", str(valid_package), "--today", today)
    assert result.exit_code == 2
    assert f"Invalid value for --today / CIVHARM_TODAY: {today!r} is not a day (YYYY-MM-DD) from 1900-01-01 to 2099-12-31" in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert main.commands[command].help and "Example" in main.commands[command].help


def test_github_format_escapes_and_lists_changed_files_first(valid_package, tmp_path, monkeypatch):
    set_cell(valid_package / "data" / "incidents.csv", 2, "geonames_id", "abc")
    set_cell(valid_package / "data" / "sources.csv", 2, "note", "=HYPERLINK(1)")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = CliRunner().invoke(main, ["validate", str(valid_package), "--format", "github", "--today", TODAY,
                                       "--changed", "data/sources.csv"], catch_exceptions=False)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "::error file=data/sources.csv,line=2,title=text/formula-prefix::note: '=HYPERLINK(1)' starts with '=', which spreadsheets run as a formula"
    assert lines[1] == "::error file=data/incidents.csv,line=2,title=frictionless/type-error::geonames_id: 'abc' is not a valid integer"
    text = summary.read_text(encoding="utf-8")
    assert "| error | `text/formula-prefix` | `data/sources.csv:2` |" in text and "| error | `frictionless/type-error` |" in text


def test_github_workflow_command_escaping():
    from civharm.findings import Finding, Report
    from civharm.render import github

    finding = Finding("data/a,b:c.csv", 3, "f", "x/y", "100% bad\nnext, line: here")
    line = github(Report([finding])).splitlines()[0]
    assert line == "::error file=data/a%2Cb%3Ac.csv,line=3,title=x/y::f: 100%25 bad%0Anext, line: here"


def test_report_dir_holds_json_and_data_docs(valid_package, tmp_path):
    target = tmp_path / "report"
    result = invoke("validate", str(valid_package), "--today", TODAY, "--report-dir", str(target))
    assert result.exit_code == 0
    assert json.loads((target / "report.json").read_text(encoding="utf-8"))["valid"] is True
    assert (target / "data-docs" / "index.html").exists()


def test_validate_reports_each_stage_as_it_starts(valid_package):
    """On a terminal the CLI prints these as progress; the pipeline tells them in order."""
    import datetime as dt

    from civharm.validate import Options, run

    seen = []
    run(valid_package, Options(today=dt.date(2026, 11, 26), progress=seen.append))
    assert seen == ["load", "structure", "rules", "duplicates"]


@pytest.mark.parametrize("finding", [
    Finding("data/reports.csv", 3, "title", "text/control-character", 'a "quote", ü, ’, \\ \n \u2028 \x00 \x1f', Severity.WARNING),
    Finding("datapackage.json", None, None, "package/missing-file", "no file", Severity.ERROR, "/resources/0/path"),
    Finding("data/incidents.csv", 12, None, "duplicates/near-duplicate", "Тёткино", Severity.INFO),
], ids=["escapes", "pointer", "no-field"])
def test_json_findings_are_what_json_dumps_writes(finding):
    """The JSON report writes each finding by hand (speed); it must equal the json module's output."""
    assert finding.as_json() == json.dumps(finding.as_dict(), ensure_ascii=False)


# --- the `civharm` command itself (a process that ends with the command) ------------------

def _civharm(*args, **kwargs):
    import subprocess
    import sys
    from pathlib import Path
    command = Path(sys.executable).with_name("civharm")
    assert command.exists(), "the package is installed with its console script"
    return subprocess.run([str(command), *args], capture_output=True, **kwargs)


def test_console_script_writes_all_output_and_keeps_the_exit_code(valid_package, tmp_path):
    """It leaves with os._exit: a large report must still be flushed whole, the exit code kept."""
    sources = valid_package / "data" / "sources.csv"
    with sources.open("a", encoding="utf-8") as out:
        out.writelines(f"bad{i},gone,1,2026-11-26,Bad {i},online_outlet,,bad.example,\n" for i in range(3000))  # status not allowed
    done = _civharm("validate", str(valid_package), "--format", "json", "--today", TODAY, "--report-dir", str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    assert len(done.stdout) > 1 << 19  # far beyond a pipe's (64 KiB) and stdio's (8 KiB) buffers
    payload = json.loads(done.stdout)
    assert payload["summary"]["counts"]["error"] == len([f for f in payload["findings"] if f["severity"] == "error"]) >= 3000
    assert json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8")) == payload


def test_console_script_exit_codes(valid_package, tmp_path):
    assert _civharm("validate", str(valid_package), "--today", TODAY).returncode == 0
    set_cell(valid_package / "data" / "incidents.csv", 2, "geonames_id", "abc")
    failed = _civharm("validate", str(valid_package), "--today", TODAY, text=True)
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[-1] == "invalid: 2 incidents (2 active), 2 reports, 1 sources; 1 errors, 0 warnings"
    missing = _civharm("validate", str(tmp_path / "nowhere"), text=True)
    assert missing.returncode == 2
    assert missing.stderr.startswith("Error: ") and "Traceback" not in missing.stderr


def test_cycle_collector_is_back_on_after_a_validation_in_the_callers_process(valid_package):
    import gc
    assert gc.isenabled()
    invoke("validate", str(valid_package), "--today", TODAY)
    assert gc.isenabled()


def generic_package(root, population: str):
    """A data package outside civharm's model: one table, countries, with its own schema."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "countries.csv").write_text(f"code,name,population\nUA,Ukraine,-\nSY,Syria,{population}\n", encoding="utf-8")
    schema = {"fields": [{"name": "code", "type": "string"}, {"name": "name", "type": "string"},
                         {"name": "population", "type": "string", "constraints": {"pattern": "-|[0-9]+"}}], "primaryKey": ["code"]}
    (root / "datapackage.json").write_text(json.dumps({"name": "countries", "resources": [
        {"name": "countries", "path": "data/countries.csv", "format": "csv", "encoding": "utf-8", "schema": schema}]}), encoding="utf-8")
    return root


def test_a_generic_package_gets_the_structure_checks_and_says_the_dataset_rules_did_not_apply(tmp_path):
    clean = invoke("validate", str(generic_package(tmp_path / "clean", "21000000")), "--today", TODAY)
    assert clean.exit_code == 0
    assert clean.output == ("valid: 2 countries; structure checked; civharm's dataset rules not applied "
                            "(not a civharm package: no incidents or reports table); 0 errors, 0 warnings\n")
    broken = invoke("validate", str(generic_package(tmp_path / "broken", "many")), "--today", TODAY, "--format", "json")
    payload = json.loads(broken.output)
    assert broken.exit_code == 1
    assert [(f["file"], f["line"], f["field"], f["rule_id"]) for f in payload["findings"]] == [
        ("data/countries.csv", 3, "population", "frictionless/constraint-error")]
    assert payload["summary"] == {"package": str(tmp_path / "broken"), "tables": {"countries": 2}, "dataset_rules": False,
                                  "dataset_rules_not_applied": "not a civharm package: no incidents or reports table",
                                  "counts": {"error": 1, "warning": 0, "info": 0}}


def test_a_table_that_was_not_read_is_named_in_the_summary_not_counted_as_empty(valid_package):
    descriptor = json.loads((valid_package / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"][3]["dialect"] = {"delimiter": "\t"}
    (valid_package / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    result = invoke("validate", str(valid_package), "--today", TODAY)
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        "  datapackage.json#/resources/3/dialect/delimiter: dialect: delimiter '\\t' is not supported: save the file as plain CSV "
        "and remove the dialect; civharm reads each table from an uncompressed, comma-separated UTF-8 CSV file in the package  "
        "error [package/unsupported-dialect]",
        "invalid: 2 incidents (2 active), 2 reports; not read: sources; 1 errors, 0 warnings"]
