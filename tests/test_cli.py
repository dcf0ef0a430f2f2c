"""CLI behaviour: exit codes, exact error text, formats, and no tracebacks."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from civharm.cli import main
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


def test_bad_today_is_a_usage_error(valid_package):
    result = invoke("validate", str(valid_package), "--today", "yesterday")
    assert result.exit_code == 2
    assert "is not a date" in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert main.commands[command].help and "Example" in main.commands[command].help
